"""The central-flows reproduction: its claims on synthetic series, and a tiny run through reproduce()."""
import json

import numpy as np
import pytest

from eoslab.experiments import central_flows as cf
from eoslab.flows import GD
from eoslab.store import RunStore


def metrics(central_dist, stable_dist, pred_err, flow_lam, t=200, edge=50):
    """Series shaped like a GD run reaching the edge at ``edge``: the discrete loss oscillates (period 2)."""
    steps = np.arange(t + 1)
    trend = 1.0 / (1 + steps / 20)
    disc_loss = trend * (1 + 0.3 * (steps >= edge) * (steps % 2))
    avg = cf.centred_mean(disc_loss)
    lam_d = np.where(steps < edge, 2.0 * steps / edge, 2.0 * (1 + 0.1 * np.cos(np.pi * steps)))
    base = dict(effective_threshold=np.full(t + 1, 2.0), hvps=np.full(t + 1, 12.0),
                third_products=np.full(t + 1, 5.0), substeps=np.full(t + 1, 4.0),
                effective_sharpness_converged=np.ones(t + 1), effective_sharpness_error=np.full(t + 1, 1e-5))
    fill = np.where(np.isfinite(avg), avg, trend)
    return {
        "discrete": dict({k: v.copy() for k, v in base.items()}, loss=disc_loss, predicted_loss=disc_loss, effective_sharpness=lam_d,
                         distance=np.zeros(t + 1)),
        "stable": dict({k: v.copy() for k, v in base.items()}, loss=fill * 1.3, predicted_loss=fill * 1.3, effective_sharpness=lam_d,
                       distance=np.full(t + 1, stable_dist)),
        "central": dict({k: v.copy() for k, v in base.items()}, loss=fill * 0.9, predicted_loss=fill * (1 + pred_err),
                        effective_sharpness=np.where(steps < edge, lam_d, flow_lam),
                        distance=np.full(t + 1, central_dist)),
    }


SECONDS = dict(discrete=1.0, stable=2.0, central=4.0)
RMSPROP = next(s for s in cf.SETTINGS if s.key == "rmsprop")


def test_claims_hold_when_the_central_flow_tracks_the_discrete_run():
    claims = cf.setting_claims(cf.SETTINGS[0], GD(0.3), metrics(0.05, 0.3, 0.04, 2.0 * (1 + 1e-3)), SECONDS)
    assert [c.holds for c in claims] == [True, True, True, True]
    assert claims[0].value == pytest.approx(6.0)
    assert claims[1].value["central"] == pytest.approx(0.04, rel=1e-6) and claims[1].value["stable"] > 0.08
    assert claims[2].value["central_max"] == pytest.approx(1e-3)
    assert claims[3].value["hvps"] == 12.0


def test_claims_fail_on_series_that_contradict_them():
    claims = cf.setting_claims(cf.SETTINGS[0], GD(0.3), metrics(0.2, 0.3, 0.2, 2.0 * 1.05), SECONDS)
    assert [c.holds for c in claims[:3]] == [False, False, False]
    expensive = metrics(0.05, 0.3, 0.04, 2.0)
    expensive["central"]["third_products"][:] = 20.0  # above a tenth of the reference's 60
    assert cf.setting_claims(cf.SETTINGS[0], GD(0.3), expensive, SECONDS)[3].holds is False


def test_without_the_edge_the_claims_are_not_testable_and_say_why():
    m = metrics(0.05, 0.3, 0.04, 2.0)
    m["discrete"]["effective_sharpness"] = np.full(201, 1.5)
    claims = cf.setting_claims(cf.SETTINGS[0], GD(0.3), m, SECONDS)
    assert [c.holds for c in claims[:3]] == [None, None, None]
    assert "does not reach the edge from below (max certified lambda_1(P^-1 H) / c after step 0 = 0.750)" in claims[0].detail


def test_uncertified_eigenvalues_are_not_used():
    """An eigensolve that did not converge neither marks the edge nor enters the on-the-edge claim."""
    m = metrics(0.05, 0.3, 0.04, 2.0 * (1 + 1e-3))
    m["discrete"]["effective_sharpness"][:50] = m["central"]["effective_sharpness"][:50] = 1.0
    m["discrete"]["effective_sharpness"][10] = 2.5  # an unconverged spike before the edge
    m["discrete"]["effective_sharpness_converged"][10] = 0.0
    m["central"]["effective_sharpness"][120] = 2.5  # off the edge, but not certified
    m["central"]["effective_sharpness_converged"][120] = 0.0
    claims = cf.setting_claims(cf.SETTINGS[0], GD(0.3), m, SECONDS)
    assert claims[0].detail.startswith("edge at step 50")
    assert claims[2].holds is True and claims[2].value["central_max"] == pytest.approx(1e-3)
    assert claims[2].accuracy.unconverged == 2 and claims[2].accuracy.max_rel_error == pytest.approx(1e-5)
    m["central"]["effective_sharpness_converged"][120] = 1.0  # certified: it counts, and the claim fails
    assert cf.setting_claims(cf.SETTINGS[0], GD(0.3), m, SECONDS)[2].holds is False


