"""The step-size tuners reproduction (Roulet, Agarwala, Pedregosa 2023; CDAT, Roulet et al. 2024)."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eoslab.experiments import tuners
from eoslab.experiments.recipes import load_recipe
from eoslab.store import RunStore

TINY = ["train.steps=60", "train.eval_every=20", "data.n_train=200", "model.widths=[32]"]
STEPS = 60


def test_recipes_load_with_the_papers_settings():
    cfgs = {m.key: load_recipe(m.recipe) for m in tuners.FULL_BATCH}
    assert {m.recipe for m in tuners.FULL_BATCH} == {c.name for c in cfgs.values()}
    assert [c.optimizer.name for c in cfgs.values()] == ["gd", "armijo", "polyak", "parabolic", "edge", "edge"]
    for c in cfgs.values():  # one setting: only the update rule differs
        assert (c.data, c.model, c.loss, c.train, c.seed) == (cfgs["gd"].data, cfgs["gd"].model, cfgs["gd"].loss,
                                                               cfgs["gd"].train, 0)
        assert c.optimizer.batch_size == 0 and c.probes.sharpness_k == 1
    assert len(cfgs["gd"].lrs) >= 4
    arm = cfgs["armijo"].optimizer
    assert arm.step_init == "reset" and cfgs["armijo"].lrs == (10.0,)
    pol = cfgs["polyak"].optimizer
    assert (pol.f_star, pol.polyak_c, pol.polyak_variant) == (0.0, 1.0, "max")
    pal = cfgs["pal"].optimizer  # PAL's published defaults
    assert cfgs["pal"].lrs == (3.16,) and pal.mu == 1.0 and pal.alpha == pytest.approx(1 / 0.6)
    assert pal.conjugate_beta == 0.0
    assert (cfgs["cdat1"].optimizer.sigma, cfgs["cdat2"].optimizer.sigma) == (1.0, 2.0)
    assert cfgs["cdat1"].optimizer.ema == cfgs["cdat2"].optimizer.ema == 0.0
    for m in tuners.STOCHASTIC:
        c = load_recipe(m.recipe)
        assert c.name == m.recipe and c.optimizer.batch_size > 0 and c.model == cfgs["gd"].model
    for m in tuners.FULL_BATCH:  # the quick and CIFAR variants are valid configs too
        load_recipe(m.recipe, list(tuners.QUICK_OVERRIDES))
        cifar = load_recipe(m.recipe, [*tuners.CIFAR_OVERRIDES, *([tuners.CIFAR_GD_LRS] if m.key == "gd" else [])])
        assert cifar.data.name == "cifar10-5k"


def test_cifar_variant_without_its_files_is_a_data_error(tmp_path, monkeypatch):
    from eoslab.errors import DataError
    monkeypatch.setenv("EOSLAB_DATA", str(tmp_path))
    with RunStore.in_dir(tmp_path) as store, pytest.raises(DataError):
        tuners.run_methods(tuners.FULL_BATCH[1:2], list(tuners.CIFAR_OVERRIDES), tmp_path, store, False)


def test_registered_in_the_cli():
    from eoslab.cli import REPRODUCTIONS
    assert REPRODUCTIONS["tuners"] == "eoslab.experiments.tuners"


def _row(key, **kw):
    row = dict(method=key, label=key, recipe=f"tuners-{key}", lr=1.0, batch_size=0, steps=1000, status="completed",
               diverged_step=None, run_id=1, final_loss=0.03, last_loss=0.03, final_test_accuracy=0.98,
               lambda0=4.0, lambda10=6.0, lambda75=15.0, lambda_end=18.0, growth=3.0, late_growth=1.2,
               median_eta=0.2, median_edge=1.8, median_edge_second_half=1.9, median_edge_first_quarter=1.6,
               quartiles_edge_second_half=(1.5, 2.5),
               frac_below_edge=0.7, median_step_curvature=1.4, loss_evals=1.0, grad_evals=1.0, success=1.0)
    row.update(kw)
    return row


def _rows(**overrides):
    rows = {"gd": [_row("gd", lr=0.4, final_loss=0.04), _row("gd", lr=0.8, final_loss=0.035),
                   _row("gd", lr=1.6, status="diverged", diverged_step=3, final_loss=float("nan"))],
            "armijo": [_row("armijo", final_loss=0.045)],
            "polyak": [_row("polyak", final_loss=0.02, median_edge_second_half=2.4)],
            "pal": [_row("pal")],
            "cdat1": [_row("cdat1", final_loss=0.045)],
            "cdat2": [_row("cdat2", final_loss=0.03, median_edge_second_half=2.1)]}
    for key, kw in overrides.items():
        rows[key] = [dict(rows[key][0], **kw)]
    return rows


def test_claims_from_summary_rows():
    claims = tuners.full_batch_claims(_rows())
    assert [c.holds for c in claims] == [True] * 8
    assert claims[4].value == pytest.approx(0.02 / 0.035)  # the best converged GD is the baseline
    assert "η=0.8" in claims[3].detail
    flipped = tuners.full_batch_claims(_rows(armijo=dict(growth=1.4, median_edge=2.1, final_loss=0.01),
                                             polyak=dict(median_edge_second_half=3.5, final_loss=0.04),
                                             cdat2=dict(median_edge_second_half=2.5, final_loss=0.05)))
    assert [c.holds for c in flipped] == [False] * 8
    still_rising = tuners.full_batch_claims(_rows(armijo=dict(late_growth=0.95)))
    assert still_rising[0].holds is False  # the sharpness has stopped rising over the last quarter
    diverged = tuners.full_batch_claims(_rows(polyak=dict(status="diverged", diverged_step=10,
                                                          final_loss=float("nan"))))
    assert diverged[2].holds is False and diverged[3].holds is False
    assert all(c.claim.startswith("[CIFAR-10-5k] ") for c in tuners.full_batch_claims(_rows(), "CIFAR-10-5k"))


def test_stochastic_claim_compares_rankings_across_batch_sizes():
    def by_batch(gd, arm, pol):
        return {"gd": [_row("gd", final_loss=gd), _row("gd", final_loss=10 * gd)],
                "armijo": [_row("armijo", final_loss=arm)], "polyak": [_row("polyak", final_loss=pol)]}
    same = tuners.stochastic_claims({64: by_batch(0.03, 0.04, 0.02), 256: by_batch(0.02, 0.03, 0.01)})
    assert same[0].holds is False  # same ranking, loss ratios 1.5, 1.33, 2: spread 1.5
    assert same[0].value[64]["Armijo"] == 0.04 and same[0].value[256]["SGD (constant η)"] == 0.02
    swapped = tuners.stochastic_claims({64: by_batch(0.03, 0.02, 0.04), 256: by_batch(0.02, 0.03, 0.01)})
    assert swapped[0].holds is True and "Armijo < SGD" in swapped[0].detail
    spread = tuners.stochastic_claims({64: by_batch(0.03, 0.04, 0.02), 256: by_batch(0.01, 0.035, 0.015)})
    assert spread[0].holds is True  # same ranking, but loss ratios 3 vs 1.14


# ---- the reproduction on a tiny setting -------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tuners")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("EOSLAB_DATA", raising=False)  # no CIFAR-10-5k variant
        claims = tuners.reproduce(out, progress=False, overrides=TINY, batch_sizes=())
    return out, claims


def _runs(out):
    """recipe name -> [(run record, metrics)] from the run store alone."""
    with RunStore.in_dir(out) as store:
        runs = {}
        for rec in store.list_runs():
            runs.setdefault(rec.name, []).append((rec, store.get_metrics(rec.id)))
    return runs


def _window(metrics, name, lo, hi=STEPS):
    s, v = metrics[name]
    return v[(s >= lo) & (s <= hi)]


def _eta_lambda(metrics, lo):
    """eta_t * lambda_t at the eval steps >= lo, from the tuner's step and the sharpness stored there."""
    (s1, eta), (s2, lam) = metrics["tuned_step_size"], metrics["sharpness"]
    assert np.array_equal(s1, s2)
    return (eta * lam)[(s1 >= lo) & (s1 <= STEPS)]


