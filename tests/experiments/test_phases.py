"""The phase-diagram reproduction: critical values, claim rules on synthetic series, the uv check, a smoke run."""
import dataclasses
import json
import math
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from eoslab.experiments import phases, statistics as st
from eoslab.experiments.claims import Accuracy
from eoslab.train.recipes import RECIPES_DIR, load_recipe
from eoslab.sweep import load_grid


def test_recipes_have_the_papers_setting():
    cfg = load_recipe("phases")
    assert cfg.model.name == "fc-relu" and cfg.model.bias is False and cfg.model.init == "kalra"
    assert cfg.loss.name == "mse-mean" and cfg.optimizer.name == "gd" and cfg.optimizer.batch_size == 512
    assert cfg.optimizer.lr_units == "1/lambda0"
    for name in phases.SWEEPS:
        spec = load_grid(RECIPES_DIR / "sweeps" / f"{name}.toml")
        points = spec.points()
        cs = sorted({p.lr for p in points})
        np.testing.assert_allclose(np.log2(cs), np.arange(0, 6.01, 0.25), atol=1e-12)  # c = 2^x
        assert {len(p.config.model.widths) + 1 for p in points} == {2, 4, 8}
        assert len(points) == spec.size == 25 * 9 * 3
    first, early = (load_grid(RECIPES_DIR / "sweeps" / f"{n}.toml").points()[0].config
                    for n in ("phases-first", "phases-early"))
    assert early.train.steps == phases.EARLY_STEPS and early.train.eval_every == 1
    assert early.probes.sharpness_k == 1 and early.probes.line_points > 0
    # c_barrier's segment ends at theta_1; the first step is the early sweep's (same probes, so same lambda_0)
    assert first.train.steps == 1 and first.probes.line_points > 0
    assert first.probes == dataclasses.replace(early.probes, line_points=first.probes.line_points)


def test_quick_and_custom_sweep_specs():
    spec = phases.sweep_spec("phases-first", quick=True)
    assert spec.name == "phases-first-quick" and spec.seeds == (0, 1) and spec.size == 13 * 2 * 2 * 2
    tiny = phases.sweep_spec("phases-early", grid={"model.depth": [2], "model.width": [16]}, seeds=1,
                             overrides=["data.n_train=100"])
    assert tiny.size == 25 and tiny.points()[0].config.data.n_train == 100


def test_critical_value_rules():
    cs = np.array([1.0, 2.0, 4.0, 8.0])
    assert phases.first_c(cs, np.array([False, False, True, True])) == 4.0
    assert phases.first_c(cs, np.zeros(4, bool)) == math.inf
    assert phases.last_stable_c(cs, np.array([False, False, False, True])) == 4.0
    assert phases.last_stable_c(cs, np.zeros(4, bool)) == 8.0
    assert phases.last_stable_c(cs, np.ones(4, bool)) == -math.inf  # below the grid
    assert phases.loss_rises(np.array([1.0, 0.5, 1.2]))
    assert not phases.loss_rises(np.array([1.0, 0.5, 0.9]))
    assert phases.loss_rises(np.array([1.0, np.nan]))  # divergence counts as a rise
    assert not phases.loss_rises(np.r_[1.0, np.full(10, 0.5), 2.0])  # after the 10-step window
    assert phases.sharpness_rises(np.array([3.0, 2.0, 3.1]))


def test_a_missing_run_is_missing_not_a_hit_nor_a_divergence():
    cs = np.array([1.0, 2.0, 4.0, 8.0])
    known = np.array([True, False, True, True])
    # the run at c = 2 is missing: a first hit at 4 is undetermined, one at 1 is not
    assert math.isnan(phases.first_c(cs, np.array([False, False, True, True]), known))
    assert phases.first_c(cs, np.array([True, False, True, True]), known) == 1.0
    assert math.isnan(phases.first_c(cs, np.zeros(4, bool), known))  # it might have been the only hit
    assert math.isnan(phases.last_stable_c(cs, np.array([False, False, False, True]), known))
    # a missing run above the first divergence decides nothing
    assert phases.last_stable_c(cs, np.array([False, False, True, False]), np.array([True] * 3 + [False])) == 2.0
    assert math.isnan(phases.last_stable_c(cs, np.zeros(4, bool), np.array([True] * 3 + [False])))


