"""The phase-diagram reproduction: critical values, regimes, the uv check, the sweeps' analysis."""
import math
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from eoslab.experiments import phases
from eoslab.experiments.recipes import RECIPES_DIR, load_recipe
from eoslab.sweep import load_grid


def test_recipes_have_the_papers_setting():
    cfg = load_recipe("phases")
    assert cfg.model.name == "fc-relu" and cfg.model.bias is False and cfg.model.init == "kalra"
    assert cfg.loss.name == "mse-mean" and cfg.optimizer.name == "gd" and cfg.optimizer.batch_size == 512
    assert cfg.optimizer.lr_units == "1/lambda0"
    for name in ("phases-early", "phases-late"):
        spec = load_grid(RECIPES_DIR / "sweeps" / f"{name}.toml")
        points = spec.points()
        cs = sorted({p.lr for p in points})
        np.testing.assert_allclose(np.log2(cs), np.arange(0, 6.01, 0.25), atol=1e-12)  # c = 2^x
        assert {len(p.config.model.widths) + 1 for p in points} == {2, 4, 8}
        assert len(points) == spec.size == 25 * 9 * 3
    early = load_grid(RECIPES_DIR / "sweeps" / "phases-early.toml").points()[0].config
    assert early.train.steps == phases.EARLY_STEPS and early.train.eval_every == 1
    assert early.probes.sharpness_k == 1 and early.probes.line_points > 0


def test_critical_value_rules():
    cs = np.array([1.0, 2.0, 4.0, 8.0])
    assert phases.first_c(cs, np.array([False, False, True, True])) == 4.0
    assert phases.first_c(cs, np.zeros(4, bool)) == math.inf
    assert phases.last_stable_c(cs, np.array([False, False, False, True])) == 4.0
    assert phases.last_stable_c(cs, np.zeros(4, bool)) == 8.0
    assert math.isnan(phases.last_stable_c(cs, np.ones(4, bool)))
    assert phases.loss_rises(np.array([1.0, 0.5, 1.2]))
    assert not phases.loss_rises(np.array([1.0, 0.5, 0.9]))
    assert phases.loss_rises(np.array([1.0, np.nan]))  # divergence counts as a rise
    assert not phases.loss_rises(np.r_[1.0, np.full(10, 0.5), 2.0])  # after the 10-step window
    assert phases.sharpness_rises(np.array([3.0, 2.0, 3.1]))
    s = phases.spread([2.0, 4.0, math.inf, 3.0])
    assert s == dict(median=3.0, min=2.0, max=4.0, n=3)


def test_log_resample_takes_windowed_medians():
    t = np.arange(0, 1001)
    v = np.where(t % 2 == 0, 1.0, 3.0) * (1 + t)  # alternating noise around a trend
    ts, vs = phases.log_resample(t, v, points=20)
    assert ts[0] == 0 and vs[0] == v[0] and np.all(np.diff(ts) > 0) and ts[-1] > 800
    for tk, vk in zip(ts[1:], vs[1:]):
        sel = (t >= tk / 1.15 * 0.999) & (t <= tk * 1.15 * 1.001)
        assert v[sel].min() <= vk <= v[sel].max()


def test_regime_classification_on_a_synthetic_trajectory():
    # transient (fast fall), flat, rising as a power of t, then pinned at 2/eta
    eta = 0.1
    t = np.arange(0, 2001, 10)
    lam = np.empty(len(t))
    for i, s in enumerate(t):
        if s < 30:
            lam[i] = 10.0 * (1 - s / 60)
        elif s < 200:
            lam[i] = 5.0
        else:
            lam[i] = min(5.0 * (s / 200.0) ** 0.8, 20.0)
    onset = phases.classify_regimes(t, lam, eta)
    assert onset["early transient"] == 0
    assert 20 <= onset["intermediate saturation"] <= 40
    assert 190 <= onset["progressive sharpening"] <= 220
    edge_step = t[np.nonzero(eta * lam >= 1.8)[0][0]]
    # onsets are read on log-spaced samples, each the median over +-15% in t
    assert edge_step <= onset["edge of stability"] <= 1.15 ** 2 * edge_step
    assert phases.regimes_in_order(onset)
    # regimes of a step or two do not count: a sharpness rising from step 2 and at the edge by step 27
    assert not phases.regimes_in_order({"early transient": 0, "intermediate saturation": 1,
                                        "progressive sharpening": 2, "edge of stability": 27})
    flat = phases.classify_regimes(t, np.full(len(t), 5.0), eta)
    assert flat["progressive sharpening"] is None and flat["edge of stability"] is None
    assert not phases.regimes_in_order(flat)


