"""Claims tables: only certified eigenvalues are used, --quick is marked everywhere, nothing vanishes."""
import json

import numpy as np
import pytest

from eoslab.experiments.claims import Accuracy, Claim, across_seeds, certified_series, combine, write_claims


def _series(steps, values):
    return np.asarray(steps, np.int64), np.asarray(values, np.float64)


def test_certified_series_keeps_converged_values_and_reports_the_largest_error():
    metrics = {
        "sharpness": _series([0, 10, 20, 30], [4.0, 5.0, 6.0, 7.0]),
        "sharpness_converged": _series([0, 10, 20, 30], [1, 0, 1, 1]),
        "sharpness_error": _series([0, 10, 20, 30], [4e-4, 1.0, 6e-5, 7e-5]),
    }
    steps, values, acc = certified_series(metrics, "sharpness")
    np.testing.assert_array_equal(steps, [0, 20, 30])
    np.testing.assert_array_equal(values, [4.0, 6.0, 7.0])
    assert acc == Accuracy(used=3, unconverged=1, max_rel_error=1e-4)


def test_a_series_without_certificates_is_not_used():
    steps, values, acc = certified_series({"sharpness": _series([0, 1], [1.0, 2.0])}, "sharpness")
    assert len(values) == 0 and acc.used == 0 and acc.unconverged == 2


def test_edge_ratio_uses_the_certificate_and_scale_of_the_effective_sharpness():
    metrics = {
        "edge_ratio": _series([5, 6], [0.9, 1.1]),
        "effective_sharpness": _series([5, 6], [1.8, 2.2]),
        "effective_sharpness_converged": _series([5, 6], [1, 1]),
        "effective_sharpness_error": _series([5, 6], [1.8e-3, 2.2e-4]),
    }
    _, values, acc = certified_series(metrics, "edge_ratio")
    np.testing.assert_array_equal(values, [0.9, 1.1])
    np.testing.assert_allclose(acc.max_rel_error, 1e-3)  # error / |effective sharpness|, not / |ratio|


def test_quick_is_marked_in_the_title_and_every_claim_and_accuracy_is_printed(tmp_path):
    claims = [Claim("a", "q", 1.0, True, accuracy=Accuracy(3, 1, 2e-4)),
              Claim("b", "q", None, None, detail="not run: --quick")]
    md, js = write_claims(tmp_path, claims, "Title", quick=True)
    text = md.read_text()
    assert text.startswith("# Title (--quick") and "1 unconverged left out" in text and "2.0e-04" in text
    rows = json.loads(js.read_text())
    assert [r["quick"] for r in rows] == [True, True] and rows[1]["holds"] is None
    assert rows[0]["accuracy"] == {"used": 3, "unconverged": 1, "max_rel_error": 2e-4}
    md, js = write_claims(tmp_path, claims, "Title", quick=False)
    assert md.read_text().startswith("# Title\n") and not any(r["quick"] for r in json.loads(js.read_text()))
    assert combine([None, Accuracy(1, 0, 1e-5), Accuracy(2, 2, 3e-5)]) == Accuracy(3, 2, 3e-5)
    assert combine([None]) is None


def test_the_curvature_figure_marks_unconverged_sharpness_values():
    from eoslab.plots import plot_curvature_runs
    metrics = {"loss": _series([0, 1, 2], [1.0, 0.9, 0.8]),
               "sharpness": _series([0, 1, 2], [4.0, 5.0, 6.0]),
               "sharpness_converged": _series([0, 1, 2], [1, 0, 1])}
    fig = plot_curvature_runs([dict(label="gd", metrics=metrics, threshold=20.0)])
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert "gd: not converged (1)" in labels
    marked = [line for line in fig.axes[1].get_lines() if line.get_label() == "gd: not converged (1)"][0]
    np.testing.assert_array_equal(marked.get_xdata(), [1])
    clean = dict(metrics, sharpness_converged=_series([0, 1, 2], [1, 1, 1]))
    fig = plot_curvature_runs([dict(label="gd", metrics=clean, threshold=20.0)])
    assert not any("not converged" in line.get_label() for line in fig.axes[1].get_lines())


def test_across_seeds_holds_only_if_every_testable_seed_holds():
    def row(value, holds, detail="d"):
        return [Claim("c", "q", value, holds, detail=detail, accuracy=Accuracy(3, 1, 1e-3 * value))]

    ok = across_seeds([row(1.0, True), row(3.0, True), row(2.0, True)], [0, 1, 2])[0]
    assert ok.holds is True and ok.value == 2.0
    assert "range 1-3" in ok.detail and "3 of 3" in ok.detail and "seed 0: d" in ok.detail
    assert ok.accuracy == Accuracy(9, 3, 3e-3)
    one_fails = across_seeds([row(1.0, True), row(3.0, False), row(2.0, True)], [0, 1, 2])[0]
    assert one_fails.holds is False and "2 of 3" in one_fails.detail
    untestable_seed = across_seeds([row(1.0, True), row(3.0, None), row(2.0, True)], [0, 1, 2])[0]
    assert untestable_seed.holds is True
    none = across_seeds([row(1.0, None), row(3.0, None)], [0, 1])[0]
    assert none.holds is None
    single = across_seeds([row(1.0, True)], [0])[0]
    assert "1 seed (0) only" in single.detail and single.holds is True
    with pytest.raises(ValueError, match="same claims"):
        across_seeds([row(1.0, True), row(1.0, True) * 2], [0, 1])