def test_certified_sharpness_rise_rule():
    steps = np.arange(11)
    rising = np.r_[3.0, 2.5, 3.2, np.full(8, 2.0)]
    falling = np.r_[3.0, np.full(10, 2.0)]
    assert phases.certified_sharpness_rises(steps, rising) is True
    assert phases.certified_sharpness_rises(steps, falling) is False
    # a step of the window not certified: the rise could have been there
    assert phases.certified_sharpness_rises(np.delete(steps, 5), np.delete(falling, 5)) is None
    assert phases.certified_sharpness_rises(np.delete(steps, 5), np.delete(rising, 5)) is True
    assert phases.certified_sharpness_rises(steps[1:], falling[1:]) is None  # lambda_0 not certified


def test_line_barrier_rule():
    assert phases.line_barrier(1.2, 1.0) is True
    assert phases.line_barrier(0.9, 1.0) is False
    assert phases.line_barrier(math.inf, 1.0) is True  # a NaN loss on the segment is stored as inf
    assert phases.line_barrier(math.nan, 1.0) is None


def test_spread_is_formatted_with_its_undetermined_count():
    assert "n=4 (1 undetermined)" in phases.format_spread(st.spread([2.0, 4.0, math.inf, 3.0, math.nan]))


def test_log_resample_takes_windowed_medians():
    t = np.arange(0, 1001)
    v = np.where(t % 2 == 0, 1.0, 3.0) * (1 + t)  # alternating noise around a trend
    ts, vs = phases.log_resample(t, v, points=20)
    assert ts[0] == 0 and vs[0] == v[0] and np.all(np.diff(ts) > 0) and ts[-1] > 800
    for tk, vk in zip(ts[1:], vs[1:]):
        sel = (t >= tk / 1.15 * 0.999) & (t <= tk * 1.15 * 1.001)
        assert v[sel].min() <= vk <= v[sel].max()


def test_two_step_mean_removes_the_period_two_oscillation():
    t = np.arange(0, 200)
    v = 20.0 + np.where(t % 2 == 0, 1.5, -1.5)  # an edge-of-stability oscillation, both phases
    ts, m = phases.two_step_mean(t, v)
    np.testing.assert_allclose(m, 20.0)
    assert ts.tolist() == t[:-1].tolist()
    # any subsample of one phase aliases: every 2nd step reads 21.5
    assert np.all(v[::2] == 21.5)
    ts, _ = phases.two_step_mean(np.array([0, 1, 3, 4, 5]), np.arange(5.0))
    assert ts.tolist() == [0, 3, 4]  # only consecutive pairs


def _edge_trajectory(eta=0.1, *, sharpen=True):
    """Transient (a fast fall in log time), flat, rising as a power of t (or flat), then oscillating about 2/eta."""
    t = np.arange(0, 2001)
    lam = np.empty(len(t))
    for i, s in enumerate(t):
        if s < 200 or not sharpen:
            lam[i] = 5.0 * (1 + 2 / (1 + s))  # d log lambda / d log(1 + t) = -10 / (5 (1 + t) + 10)
        else:
            lam[i] = min(5.0 * (s / 200.0) ** 0.8, 20.0)
    at_edge = lam >= 20.0
    lam[at_edge] += np.where(t[at_edge] % 2 == 0, 1.0, -1.0)  # period 2 at the edge
    return t, lam


