"""The PAL reproduction (Mutschler & Zell 2020): recipes, profile machinery, claims against a recomputation."""
import json

import numpy as np
import pytest

from eoslab.experiments import pal
from eoslab.train.recipes import load_recipe
from eoslab.store import RunStore

TINY = ["train.steps=60", "train.eval_every=30", "data.n_train=200", "model.widths=[32]", "probes.sharpness_k=0"]


def test_recipes_use_the_published_pal_defaults():
    cfg = load_recipe("pal")
    assert cfg.optimizer.name == "parabolic" and cfg.lrs == (3.16,)
    assert cfg.optimizer.hp.mu == 1.0 and cfg.optimizer.hp.alpha == pytest.approx(1 / 0.6)
    assert cfg.optimizer.hp.beta == 0.0 and cfg.optimizer.batch_size == 128
    assert load_recipe("pal-conjugate").optimizer.hp.beta == 0.4
    assert load_recipe("pal-ce").loss.name == "ce"
    for name in ("pal-sgd", "pal-ce-sgd"):
        base = load_recipe(name)
        assert base.optimizer.name == "gd" and len(base.lrs) >= 4
        assert max(base.lrs) / min(base.lrs) >= 30
    from eoslab.cli import REPRODUCTIONS
    assert REPRODUCTIONS["pal"].module == "eoslab.experiments.pal"


def test_profile_steps_and_grids():
    for total, num in [(1000, 12), (500, 8), (300, 12), (60, 8), (7, 8)]:
        chunk = pal.replay_chunk(total)
        assert total % chunk == 0
        steps = pal.profile_steps(total, num, chunk)
        assert steps[0] == 0 and steps == sorted(set(steps)) and steps[-1] < total
        assert all(s % chunk == 0 for s in steps) and len(steps) <= num
        assert steps[-1] >= total - 2 * chunk  # reaches the end of training
    assert pal.profile_steps(1, 8, 1) == [0]
    grid = pal.wide_grid(1.0, 3.16)
    assert grid[0] == -1.0 and grid[-1] >= 1.25 * 3.16
    assert 0.0 in grid and 1.0 in grid  # the step's loss and PAL's measuring point are grid points
    assert np.allclose(np.diff(grid), 1.0 / pal.WIDE_PER_MU)


def _grid(steps, losses, argmin):
    return dict(steps=list(steps), losses={"batch": list(losses)}, argmin={"batch": argmin})


def test_exact_minimiser_prefers_the_finer_grid_only_for_the_same_minimum():
    sw = np.linspace(-1, 4, 101)
    sl = np.linspace(-0.2, 0.2, 41)
    # one minimum at 0.1: inside the local range, found there
    wide = _grid(sw, (sw - 0.1) ** 2, 0.1)
    local = _grid(sl, (sl - 0.1) ** 2, 0.1000001)
    assert pal.exact_minimiser(wide, local, "batch") == (pytest.approx(0.1000001), "local")
    # the local grid sees a dip but the line goes lower further out: the wide grid's minimum
    lw = np.where(sw < 1, (sw - 0.1) ** 2, (sw - 3) ** 2 - 1.0)
    assert pal.exact_minimiser(_grid(sw, lw, 3.0), local, "batch") == (3.0, "wide")
    # the minimum is at the end of both grids: beyond the grid
    s, where = pal.exact_minimiser(_grid(sw, -sw, 4.0), _grid(sl, -sl, 0.2), "batch")
    assert np.isnan(s) and where == "beyond the grid"
    # no local grid (PAL took no step)
    assert pal.exact_minimiser(wide, None, "batch") == (0.1, "wide")


