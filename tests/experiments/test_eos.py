"""The classic edge-of-stability reproduction (Cohen et al. 2021) and the claims-table convention."""
import json

import numpy as np
import pytest

from eoslab.experiments import eos
from eoslab.experiments.claims import Claim, write_claims
from eoslab.experiments.eos import gd_claims, summarise, summarise_member
from eoslab.train.recipes import load_recipe
from eoslab.store import RunStore
from eoslab.train import train


def test_claims_files(tmp_path):
    claims = [Claim("a claim", "a quantity", 1.5, True), Claim("b", "q", float("nan"), False, detail="x|y")]
    md, js = write_claims(tmp_path, claims, "Title", quick=False)
    rows = json.loads(js.read_text())
    assert [set(r) >= {"claim", "quantity", "value", "holds"} for r in rows] == [True, True]
    assert rows[1]["holds"] is False and rows[1]["value"] == "nan"
    text = md.read_text()
    assert "| a claim | a quantity | 1.5 | yes |" in text and "**no**" in text and "x\\|y" in text


# ---- the claim rules on synthetic series ------------------------------------------------

TOTAL, ETA = 3000, 0.2  # threshold 2 / eta = 10


def _series(lam, loss, converged=1.0, every=50):
    """Metrics of a run: sharpness lam(step) at eval steps (certified unless converged=0), loss(step) per step."""
    s = np.arange(0, TOTAL + 1, every)
    t = np.arange(TOTAL)
    return {"sharpness": (s, np.asarray([lam(x) for x in s], float)),
            "sharpness_converged": (s, np.full(len(s), converged)),
            "sharpness_error": (s, np.full(len(s), 1e-6)),
            "loss": (t, np.asarray([loss(x) for x in t], float))}


def _edge(step):  # rises from 4 to the threshold 10 by step 1000, then hovers within 2%
    return 4 + 6 * step / 1000 if step < 1000 else 10 * (1 + 0.02 * np.sin(step / 70))


def _falling_non_monotone(step):  # falls over the run, up and down by 5% every other step
    return np.exp(-step / 1500) * (1.05 if step % 2 else 1.0)


def _claims(metrics, status="completed", diverged=None):
    row = summarise_member(metrics, ETA, 2 / ETA, TOTAL, status, diverged)
    return gd_claims([row], "GD", 0.05, TOTAL)


def test_gd_claims_hold_on_a_textbook_edge_of_stability():
    claims = _claims(_series(_edge, _falling_non_monotone))
    assert [c.holds for c in claims] == [True] * 4
    assert claims[0].value == pytest.approx(0.4) and claims[1].value == pytest.approx(10.2 / 4, rel=1e-2)
    assert "2000-3000" in claims[2].quantity and "2000-3000" in claims[3].quantity
    assert all(c.accuracy.used == 61 and c.accuracy.unconverged == 0 for c in claims[:3])
    assert claims[3].accuracy is None  # a loss claim: no eigenvalues behind it


def test_gd_claims_fail_on_series_that_contradict_them():
    above = _claims(_series(lambda s: 12.0 + 0.01 * s / TOTAL, lambda s: np.exp(-s / 1500)))
    assert [c.holds for c in above] == [False] * 4  # starts above 2/eta, never sharpens, monotone loss
    assert "at 0.0% of the steps" in above[3].detail
    rising = _claims(_series(_edge, lambda s: 1 + s / 1000 + 0.05 * (s % 2)))
    assert [c.holds for c in rising] == [True, True, True, False]  # non-monotone but not falling
    assert rising[3].value > 1


def test_the_loss_claim_compares_the_ends_of_the_late_window():
    # the loss falls until step 2000, then rises: a comparison with step 1500 would call it falling
    claims = _claims(_series(_edge, lambda s: (np.exp(-s / 500) if s < 2000 else np.exp(-4) * (1 + (s - 2000) / 1000))
                                    * (1.05 if s % 2 else 1.0)))
    assert claims[3].holds is False and claims[3].value > 1


def test_gd_claims_without_converged_values_are_not_tested():
    claims = _claims(_series(_edge, _falling_non_monotone, converged=0.0))
    assert [c.holds for c in claims] == [None, None, None, True]
    assert claims[2].accuracy.used == 0 and claims[2].accuracy.unconverged == 61
    assert "no converged sharpness value" in claims[2].detail


def test_a_diverged_member_fails_the_edge_and_loss_claims():
    claims = _claims(_series(_edge, _falling_non_monotone), status="diverged", diverged=2500)
    assert [c.holds for c in claims] == [True, True, False, False] and "diverged at step 2500" in claims[2].detail


