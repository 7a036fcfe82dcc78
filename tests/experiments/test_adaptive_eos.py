"""The adaptive edge-of-stability reproduction (Cohen et al. 2022)."""
import json

import numpy as np
import pytest

from eoslab.experiments import adaptive_eos
from eoslab.experiments.adaptive_eos import TOLERANCE, claims_for, minibatch_claim, summarise, summarise_member
from eoslab.train.recipes import load_recipe
from eoslab.store import RunStore
from eoslab.train import train


def test_recipes_load_and_name_adaptive_rules():
    for name, rule in [("adaptive-eos", "adam"), ("adaptive-eos-beta0", "adam"),
                       ("adaptive-eos-rmsprop", "rmsprop"), ("adaptive-eos-frozen", "frozen-adam")]:
        cfg = load_recipe(name)
        assert cfg.optimizer.name == rule
    lrs = load_recipe("adaptive-eos").lrs
    assert max(lrs) / min(lrs) >= 10
    assert load_recipe("adaptive-eos-beta0").optimizer.hp.beta1 == 0.0


# ---- the claim rules on synthetic series ------------------------------------------------

T, ETA, THR = 1000, 0.001, 38.0  # the effective threshold (P includes eta)


def _metrics(ratio, raw=lambda t: 20.0, converged=1.0, every=25):
    """Series of an adaptive run: lambda_1(P^-1 H) = THR * ratio(t) from step 1 and lambda_1(H) = raw(t), at eval
    steps (certified unless converged=0)."""
    s = np.arange(0, T + 1, every)
    e = s[1:]
    return {"effective_sharpness": (e, THR * np.asarray([ratio(x) for x in e], float)),
            "effective_sharpness_converged": (e, np.full(len(e), converged)),
            "effective_sharpness_error": (e, np.full(len(e), 1e-5)),
            "sharpness": (s, np.asarray([raw(x) for x in s], float)),
            "sharpness_converged": (s, np.full(len(s), converged)), "sharpness_error": (s, np.full(len(s), 1e-6)),
            "train_loss": (s, np.exp(-s / 500))}


def _rise_to(level, by, wiggle=0.02):
    """Ratio rising linearly from 0.2 to ``level`` by step ``by``, then level * (1 +- wiggle)."""
    return lambda t: 0.2 + (level - 0.2) * t / by if t < by else level * (1 + wiggle * np.sin(t / 30))


def _claims(kinds, metrics, freeze=0, status="completed", diverged=None):
    row = summarise_member(metrics, eta=ETA, threshold=THR, total=T, status=status, diverged_step=diverged,
                           freeze_step=freeze)
    return claims_for([row], "Adam", kinds, T)


def test_edge_and_growth_claims_hold_at_the_edge_with_a_rising_raw_sharpness():
    claims = _claims(("edge", "growth"), _metrics(_rise_to(1.0, 300), raw=lambda t: 10 + t / 20))
    assert [c.holds for c in claims] == [True, True]
    assert claims[0].value == pytest.approx(1.0, abs=0.02) and claims[1].value == pytest.approx(60 / 23.75, rel=0.02)
    assert claims[0].accuracy.used == 40 and claims[1].accuracy.used == 40 + 41


def test_edge_and_growth_claims_fail_off_the_edge_or_with_a_flat_raw_sharpness():
    above = _claims(("edge", "growth"), _metrics(_rise_to(1.2, 300), raw=lambda t: 10 + t / 20))
    assert [c.holds for c in above] == [False, False]
    flat = _claims(("edge", "growth"), _metrics(_rise_to(1.0, 300), raw=lambda t: 20.0))
    assert [c.holds for c in flat] == [True, False] and flat[1].value == pytest.approx(1.0)


def test_frozen_claim_needs_the_rise_and_the_plateau():
    ok = _claims(("frozen",), _metrics(_rise_to(1.0, 400)), freeze=100)
    assert ok[0].holds is True and "rise: ratio 0.4" in ok[0].detail
    already = _claims(("frozen",), _metrics(_rise_to(1.0, 50)), freeze=100)  # at the edge before the freeze
    assert already[0].holds is False and "(no); plateau" in already[0].detail
    swinging = _claims(("frozen",), _metrics(_rise_to(1.0, 400, wiggle=0.15)), freeze=100)  # no plateau
    assert swinging[0].holds is False and abs(swinging[0].value - 1) <= TOLERANCE  # the median alone would pass


def test_claims_without_converged_values_are_not_tested_and_diverged_runs_fail():
    claims = _claims(("edge", "growth"), _metrics(_rise_to(1.0, 300), converged=0.0))
    assert [c.holds for c in claims] == [None, None] and claims[0].detail.startswith("not tested")
    assert claims[0].accuracy.unconverged == 40
    diverged = _claims(("edge",), _metrics(_rise_to(1.0, 300)), status="diverged", diverged=900)
    assert diverged[0].holds is False and "diverged" in diverged[0].detail