def test_claims_thresholds():
    summary = dict(loss="batch", r2_wide_batch_median=0.99, r2_wide_batch_p10=0.9, r2_wide_batch_n=10,
                   r2_wide_full_median=0.99, r2_wide_full_p10=0.9, r2_local_batch_median=0.97,
                   r2_local_batch_p10=0.7, r2_local_batch_n=10, r2_local_full_median=0.97,
                   r2_local_full_p10=0.7, convex_wide_batch=0.95, convex_local_batch=1.0,
                   convex_wide_full=1.0, convex_local_full=1.0, ratio_batch_median=3.0, ratio_batch_n=10,
                   ratio_batch_p10=2.0, ratio_batch_p90=4.0, ratio_full_median=3.0, vertex_ratio_median=1.8,
                   branches={"vertex": 10}, minimiser_batch_beyond=0, r2_linear_wide_batch_median=0.5,
                   r2_linear_local_batch_median=0.9)
    claims = pal.claims_for_run("[x]", summary, 1 / 0.6, 0.3, (1.0, 0.1), {1.0: 0.1})
    # R² (wide) holds; R² (local) fails on its 10th percentile; convex holds; ratio 3 > 2.5 fails; loss 3x fails
    assert [c.holds for c in claims] == [True, False, True, False, False]
    claims = pal.claims_for_run("[x]", dict(summary, ratio_batch_median=1.7), 1 / 0.6, 0.15, (1.0, 0.1),
                                {1.0: 0.1})
    assert [c.holds for c in claims][3:] == [True, True]
    # a window where a straight line fits as well cannot test the curvature: not testable, not "holds"
    claims = pal.claims_for_run("[x]", dict(summary, r2_linear_wide_batch_median=0.97), 1 / 0.6, 0.15,
                                (1.0, 0.1), {1.0: 0.1})
    assert claims[0].holds is None and "not testable" in claims[0].detail
    # the R² rule fails on its median too, the convexity rule below its fraction
    claims = pal.claims_for_run("[x]", dict(summary, r2_wide_batch_median=0.9, convex_wide_batch=0.85), 1 / 0.6,
                                0.15, (1.0, 0.1), {1.0: 0.1})
    assert [c.holds for c in claims][:3] == [False, False, False]
    # no constant step finished: PAL cannot be compared (not testable), a diverged PAL fails
    claims = pal.claims_for_run("[x]", summary, 1 / 0.6, 0.15, (float("nan"), float("nan")), {1.0: float("inf")})
    assert claims[4].holds is None
    claims = pal.claims_for_run("[x]", summary, 1 / 0.6, float("inf"), (1.0, 0.1), {1.0: 0.1})
    assert claims[4].holds is False
    # the texts of a run and of its not-run row are the same claims
    assert [c.claim for c in claims] == [t for t, _ in pal.claim_texts("[x]", "minibatch", 1 / 0.6)]


def test_edge_note_uses_certified_eigenvalues_only():
    steps = np.array([0, 50, 100])
    metrics = {"edge_ratio": (steps, np.array([0.5, 0.9, 1.1])),
               "effective_sharpness": (steps, np.array([5.0, 9.0, 11.0])),
               "effective_sharpness_converged": (steps, np.array([1.0, 1.0, 0.0])),
               "effective_sharpness_error": (steps, np.array([5e-4, 9e-4, 0.5]))}
    note = pal.edge_note(metrics)
    assert "at step 50 0.9 (2/3 certified" in note and "1.0e-04" in note
    del metrics["effective_sharpness_converged"]  # a store without convergence records: nothing is certified
    assert pal.edge_note(metrics) == "η_t·λ1/2: none of 3 eigenvalues certified"


def _recomputed_r2(steps, losses, window):
    s, l = np.asarray(steps, float), np.asarray(losses, float)
    keep = (np.abs(s) <= window * (1 + 1e-6)) & np.isfinite(l)
    coef = np.polyfit(s[keep], l[keep], 2)
    resid = l[keep] - np.polyval(coef, s[keep])
    return 1 - np.sum(resid ** 2) / np.sum((l[keep] - l[keep].mean()) ** 2), coef[0]


def _recomputed_line_r2(steps, losses, window):
    s, l = np.asarray(steps, float), np.asarray(losses, float)
    keep = (np.abs(s) <= window * (1 + 1e-6)) & np.isfinite(l)
    resid = l[keep] - np.polyval(np.polyfit(s[keep], l[keep], 1), s[keep])
    return 1 - np.sum(resid ** 2) / np.sum((l[keep] - l[keep].mean()) ** 2)