def _final_loss(metrics):
    return float(np.median(_window(metrics, "loss", STEPS - STEPS // 10, STEPS - 1)))


def test_tiny_reproduction_writes_its_outputs(tiny):
    out, claims = tiny
    for name in ("claims.md", "claims.json", "table.txt", "tuners.png", "tuners.pdf"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not (out / "tuners-stochastic.png").exists()  # no batch sizes: no stochastic sweep
    rows = json.loads((out / "claims.json").read_text())
    assert len(rows) == len(claims) == 8
    for row, claim in zip(rows, claims):
        assert set(row) >= {"claim", "quantity", "value", "holds"}
        assert isinstance(row["holds"], bool) and row["claim"] == claim.claim
        assert isinstance(row["value"], float) and math.isfinite(row["value"]), row
    table = (out / "table.txt").read_text()
    for label in ("GD (constant η)", "Armijo", "Polyak SPS_max", "PAL", "CDAT σ=1", "CDAT σ=2", "f/step"):
        assert label in table
    assert "| Polyak steps (SPS_max, f* = 0) operate at the edge" in (out / "claims.md").read_text()


def test_tiny_claim_values_match_the_store(tiny):
    out, claims = tiny
    runs = _runs(out)
    assert set(runs) == {m.recipe for m in tuners.FULL_BATCH}
    by = {c.claim.split(" ")[0] + str(i): c for i, c in enumerate(claims)}
    armijo = runs["tuners-armijo"][0][1]
    polyak = runs["tuners-polyak"][0][1]
    cdat1, cdat2 = runs["tuners-cdat1"][0][1], runs["tuners-cdat2"][0][1]

    s, lam = armijo["sharpness"]
    growth = lam[s == STEPS][0] / lam[s >= STEPS // 10][0]
    assert by["Armijo0"].value == pytest.approx(growth, rel=1e-12)
    assert by["Armijo1"].value == pytest.approx(np.median(_eta_lambda(armijo, 1)), rel=1e-12)
    assert by["Polyak2"].value == pytest.approx(np.median(_eta_lambda(polyak, STEPS // 2)), rel=1e-12)
    assert by["CDAT7"].value == pytest.approx(np.median(_eta_lambda(cdat2, STEPS // 2)), rel=1e-12)

    gd = [_final_loss(m) for rec, m in runs["tuners-gd"] if rec.status == "completed"]
    assert len(gd) >= 4
    final = {name: _final_loss(runs[name][0][1]) for name in
             ("tuners-armijo", "tuners-polyak", "tuners-cdat1", "tuners-cdat2")}
    assert by["Polyak3"].value == pytest.approx(final["tuners-polyak"] / final["tuners-armijo"], rel=1e-12)
    assert by["Polyak4"].value == pytest.approx(final["tuners-polyak"] / min(gd), rel=1e-12)
    assert by["Armijo5"].value == pytest.approx(final["tuners-armijo"] / min(gd), rel=1e-12)
    assert by["CDAT6"].value == pytest.approx(final["tuners-cdat2"] / final["tuners-cdat1"], rel=1e-12)
    # the edge ratio the trainer stores is eta_t * lambda_t / 2
    s, ratio = polyak["edge_ratio"]
    assert np.allclose(ratio[s >= 1], _eta_lambda(polyak, 1) / 2)
    # CDAT's step along -g is sigma / (curvature along -g): eta_t * g.Hg/|g|^2 = sigma at every step
    assert np.allclose(cdat1["step_curvature"][1], 1.0, rtol=1e-3)
    assert np.allclose(cdat2["step_curvature"][1], 2.0, rtol=1e-3)


def test_tiny_evaluation_counts(tiny):
    out, _ = tiny
    runs = _runs(out)
    table = {line.split("  ")[0]: line for line in (out / "table.txt").read_text().splitlines()}

    def per_step(name, metric):
        return 1 + float(np.mean(runs[name][0][1][metric][1][:STEPS]))
    for name, label in [("tuners-armijo", "Armijo"), ("tuners-polyak", "Polyak SPS_max"), ("tuners-pal", "PAL"),
                        ("tuners-cdat2", "CDAT σ=2")]:
        fields = table[label].split()
        assert float(fields[-2]) == pytest.approx(per_step(name, "tuner_values"), abs=0.006), label
        assert float(fields[-1]) == pytest.approx(per_step(name, "tuner_grads"), abs=0.006), label
    assert per_step("tuners-armijo", "tuner_values") >= 2  # reset to 10: at least one trial value per step
    assert per_step("tuners-polyak", "tuner_values") == 1 and per_step("tuners-polyak", "tuner_grads") == 1
    assert per_step("tuners-pal", "tuner_values") == 2  # one measuring point per step
    assert per_step("tuners-cdat2", "tuner_grads") == 2  # one Hessian-vector product per step


def test_tiny_polyak_step_and_sharpness_recomputed_at_the_final_parameters(tiny):
    """From the saved parameters alone: f/|g|^2 and the top eigenvalue of the dense Hessian."""
    from eoslab.train.config import config_from_dict
    from eoslab.train.objective import build_problem
    out, _ = tiny
    rec, metrics = _runs(out)["tuners-polyak"][0]
    cfg = config_from_dict(rec.config)
    problem = build_problem(cfg)
    template = problem.model.init(jax.random.PRNGKey(cfg.seed))
    saved = np.load(out / "params" / f"run-{rec.id}.npz")
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    params = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(saved[jax.tree_util.keystr(p)]) for p, _ in paths])
    loss, grad = jax.value_and_grad(problem.train_loss)(params)
    flat, unravel = ravel_pytree(params)
    step = min(float(loss) / float(jnp.vdot(ravel_pytree(grad)[0], ravel_pytree(grad)[0])), cfg.optimizer.lr)
    hessian = jax.hessian(lambda x: problem.train_loss(unravel(x)))(flat)
    top = float(np.linalg.eigvalsh(np.asarray(hessian, np.float64))[-1])
    s, eta = metrics["tuned_step_size"]
    _, lam = metrics["sharpness"]
    assert eta[s == STEPS][0] == pytest.approx(step, rel=1e-4)
    assert lam[s == STEPS][0] == pytest.approx(top, rel=2e-3)


@pytest.mark.slow
def test_quick_reproduction_shows_the_papers_effects(tmp_path):
    claims = tuners.reproduce(tmp_path, quick=True, progress=False)
    by = {c.claim: c for c in claims}

    def find(prefix):
        (claim,) = [c for k, c in by.items() if k.startswith(prefix)]
        return claim
    assert find("Armijo (full batch, reset").holds  # Armijo's sharpness grows by >= 1.5x and still rises
    assert find("CDAT σ=2 operates at the edge").holds  # CDAT on edge: eta*lambda within 15% of 2
    assert find("CDAT on edge (σ=2) outperforms").holds
    assert find("Polyak steps outperform Armijo").holds
    rows = _runs(tmp_path)
    polyak = rows["tuners-polyak"][0][1]
    s, eta = polyak["tuned_step_size"]
    lam = polyak["sharpness"][1]
    edge = (eta * lam)[s >= 1]
    assert 1.5 <= np.median(edge) <= 3.0  # Polyak at the edge over the run (the second half alone: 1.64)
    assert np.percentile(edge, 75) > 2  # and beyond it on at least a quarter of the eval steps
    assert not (tmp_path / "tuners-stochastic.png").exists()


@pytest.mark.slow
def test_stochastic_sweep_runs_and_reports(tmp_path, monkeypatch):
    monkeypatch.delenv("EOSLAB_DATA", raising=False)
    claims = tuners.reproduce(tmp_path, progress=False, overrides=TINY, batch_sizes=(32, 64))
    sto = [c for c in claims if c.claim.startswith("[stochastic]")]
    assert len(sto) == 1 and sto[0].holds in (True, False) and set(sto[0].value) == {32, 64}
    assert (tmp_path / "tuners-stochastic.png").is_file()
    runs = _runs(tmp_path)
    for m in tuners.STOCHASTIC:
        batches = sorted(rec.config["optimizer"]["batch_size"] for rec, _ in runs[m.recipe])
        assert set(batches) == {32, 64}
        for rec, metrics in runs[m.recipe]:  # the stochastic final loss: the full training loss at eval steps
            if rec.status == "completed" and rec.config["optimizer"]["name"] != "gd":
                bs = rec.config["optimizer"]["batch_size"]
                tl = float(np.median(_window(metrics, "train_loss", STEPS - STEPS // 10)))
                assert sto[0].value[bs][m.label] == pytest.approx(tl, rel=1e-12)
    table = (tmp_path / "table.txt").read_text()
    assert "stochastic, batch size 32" in table and "stochastic, batch size 64" in table