def test_minibatch_claim_checks_the_direction_in_every_seed():
    good = {64: {0: 0.70, 1: 0.75, 2: 0.72}, 256: {0: 0.85, 1: 0.88, 2: 0.8}, 1024: {0: 0.95, 1: 0.97, 2: 1.02}}
    claim = minibatch_claim(good)
    assert claim.holds is True and claim.value == {64: 0.72, 256: 0.85, 1024: 0.97}
    reversed_ = {64: good[1024], 1024: good[64]}  # closer to the threshold at the smaller batch
    assert minibatch_claim(reversed_).holds is False
    above = {64: {0: 1.3, 1: 1.35, 2: 1.4}, 1024: good[1024]}  # farther at the smaller batch, but above it
    assert minibatch_claim(above).holds is False and "below 1 at batch 64 in every seed: no" in minibatch_claim(
        above).detail
    one_seed_off = {64: {0: 0.70, 1: 0.98, 2: 0.72}, 1024: good[1024]}  # seed 1: 0.98 is closer than 0.97
    assert minibatch_claim(one_seed_off).holds is False
    far = {64: {0: 0.3, 1: 0.3, 2: 0.3}, 1024: {0: 0.6, 1: 0.65, 2: 0.7}}  # right direction, never near the edge
    assert minibatch_claim(far).holds is False
    diverged = {64: {0: float("nan"), 1: 0.75, 2: 0.72}, 1024: good[1024]}
    assert minibatch_claim(diverged).holds is False
    two = {bs: {s: r for s, r in rs.items() if s < 2} for bs, rs in good.items()}
    assert minibatch_claim(two).holds is None and minibatch_claim(two).detail.startswith("not tested")


# ---- the reproduction through reproduce() -----------------------------------------------

TINY = ["train.steps=60", "train.eval_every=20", "data.n_train=200", "model.widths=[32]"]


def test_quick_reproduction_marks_quick_and_keeps_every_claim(tmp_path):
    # In its own process: inside a long-lived pytest worker (after hundreds of other tests), XLA's CPU compiler
    # aborted the whole worker while compiling this reproduction's eval step (twice, in full-suite runs; never
    # when run alone).  The likely cause is the kernel's vm.max_map_count (which make test raises when it can, see
    # the Makefile); a fresh process keeps the check and the rest of the suite safe where it cannot be raised.
    import subprocess
    import sys
    code = ("import json, sys, jax; jax.config.update('jax_enable_x64', True); "
            "from eoslab.experiments import adaptive_eos; "
            "c = adaptive_eos.reproduce(sys.argv[1], quick=True, progress=False, overrides=json.loads(sys.argv[2])); "
            "print(len(c))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path), json.dumps(TINY)],  # frozen at step 25 < 60
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    num_claims = int(out.stdout.strip().splitlines()[-1])
    rows = json.loads((tmp_path / "claims.json").read_text())
    # Adam: 3 step sizes x (edge, growth); beta1 = 0: 3; RMSProp: 2; frozen: 2; the minibatch claim, not run
    assert len(rows) == num_claims == 6 + 3 + 2 + 2 + 1
    assert all(r["quick"] is True for r in rows)
    assert "(--quick" in (tmp_path / "claims.md").read_text().splitlines()[0]
    assert rows[-1]["holds"] is None and rows[-1]["detail"].startswith("not run: --quick")
    with RunStore.in_dir(tmp_path) as store:
        counts = {}
        for run in store.list_runs():
            m = store.get_metrics(run.id)
            counts.setdefault(run.name, []).append(len(m["effective_sharpness"][0]))
    for r in rows[:-1]:  # every claim rests on eigenvalues and says how many it used and left out
        assert r["accuracy"] is not None
        if r["holds"] is None:
            assert r["detail"].startswith("not tested: no converged")
    assert rows[0]["accuracy"]["used"] + rows[0]["accuracy"]["unconverged"] == counts["adaptive-eos-adam"][0]
    assert (tmp_path / "adaptive-eos.png").is_file()


@pytest.mark.slow
def test_adam_preconditioned_sharpness_equilibrates_at_38_over_eta(tmp_path):
    cfg = load_recipe("adaptive-eos", ["train.steps=1000"])
    result = train(cfg, results_dir=tmp_path, progress=False)
    rows = summarise(result)
    for i, row in enumerate(rows):
        assert row["status"] == "completed"
        assert row["threshold"] == pytest.approx(38.0)
        assert abs(row["median_ratio"] - 1) <= TOLERANCE, (row["eta"], row["median_ratio"])
        _, raw = result.series(i, "sharpness")
        assert raw[0] < 0.2 * 38.0 / row["eta"]  # the raw sharpness starts far below 38/eta
    # the raw sharpness keeps rising at the smallest step size while the preconditioned one is at 38/eta
    assert rows[0]["raw_growth"] > 1.1
    assert np.isfinite([r["median_preconditioned"] for r in rows]).all()


def test_registered_in_the_cli():
    from eoslab.cli import REPRODUCTIONS
    assert REPRODUCTIONS["adaptive-eos"].module == "eoslab.experiments.adaptive_eos"


@pytest.mark.slow
def test_minibatch_sweep_runs_and_reports(tmp_path):
    from eoslab.experiments.adaptive_eos import minibatch_sweep
    with RunStore.in_dir(tmp_path) as store:
        claims, table, ratios = minibatch_sweep(
            tmp_path, store, progress=False, overrides=["train.steps=50", "data.n_train=300"],
            batch_sizes=(32, 128), seeds=(0, 1, 2))
    assert set(ratios) == {32, 128} and all(len(r) == 3 for r in ratios.values()) and "128" in table
    (claim,) = claims
    # the claim is what its criterion says of the ratios it reports
    small, large = np.asarray(list(ratios[32].values())), np.asarray(list(ratios[128].values()))
    expected = bool(np.all(small < 1) and np.all(np.abs(large - 1) < np.abs(small - 1))
                    and np.median(np.abs(large - 1)) <= adaptive_eos.MINIBATCH_LARGEST)
    assert claim.holds is expected and claim.accuracy is not None