def test_cross_entropy_band_claim():
    row = summarise_member(_series(_edge, _falling_non_monotone), ETA, 2 / ETA, TOTAL)
    assert eos.ce_claims([row], "GD, cross-entropy", TOTAL)[0].holds is True
    low = summarise_member(_series(lambda s: 6.0, _falling_non_monotone), ETA, 2 / ETA, TOTAL)
    assert eos.ce_claims([low], "GD, cross-entropy", TOTAL)[0].holds is False


def test_skipped_recipes_say_why(monkeypatch):
    monkeypatch.delenv("EOSLAB_DATA", raising=False)
    cifar = eos.RECIPES[-1]
    assert "EOSLAB_DATA" in eos._skip_reason(cifar, quick=False) and eos._skip_reason(eos.RECIPES[0], False) is None
    rows = eos.not_run(cifar, (0.01, 0.02), 3000, "no files")
    assert len(rows) == 8 and all(c.holds is None and c.detail == "not run: no files" for c in rows)


# ---- the reproduction through reproduce() -----------------------------------------------

TINY = ["train.steps=60", "train.eval_every=20", "data.n_train=200", "model.widths=[32]", "optimizer.lr=[0.1]"]


def test_quick_reproduction_marks_quick_and_keeps_every_claim(tmp_path, monkeypatch):
    monkeypatch.delenv("EOSLAB_DATA", raising=False)
    claims = eos.reproduce(tmp_path, quick=True, progress=False, overrides=TINY)
    rows = json.loads((tmp_path / "claims.json").read_text())
    assert len(rows) == len(claims) == 4 + 4 + 1 + 4  # GD run; heavy ball, cross-entropy, CIFAR not run
    assert all(r["quick"] is True for r in rows)
    assert "(--quick" in (tmp_path / "claims.md").read_text().splitlines()[0]
    not_run = [r for r in rows if r["holds"] is None and r["detail"].startswith("not run")]
    assert len(not_run) == 9 and all("--quick" in r["detail"] for r in not_run)
    with RunStore.in_dir(tmp_path) as store:
        (run,) = store.list_runs()
        stored = len(store.get_metrics(run.id)["sharpness"][0])
    for r in rows[:3]:  # the eigenvalue claims of the run carry their accuracy record
        assert r["accuracy"]["used"] + r["accuracy"]["unconverged"] == stored
    assert rows[3]["accuracy"] is None and isinstance(rows[3]["holds"], bool)
    assert (tmp_path / "eos-gd.png").is_file()
    # the same command again reports the stored runs and writes the same claims; force retrains and replaces
    before = (tmp_path / "claims.json").read_text()
    eos.reproduce(tmp_path, quick=True, progress=False, overrides=TINY)
    assert (tmp_path / "claims.json").read_text() == before
    with RunStore.in_dir(tmp_path) as store:
        assert [r.id for r in store.list_runs()] == [run.id]
    eos.reproduce(tmp_path, quick=True, progress=False, overrides=TINY, force=True)
    with RunStore.in_dir(tmp_path) as store:
        (again,) = store.list_runs()
    assert again.id != run.id and json.loads((tmp_path / "claims.json").read_text())[0]["value"] == rows[0]["value"]


@pytest.mark.slow
def test_gd_sharpness_rises_to_and_hovers_at_two_over_eta(tmp_path):
    cfg = load_recipe("eos", ["optimizer.lr=[0.1, 0.2]"])
    result = train(cfg, results_dir=tmp_path, progress=False)
    rows = summarise(result)
    for row in rows:
        steps, lam = result.series(rows.index(row), "sharpness")
        _, loss = result.series(rows.index(row), "loss")
        thr = 2 / row["eta"]
        assert row["lambda0"] < 6, "the sharpness starts below 6"
        assert row["first_step_at_edge"] is not None and row["max_sharpness"] > 2 * row["lambda0"]
        late = lam[(steps >= 2000) & (steps <= 3000)]
        assert abs(np.median(late) / thr - 1) <= 0.05, (row["eta"], np.median(late))
        assert loss[3000 - 1] < loss[2000], "the training loss keeps falling over the window"


@pytest.mark.slow
def test_heavy_ball_settles_at_its_threshold(tmp_path):
    cfg = load_recipe("eos-momentum", ["optimizer.lr=[0.19]"])
    result = train(cfg, results_dir=tmp_path, progress=False)
    steps, lam = result.series(0, "sharpness")
    thr = (2 + 2 * 0.9) / 0.19
    assert result.thresholds[0] == pytest.approx(thr)
    late = lam[steps >= 1500]
    assert abs(np.median(late) / thr - 1) <= 0.10, np.median(late)