def _recomputed_minimiser(steps, losses):
    s, l = np.asarray(steps, float), np.asarray(losses, float)
    i = int(np.argmin(l))
    if i == 0 or i == len(s) - 1:
        return float("nan")
    coef = np.polyfit(s[i - 1:i + 2], l[i - 1:i + 2], 2)
    return -coef[1] / (2 * coef[0])


def test_reproduction_on_a_tiny_setting_matches_a_recomputation(tmp_path):
    claims = pal.reproduce(tmp_path, quick=True, progress=False, overrides=TINY, settings=("mse-minibatch",))
    for name in ("claims.md", "claims.json", "table.txt", "profiles.json", "pal-training.png", "pal-training.pdf",
                 "pal-profiles-mse-minibatch-pal.png", "pal-profiles-mse-minibatch-pal-beta-0-4.png"):
        assert (tmp_path / name).is_file(), name
    stored = json.loads((tmp_path / "claims.json").read_text())
    runs = [(s, r) for s in pal.SETTINGS for r in s.runs]
    assert len(stored) == len(claims) == 5 * len(runs)  # every claim of the full run has its row
    assert all(set(c) >= {"claim", "quantity", "value", "holds"} for c in stored)
    assert all(c["quick"] is True for c in stored)
    assert "(--quick" in (tmp_path / "claims.md").read_text().splitlines()[0]
    skipped = stored[10:]  # the runs of the other settings: not run, holds null, with the reason
    assert all(c["holds"] is None and c["value"] == "not run" and "not selected" in c["detail"] for c in skipped)
    assert [c["claim"] for c in skipped] == [c.claim for s, r in runs[2:] for c in pal.not_run_claims(s, r, "")]
    dump = json.loads((tmp_path / "profiles.json").read_text())
    assert set(dump["runs"]) == {"mse-minibatch-pal-seed0", "mse-minibatch-pal-beta-0-4-seed0"}  # --quick: 1 seed
    with RunStore.in_dir(tmp_path) as store:
        for k, (key, run) in enumerate(dump["runs"].items()):
            assert run["replay_max_abs_loss_diff"] == 0.0  # the replay is the stored trajectory
            recs = run["profiles"]
            assert [r["step"] for r in recs] == pal.profile_steps(60, pal.QUICK_PROFILES, 1)
            metrics = store.get_metrics(run["run_id"])
            tuner_step = dict(zip(*metrics["tuner_step"]))
            r2_wide, r2_local, convex, ratios = [], [], [], []
            for r in recs:
                # the step PAL took in the profile = the one the trainer recorded at that step
                assert r["step_taken"] == pytest.approx(tuner_step[r["step"]], rel=1e-6)
                assert abs(r["check_l0"]) < 1e-5 and abs(r["check_lmu"]) < 1e-5
                w, loc = r["wide"], r["local"]
                r2, a = _recomputed_r2(w["steps"], w["losses"]["batch"], 1.0)
                assert r2 == pytest.approx(w["r2"]["batch"], abs=1e-4)
                assert np.sign(a) == np.sign(w["a"]["batch"])
                r2_wide.append(r2)
                convex.append(a > 0)
                r2l, _ = _recomputed_r2(loc["steps"], loc["losses"]["batch"], 2 * r["step_taken"])
                assert r2l == pytest.approx(loc["r2"]["batch"], abs=1e-4)
                r2_local.append(r2l)
                assert r["minimiser_batch_from"] == "local"  # tiny setting: PAL is within 2x of the minimum
                s_star = _recomputed_minimiser(loc["steps"], loc["losses"]["batch"])
                assert s_star == pytest.approx(r["minimiser_batch"], rel=1e-3)
                ratios.append(r["step_taken"] / s_star)
            c = stored[5 * k:5 * k + 5]
            assert run["label"] in c[0]["claim"]
            assert c[0]["value"] == pytest.approx(np.median(r2_wide), abs=1e-4)
            assert f"10th percentile {np.percentile(r2_wide, 10):.4f}"[:-1] in c[0]["detail"]
            assert c[1]["value"] == pytest.approx(np.median(r2_local), abs=1e-4)
            assert c[2]["value"] == pytest.approx(np.mean(convex))
            assert c[3]["value"] == pytest.approx(np.median(ratios), rel=1e-3)
            # final training loss: PAL / best constant step, from the run store
            final = lambda rid: store.get_metrics(rid)["train_loss"][1][-1]
            base = [final(rid) for rid in run["baseline_run_ids"]
                    if store.get_run(rid).status == "completed"]
            assert c[4]["value"] == pytest.approx(final(run["run_id"]) / min(base), rel=1e-6)
            # holds as the thresholds stated up front say, on the recomputed values
            for claim, vals, grid in ((c[0], r2_wide, "wide"), (c[1], r2_local, "local")):
                line = np.median([_recomputed_line_r2(r[grid]["steps"], r[grid]["losses"]["batch"],
                                                      r[grid]["window"]) for r in recs])
                passes = bool(np.median(vals) >= pal.R2_MEDIAN and np.percentile(vals, 10) >= pal.R2_P10)
                assert claim["holds"] == (None if passes and line >= pal.R2_MEDIAN else passes)
            assert c[2]["holds"] == bool(np.mean(convex) >= pal.CONVEX_FRACTION)
            alpha = run["config"]["optimizer"]["alpha"]
            assert c[3]["holds"] == bool(alpha / pal.RATIO_FACTOR <= np.median(ratios) <= alpha * pal.RATIO_FACTOR)


