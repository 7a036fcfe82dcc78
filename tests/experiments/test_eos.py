"""The classic edge-of-stability reproduction (Cohen et al. 2021) and the claims-table convention."""
import json

import numpy as np
import pytest

from eoslab.experiments.claims import Claim, write_claims
from eoslab.experiments.eos import summarise
from eoslab.experiments.recipes import load_recipe
from eoslab.train import train


def test_claims_files(tmp_path):
    claims = [Claim("a claim", "a quantity", 1.5, True), Claim("b", "q", float("nan"), False, detail="x|y")]
    md, js = write_claims(tmp_path, claims, "Title")
    rows = json.loads(js.read_text())
    assert [set(r) >= {"claim", "quantity", "value", "holds"} for r in rows] == [True, True]
    assert rows[1]["holds"] is False and rows[1]["value"] == "nan"
    text = md.read_text()
    assert "| a claim | a quantity | 1.5 | yes |" in text and "**no**" in text and "x\\|y" in text


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