def test_regime_classification_on_a_synthetic_trajectory():
    eta = 0.1
    t, lam = _edge_trajectory(eta)
    onset = phases.classify_regimes(*phases.two_step_mean(t, lam), eta)
    assert onset["early transient"] == 0
    assert 10 <= onset["intermediate saturation"] <= 30  # the slope crosses -0.1 at t = 17
    assert 190 <= onset["progressive sharpening"] <= 220
    edge_step = t[np.nonzero(eta * lam >= 1.8)[0][0]]
    assert edge_step <= onset["edge of stability"] <= 1.15 ** 2 * edge_step
    assert phases.regimes_in_order(onset)
    assert not phases.regimes_in_order({"early transient": 0, "intermediate saturation": 1,
                                        "progressive sharpening": 2, "edge of stability": 27})
    flat = phases.classify_regimes(*_edge_trajectory(eta, sharpen=False), eta)
    assert flat["progressive sharpening"] is None and flat["edge of stability"] is None
    assert not phases.regimes_in_order(flat)


def _certified(steps, values, converged=True, rel_error=1e-4):
    steps, values = np.asarray(steps), np.asarray(values, float)
    return {"sharpness": (steps, values),
            "sharpness_converged": (steps, np.full(len(steps), 1.0 if converged else 0.0)),
            "sharpness_error": (steps, rel_error * np.abs(values))}


def test_regime_claim_rule_on_certified_series():
    eta = 0.1
    acc_all = Accuracy(2001, 0, 1e-4)
    t, lam = _edge_trajectory(eta)
    onset, acc = phases.certified_regimes(_certified(t, lam), eta)
    assert acc.used == len(t) and acc.unconverged == 0 and acc.max_rel_error == pytest.approx(1e-4)
    assert phases.regime_verdict(onset, 0.5, acc)[0] is True  # should pass
    flat, _ = phases.certified_regimes(_certified(*_edge_trajectory(eta, sharpen=False)), eta)
    assert phases.regime_verdict(flat, 0.5, acc_all)[0] is False  # should fail: no sharpening, no edge
    # uncertified eigenvalues are not used: nothing to classify, and the claim says it is not testable
    onset_u, acc_u = phases.certified_regimes(_certified(t, lam, converged=False), eta)
    assert acc_u.used == 0 and all(v is None for v in onset_u.values())
    holds, why = phases.regime_verdict(onset_u, 0.5, acc_u)
    assert holds is None and "0 of 2001" in why
    assert phases.regime_verdict(onset, 2.0, acc)[0] is None  # c >= 2 is not checked


def test_uv_model_critical_values_are_2_and_4():
    with jax.enable_x64(True):
        uv = phases.uv_phase_diagram(width=256, steps=400, seeds=3,
                                     cs=2.0 ** np.r_[np.arange(0.9, 1.1, 0.01), np.arange(1.9, 2.1, 0.01)])
    for c in uv["per_seed"]:
        assert abs(c.c_loss - 2) / 2 <= 0.05
        assert abs(c.c_max - 4) / 4 <= 0.05
    claims = phases.uv_claims(uv)
    assert [c.holds for c in claims] == [True, True]
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


def _early(losses, sharp, line, eta=0.1, certified=True):
    steps = np.arange(len(losses))
    m = {"train_loss": (steps, np.asarray(losses, float)), "eta": (steps[:1], np.array([eta])),
         "line_max_loss": (steps[-1:], np.array([line]))}
    m.update(_certified(steps, sharp, converged=certified))
    return m


def _first(loss0, line):
    return {"train_loss": (np.array([0, 1]), np.array([loss0, 0.5])), "line_max_loss": (np.array([1]), np.array([line]))}


def _late(loss0, line):
    return {"train_loss": (np.array([0, 100]), np.array([loss0, 0.1])),
            "line_max_loss": (np.array([100]), np.array([line]))}


CS = [1.0, 2.0, 4.0, 8.0, 16.0]