def test_the_centred_mean_uses_every_step_of_its_window():
    v = np.asarray([1.0, 3.0] * 10)  # a period-2 oscillation
    avg = cf.centred_mean(v, 11)
    assert np.isnan(avg[:5]).all() and np.isnan(avg[-5:]).all()
    np.testing.assert_allclose(avg[5:-5], [2.0 + (-1 if i % 2 else 1) / 11 for i in range(5, 15)])  # 6 of one, 5 of the other


def test_tiny_reproduction_stores_three_runs_per_setting_and_reads_them_back(tmp_path):
    small = ["model.widths=[8]"]
    claims = cf.reproduce(tmp_path, quick=True, progress=False, overrides=small, steps=6)
    rows = json.loads((tmp_path / "claims.json").read_text())
    assert len(rows) == len(claims) == 4 * len(cf.SETTINGS) and all(r["quick"] for r in rows)
    assert sum(r["detail"].startswith("not run: --quick") for r in rows) == 4 * (len(cf.SETTINGS) - 1)
    assert (tmp_path / "central-flows.png").is_file()
    with RunStore.in_dir(tmp_path) as store:
        runs = store.list_runs(group="central-flows/gd-0.3")
        assert sorted(r.name.rsplit("/", 1)[1] for r in runs) == ["central", "discrete", "stable"]
        metrics_ = {r.name.rsplit("/", 1)[1]: store.get_metrics(r.id) for r in runs}
    for kind, m in metrics_.items():
        np.testing.assert_array_equal(m["loss"][0], np.arange(7))
        assert np.all(np.isfinite(m["effective_sharpness"][1]))
    # the three start together; the discrete run's distance to itself is 0
    assert metrics_["discrete"]["distance"][1].max() == 0
    np.testing.assert_allclose(metrics_["central"]["loss"][1][0], metrics_["discrete"]["loss"][1][0], rtol=1e-12)
    ids = sorted(r.id for r in runs)
    again = cf.reproduce(tmp_path, quick=True, progress=False, overrides=small, steps=6)
    assert [c.value for c in again] == [c.value for c in claims]  # read back from the store
    with RunStore.in_dir(tmp_path) as store:
        assert sorted(r.id for r in store.list_runs(group="central-flows/gd-0.3")) == ids


def test_a_run_that_starts_beyond_the_edge_reaches_it_when_it_rises_back_from_below():
    """RMSProp and Adam start with nu = g_0^2, often beyond the edge: the edge counts from the first rise to it."""
    m = metrics(0.05, 0.3, 0.04, 2.0)
    m["discrete"]["effective_sharpness"][:5] = 7.0  # the start, beyond the edge, then the ramp from below
    claims = cf.setting_claims(RMSPROP, RMSPROP.dynamics(), m, SECONDS)
    assert claims[0].detail.startswith("edge at step 48")  # 2 * 48 / 50 = 1.92 >= 0.95 * 2, the first from below


def test_a_diverged_flow_is_compared_up_to_where_it_ends():
    m = metrics(0.05, 0.3, 0.04, 2.0 * (1 + 1e-3))
    m["central"] = {k: v[:151] for k, v in m["central"].items()}  # ended at step 150
    claims = cf.setting_claims(cf.SETTINGS[0], GD(0.3), m, SECONDS)
    assert [c.holds for c in claims[:3]] == [True, True, True]
    assert "the central flow diverged at step 150 (compared up to there)" in claims[0].detail


def test_a_flow_that_starts_beyond_the_edge_is_judged_from_its_rise_back_to_it():
    m = metrics(0.05, 0.3, 0.04, 2.0 * (1 + 1e-3))
    m["central"]["effective_sharpness"][0] = 6.0  # beyond the edge at t = 0, projected in the first unit
    claims = cf.setting_claims(RMSPROP, RMSPROP.dynamics(), m, SECONDS)
    assert claims[2].holds is True and claims[2].detail.startswith("reached at t = 50; judged on the 151 certified values of the 151 units")
    assert "it starts beyond the edge (lambda_1(P^-1 H) / c = 3 at t = 0" in claims[2].detail
    assert "from t = 0 the max deviation is 2" in claims[2].detail
