"""The adaptive edge-of-stability reproduction (Cohen et al. 2022)."""
import json

import numpy as np
import pytest

from eoslab.experiments.adaptive_eos import TOLERANCE, claims_for, summarise
from eoslab.experiments.recipes import load_recipe
from eoslab.train import train


def test_recipes_load_and_name_adaptive_rules():
    for name, rule in [("adaptive-eos", "adam"), ("adaptive-eos-beta0", "adam"),
                       ("adaptive-eos-rmsprop", "rmsprop"), ("adaptive-eos-frozen", "frozen-adam")]:
        cfg = load_recipe(name)
        assert cfg.optimizer.name == rule
    lrs = load_recipe("adaptive-eos").lrs
    assert max(lrs) / min(lrs) >= 10
    assert load_recipe("adaptive-eos-beta0").optimizer.beta1 == 0.0


def test_claims_from_summary_rows():
    row = dict(eta=0.001, threshold=38.0, paper_threshold=38000.0, status="completed", diverged_step=None,
               median_ratio=1.02, iqr_ratio=0.03, median_preconditioned=38760.0, first_step_at_edge=200,
               raw_at_edge=22.0, raw_final=33.0, raw_growth=1.5, raw_lambda0=4.0, ratio_at_freeze=float("nan"),
               final_loss=0.002)
    claims = claims_for([row], "Adam", ("edge", "growth"), 1000)
    assert [c.holds for c in claims] == [True, True]
    claims = claims_for([dict(row, median_ratio=1.2)], "Adam", ("edge", "growth"), 1000)
    assert [c.holds for c in claims] == [False, False]
    claims = claims_for([dict(row, status="diverged", diverged_step=5)], "Adam", ("edge",), 1000)
    assert claims[0].holds is False and "diverged" in claims[0].detail


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
    json.dumps(rows)  # plain numbers
    assert np.isfinite([r["median_preconditioned"] for r in rows]).all()


def test_registered_in_the_cli():
    from eoslab.cli import REPRODUCTIONS
    assert REPRODUCTIONS["adaptive-eos"] == "eoslab.experiments.adaptive_eos"


@pytest.mark.slow
def test_minibatch_sweep_runs_and_reports(tmp_path):
    from eoslab.experiments.adaptive_eos import minibatch_sweep
    from eoslab.store import RunStore
    with RunStore.in_dir(tmp_path) as store:
        claims, table, ratios = minibatch_sweep(
            tmp_path, store, progress=False, overrides=["train.steps=50", "data.n_train=300"],
            batch_sizes=(32, 128), seeds=(0, 1))
    assert set(ratios) == {32, 128} and all(len(r) == 2 for r in ratios.values())
    assert len(claims) == 1 and claims[0].holds in (True, False) and "128" in table