def _synthetic_runs(settings, *, seeds=(0, 1), drop=(), fail=(), uncertified=()):
    """Runs of a synthetic sweep: per (d, w) the c at which loss, sharpness, first-step barrier rise and runs diverge."""
    first, early, late = [], [], []
    for (d, w), (c_loss, c_sharp, c_bar, c_div) in settings.items():
        for seed in seeds:
            for c in CS:
                status = "diverged" if c >= c_div else "completed"
                loss = [1.0] + [1.5 if c >= c_loss else 0.5] + [0.4] * 9
                sharp = [3.0] + [3.5 if c >= c_sharp else 2.0] + [1.0] * 9
                key = (d, w, seed, c)
                if key not in drop:
                    first.append((_rec(d, w, c, seed), _first(1.0, 2.0 if c >= c_bar else 0.9)))
                    early.append((_rec(d, w, c, seed, "failed" if key in fail else status),
                                  _early(loss, sharp, 2.0 if c >= c_div else 0.9,
                                         certified=key not in uncertified)))
                    late.append((_rec(d, w, c, seed, status), _late(1.0, 0.8)))
    return first, early, late


def test_collect_reads_critical_values_and_treats_missing_runs_as_missing():
    settings = {(2, 64): (4.0, 4.0, 4.0, 16.0), (8, 16): (8.0, 8.0, 8.0, 16.0)}
    col = phases.collect(*_synthetic_runs(settings))
    assert set(col) == {(2, 64), (8, 16)}
    c = col[(2, 64)]["per_seed"][0]
    assert (c.c_loss, c.c_sharp, c.c_barrier, c.c_max, c.c_barrier_10) == (4.0, 4.0, 4.0, 8.0, 16.0)
    assert col[(2, 64)]["accuracy"].used == 2 * 5 * 11
    # seed 1's run at c = 2 missing from every sweep, and seed 0's early run at c = 4 failed: undetermined,
    # not diverged (before, a missing late run counted as a divergence and set c_max below it)
    grid = [(d, w, s, c) for d, w in settings for s in (0, 1) for c in CS]
    col = phases.collect(*_synthetic_runs(settings, drop={(2, 64, 1, 2.0)}, fail={(2, 64, 0, 4.0)}), expected=grid)
    c0, c1 = col[(2, 64)]["per_seed"][0], col[(2, 64)]["per_seed"][1]
    assert math.isnan(c0.c_loss) and math.isnan(c0.c_sharp) and c0.c_max == 8.0
    assert math.isnan(c1.c_loss) and math.isnan(c1.c_max) and math.isnan(c1.c_barrier)
    rows = {(r["depth"], r["width"]): r for r in phases.summarise(col)}
    r = rows[(2, 64)]
    assert r["c_loss"]["n"] == 0 and r["c_loss"]["missing"] == 2 and r["c_max"]["n"] == 1
    assert r["order_n"] == 0
    # uncertified eigenvalues: c_sharp undetermined, c_loss not
    col = phases.collect(*_synthetic_runs(settings, uncertified={(8, 16, 0, 1.0)}))
    c = col[(8, 16)]["per_seed"][0]
    assert math.isnan(c.c_sharp) and c.c_loss == 8.0
    assert col[(8, 16)]["accuracy"].unconverged == 11


def _claims(settings, expected=(), **kw):
    rows = phases.summarise(phases.collect(*_synthetic_runs(settings, **kw), expected=expected))
    return {cl.claim.split("] ")[-1] if "d=" not in cl.claim else cl.claim: cl
            for cl in phases.digits_claims(rows, "syn")}, rows