def test_minibatch_claims_combine_seeds_with_their_spread(tmp_path):
    claims = pal.reproduce(tmp_path, progress=False, overrides=TINY, settings=("mse-minibatch",), seeds=(0, 1))
    dump = json.loads((tmp_path / "profiles.json").read_text())
    assert set(dump["runs"]) == {f"mse-minibatch-{r}-seed{s}" for r in ("pal", "pal-beta-0-4") for s in (0, 1)}
    with RunStore.in_dir(tmp_path) as store:
        assert sorted(store.get_run(dump["runs"][f"mse-minibatch-pal-seed{s}"]["run_id"]).seed for s in (0, 1)) == [0, 1]
    for k, run in enumerate(("pal", "pal-beta-0-4")):
        per_seed = [dump["runs"][f"mse-minibatch-{run}-seed{s}"]["summary"] for s in (0, 1)]
        assert per_seed[0]["r2_wide_batch_median"] != per_seed[1]["r2_wide_batch_median"]  # different seeds
        r2 = claims[5 * k]
        assert r2.value == pytest.approx(np.median([p["r2_wide_batch_median"] for p in per_seed]))
        assert r2.detail.startswith("2 seeds: seed 0: ") and "range" in r2.detail
        ratio = claims[5 * k + 3]
        alpha = dump["runs"][f"mse-minibatch-{run}-seed0"]["config"]["optimizer"]["alpha"]
        each = [alpha / pal.RATIO_FACTOR <= p["ratio_batch_median"] <= alpha * pal.RATIO_FACTOR for p in per_seed]
        assert ratio.holds == all(each)  # holds only if it holds in every seed
    with pytest.raises(ValueError, match="no seeds"):
        pal.reproduce(tmp_path / "none", progress=False, overrides=TINY, settings=("mse-minibatch",), seeds=())


@pytest.mark.slow
def test_quick_reproduction_finds_parabolic_convex_lines(tmp_path):
    claims = pal.reproduce(tmp_path, quick=True, progress=False)
    dump = json.loads((tmp_path / "profiles.json").read_text())
    assert len(dump["runs"]) == 3
    for run in dump["runs"].values():
        assert run["replay_max_abs_loss_diff"] == 0.0
        s = run["summary"]
        assert s["max_check"] < 1e-5
        assert s["r2_wide_batch_median"] >= 0.95 and s["r2_local_batch_median"] >= 0.95
        assert s["convex_wide_batch"] == 1.0
        assert 1.1 < s["ratio_batch_median"] < 2.5
    parabola = [c for c in claims if ("locally almost a parabola" in c.claim or "locally convex" in c.claim)
                and c.value != "not run"]
    assert len(parabola) == 9 and all(c.holds for c in parabola)
    assert sum(c.value == "not run" for c in claims) == 5 * 4  # PAL β=0.4 full batch and the three CE runs