def test_uv_model_critical_values_are_2_and_4():
    with jax.enable_x64(True):
        uv = phases.uv_phase_diagram(width=256, steps=400, seeds=3,
                                     cs=2.0 ** np.r_[np.arange(0.9, 1.1, 0.01), np.arange(1.9, 2.1, 0.01)])
    for c in uv["per_seed"]:
        assert abs(c.c_loss - 2) / 2 <= 0.05
        assert abs(c.c_max - 4) / 4 <= 0.05
    claims = phases.uv_claims(uv)
    assert [c.holds for c in claims] == [True, True]
    # the losses recorded are those of GD on the model: one step checked by hand
    from eoslab.models.toy import UVModel
    with jax.enable_x64(True):
        m = UVModel(width=256, x=1.0, y=0.0)
        th0 = m.init(jax.random.PRNGKey(0), 3)
        eta = uv["cs"][0] / float(m.sharpness(th0[0]))
        th1 = th0[0] - eta * m.grad(th0[0])
        np.testing.assert_allclose(uv["losses"][0, 0, 1], float(m.loss(th1)), rtol=1e-12)


def _rec(depth, width, c, seed, status="completed"):
    return SimpleNamespace(config={"model": {"widths": [width] * (depth - 1)}, "optimizer": {"lr": c}},
                           seed=seed, status=status)


def _early(losses, sharp, line, eta=0.1):
    steps = np.arange(len(losses))
    return {"train_loss": (steps, np.asarray(losses, float)), "sharpness": (steps, np.asarray(sharp, float)),
            "lr": (steps[:1], np.array([eta])), "line_max_loss": (steps[-1:], np.array([line]))}


def _late(loss0, line):
    return {"train_loss": (np.array([0, 100]), np.array([loss0, 0.1])),
            "line_max_loss": (np.array([100]), np.array([line]))}


def test_collect_and_claims_from_synthetic_runs():
    cs = [1.0, 2.0, 4.0, 8.0, 16.0]
    early, late = [], []
    for (d, w), (c_loss, c_sharp, c_bar, c_div) in {(2, 64): (4.0, 4.0, 8.0, 16.0),
                                                     (8, 16): (8.0, 8.0, 8.0, 16.0)}.items():
        for seed in (0, 1):
            for c in cs:
                status = "diverged" if c >= c_div else "completed"
                loss = [1.0, 1.5 if c >= c_loss else 0.5, 0.4]
                sharp = [3.0, 3.5 if c >= c_sharp else 2.0, 1.0]
                early.append((_rec(d, w, c, seed, status), _early(loss, sharp, 2.0 if c >= c_bar else 0.9)))
                late.append((_rec(d, w, c, seed, status), _late(1.0, 0.8)))
    col = phases.collect(early, late)
    assert set(col) == {(2, 64), (8, 16)}
    c = col[(2, 64)]["per_seed"][0]
    assert (c.c_loss, c.c_sharp, c.c_barrier, c.c_max) == (4.0, 4.0, 8.0, 8.0)
    assert col[(8, 16)]["per_seed"][1].c_loss == 8.0
    rows = phases.summarise(col)
    claims = phases.digits_claims(rows, "synthetic")
    by = {cl.claim: cl for cl in claims}
    assert all(by[f"[synthetic, d={d}, w={w}] c_loss <= c_sharp <= c_max"].holds for d, w in ((2, 64), (8, 16)))
    trend = next(cl for cl in claims if "grows with d/w" in cl.claim)
    assert math.isnan(trend.value) and trend.holds is False  # two (d, w) are too few for a rank correlation
    assert "d/w=0.0312" in trend.detail and "d/w=0.5" in trend.detail
    table = phases.format_table(rows)
    assert "0.0312" in table and "2/2" in table


def test_spearman_detects_a_monotone_trend():
    assert phases.spearman([1, 2, 3, 4], [2, 2.5, 4, 8]) == pytest.approx(1.0)
    assert phases.spearman([1, 2, 3, 4], [8, 4, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(phases.spearman([1, 2], [1, 2]))


def test_registered_in_the_cli():
    from eoslab.cli import REPRODUCTIONS
    assert REPRODUCTIONS["phases"] == "eoslab.experiments.phases"