def test_digits_claim_rules_pass_and_fail():
    good = {(2, 128): (2.0, 4.0, 4.0, 16.0), (4, 64): (4.0, 4.0, 8.0, 16.0), (8, 16): (8.0, 8.0, 8.0, 16.0)}
    by, rows = _claims(good)
    assert by["[syn, d=2, w=128] c_loss <= c_sharp <= c_max"].holds is True
    order = by["[syn, d=2, w=128] c_loss <= c_sharp <= c_max"]
    assert order.value["n"] == 2 and "n=2 of 2 seeds" in order.detail and order.accuracy.used == 2 * 5 * 11
    assert by["c_loss grows with d/w (the sharpness-reduction phase 2 < c < c_loss opens up)"].holds is True
    assert by["c_loss is about 2 at the smallest d/w"].holds is True
    assert by["c_sharp <= c_barrier <= c_max"].holds is True
    bad = {(2, 128): (8.0, 4.0, 1.0, 4.0), (4, 64): (4.0, 8.0, 8.0, 16.0), (8, 16): (2.0, 8.0, 16.0, 8.0)}
    by, _ = _claims(bad)
    failed = by["[syn, d=2, w=128] c_loss <= c_sharp <= c_max"]
    assert failed.holds is False  # 8 > 4
    assert "c_loss lies above c_max" in failed.detail and "smaller c than the loss" in failed.detail
    assert phases.order_analysis(dict(c_loss=2.0, c_sharp=4.0, c_max=8.0)) == ""
    assert by["c_loss grows with d/w (the sharpness-reduction phase 2 < c < c_loss opens up)"].holds is False
    assert by["c_loss is about 2 at the smallest d/w"].holds is False
    assert by["c_sharp <= c_barrier <= c_max"].holds is False
    # nothing determined: the rules say not testable instead of passing or failing
    by, _ = _claims({(2, 128): good[(2, 128)]}, drop={(2, 128, s, 1.0) for s in (0, 1)},
                    expected=[(2, 128, s, c) for s in (0, 1) for c in CS])
    assert all(cl.holds is None for cl in by.values())


def test_spearman_detects_a_monotone_trend():
    assert phases.spearman([1, 2, 3, 4], [2, 2.5, 4, 8]) == pytest.approx(1.0)
    assert phases.spearman([1, 2, 3, 4], [8, 4, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(phases.spearman([1, 2], [1, 2]))


def test_registered_in_the_cli():
    from eoslab.cli import REPRODUCTIONS
    assert REPRODUCTIONS["phases"].module == "eoslab.experiments.phases"


TINY_SWEEP = ["data.n_train=64", "probes.sharpness_subset=64", "optimizer.batch_size=32"]


def test_quick_reproduction_marks_quick_and_keeps_every_claim(tmp_path):
    claims = phases.reproduce(
        tmp_path, quick=True, progress=False,
        uv=dict(width=16, steps=40, seeds=2, cs=np.array([1.0, 2.5, 5.0])),
        grid={"optimizer.lr": [1.0, 8.0], "model.depth": [2], "model.width": [16]}, seeds=1,
        sweep_overrides=TINY_SWEEP,
        overrides=TINY_SWEEP + ["train.steps=12", "train.eval_every=6", "optimizer.lr=[0.5]", "model.widths=[16]"])
    stored = json.loads((tmp_path / "claims.json").read_text())
    assert len(stored) == len(claims)
    assert all(c["quick"] is True for c in stored)
    assert "(--quick" in (tmp_path / "claims.md").read_text().splitlines()[0]
    texts = {c["claim"]: c for c in stored}
    label = "digits, fc-relu, SGD 512"
    # every (d, w) of the full grid has its row; those --quick does not run are n/a with the reason
    for d in (2, 4, 8):
        for w in (16, 64, 128):
            row = texts[phases.ordering_claim_text(label, d, w)]
            if (d, w) != (2, 16):
                assert row["holds"] is None and row["value"] == "not run" and "--quick" in row["detail"]
    full = load_recipe("phases", ['model.init="pytorch"'])
    where = phases.regime_where("PyTorch init", full)
    for c in full.lrs:
        assert texts[phases.regime_claim_text(where, c)]["holds"] is None
    for name in ("uv model: c_loss = 2", "uv model: c_max = 4", f"[{label}] c_sharp <= c_barrier <= c_max",
                 f"[{label}] c_loss is about 2 at the smallest d/w"):
        assert name in texts
    assert any("Kalra init" in t and "c=0.5" in t for t in texts)
    table = (tmp_path / "table.txt").read_text()
    assert "n=1" in table and "phases-first-quick" in table
