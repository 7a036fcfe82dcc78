"""The trainer: probes against ground truth, divergence, determinism, checkpoints."""
import numpy as np
import pytest

from eoslab.curvature import top_eigenpairs
from eoslab.store import RunStore
from eoslab.train import Trainer, config_from_dict, train


def test_metrics_and_sharpness_against_a_cold_solve(tmp_path, tiny):
    cfg = config_from_dict(tiny)
    res = train(cfg, results_dir=tmp_path, progress=False)
    assert res.status == ["completed", "completed"]
    for i in range(2):
        steps, loss = res.series(i, "loss")
        np.testing.assert_array_equal(steps, np.arange(60))
        s, lam = res.series(i, "sharpness")
        np.testing.assert_array_equal(s, [0, 20, 40, 60])
        np.testing.assert_allclose(res.series(i, "edge_ratio")[1], lam / (2 / cfg.lrs[i]), rtol=1e-12)
        # every stored value is certified: converged, error estimate within probes.tol, below the residual bound
        np.testing.assert_array_equal(res.series(i, "sharpness_converged")[1], 1.0)
        err = res.series(i, "sharpness_error")[1]
        assert np.all(err <= 1e-4 * lam) and np.all(err <= res.series(i, "sharpness_residual")[1] * (1 + 1e-6))
        np.testing.assert_allclose(res.series(i, "effective_sharpness_error")[1], cfg.lrs[i] * err, rtol=1e-12)
    # the final tracked sharpness equals a cold solve at the saved final parameters
    trainer = Trainer(cfg)
    z = np.load(tmp_path / "params" / f"run-{res.run_ids[0]}.npz")
    params = trainer.problem.model.init(0)
    import jax
    leaves = jax.tree_util.tree_leaves_with_path(params)
    params = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params),
                                          [z[jax.tree_util.keystr(p)] for p, _ in leaves])
    cold = top_eigenpairs(trainer.problem.sharpness_loss, params, 1, tol=1e-6)
    np.testing.assert_allclose(res.series(0, "sharpness")[1][-1], cold.eigenvalues[0], rtol=2e-4)
    # full-batch GD: the per-step loss at step 20 is the eval train loss at step 20
    np.testing.assert_allclose(res.series(0, "loss")[1][20], res.series(0, "train_loss")[1][1], rtol=1e-5)


def test_budget_capped_solves_are_stored_as_unconverged_and_refreshes_are_scheduled(tmp_path, tiny):
    tiny["probes"].update(tol=1e-9, eval_max_hvps=3)  # far too small a budget for 1e-9
    res = train(config_from_dict(tiny), results_dir=tmp_path, progress=False)
    for i in range(2):
        np.testing.assert_array_equal(res.series(i, "sharpness_converged")[1], 0.0)
        s, lam = res.series(i, "sharpness")
        assert np.all(res.series(i, "sharpness_error")[1] > 1e-9 * lam)
    # with room, every eval converges; a cold check every 40 steps costs extra products at step 40 only
    tiny["probes"].update(tol=1e-4, eval_max_hvps=0, refresh_every=40)
    tiny["optimizer"]["lr"] = [0.1]
    res = train(config_from_dict(tiny), results_dir=tmp_path / "b", progress=False)
    np.testing.assert_array_equal(res.series(0, "sharpness_converged")[1], 1.0)
    steps, hvps = res.series(0, "sharpness_hvps")
    assert hvps[list(steps).index(40)] > max(hvps[list(steps).index(20)], hvps[list(steps).index(60)])


def test_divergence_is_a_recorded_result(tmp_path, tiny):
    tiny["optimizer"]["lr"] = [0.1, 40.0]
    res = train(config_from_dict(tiny), results_dir=tmp_path, progress=False)
    assert res.status == ["completed", "diverged"]
    k = res.diverged_step[1]
    assert k is not None and 0 < k < 60
    with RunStore.in_dir(tmp_path) as store:
        rec = store.get_run(res.run_ids[1])
        assert rec.status == "diverged" and rec.diverged_step == k
    # the healthy member is unaffected by its diverging sibling (equal up to float32 rounding:
    # a batch of two members is computed with another reduction order than a batch of one)
    alone = dict(tiny, optimizer={"name": "gd", "lr": [0.1]})
    res1 = train(config_from_dict(alone), results_dir=tmp_path / "alone", progress=False)
    np.testing.assert_allclose(res1.series(0, "loss")[1], res.series(0, "loss")[1], rtol=1e-5)
    assert np.all(np.isfinite(res.series(0, "sharpness")[1]))


def test_same_config_and_seed_are_bitwise_identical(tmp_path, tiny):
    cfg = config_from_dict(tiny)
    a = train(cfg, results_dir=tmp_path / "a", progress=False)
    b = train(cfg, results_dir=tmp_path / "b", progress=False)
    for i in range(2):
        for name in a.metrics[i]:
            np.testing.assert_array_equal(a.metrics[i][name][1], b.metrics[i][name][1], err_msg=name)


def test_every_step_tracking_matches_eval_probes(tmp_path, tiny):
    tiny["probes"]["every_step"] = True
    tiny["optimizer"]["lr"] = [0.3]
    tiny["train"]["dtype"] = "float64"
    res = train(config_from_dict(tiny), results_dir=tmp_path, progress=False)
    steps, lam = res.series(0, "sharpness")
    np.testing.assert_array_equal(steps, np.arange(61))
    tiny["probes"]["every_step"] = False
    ref = train(config_from_dict(tiny), results_dir=tmp_path / "ref", progress=False)
    np.testing.assert_allclose(lam[[0, 20, 40, 60]], ref.series(0, "sharpness")[1], rtol=1e-3)
    assert np.median(res.series(0, "sharpness_hvps")[1]) <= 10
    # the step reuses the loss and gradient of the solve's linearisation: same trajectory as plain GD
    np.testing.assert_allclose(res.series(0, "loss")[1], ref.series(0, "loss")[1], rtol=1e-10)
    np.testing.assert_allclose(res.series(0, "train_loss")[1], ref.series(0, "train_loss")[1], rtol=1e-10)


def test_minibatch_and_stop_rules(tmp_path, tiny):
    tiny["optimizer"].update(batch_size=50, lr=[0.2])
    tiny["train"].update(steps=200, stop_loss=0.3)
    res = train(config_from_dict(tiny), results_dir=tmp_path, progress=False)
    steps, train_loss = res.series(0, "train_loss")
    assert train_loss[-1] < 0.3 and steps[-1] < 200  # stopped at the first eval below the goal
    assert np.all(train_loss[:-1] >= 0.3)
    # minibatch losses differ from the full-batch loss at the same step
    assert not np.isclose(res.series(0, "loss")[1][0], train_loss[0])


def test_chunked_full_batch_gradient_equals_unchunked(tmp_path, tiny):
    tiny["optimizer"]["lr"] = [0.1]
    tiny["train"]["steps"] = 20
    a = train(config_from_dict(tiny), results_dir=tmp_path / "a", progress=False)
    tiny["train"]["chunk_size"] = 64  # 200 examples: 4 chunks, the last one padded
    b = train(config_from_dict(tiny), results_dir=tmp_path / "b", progress=False)
    np.testing.assert_allclose(a.series(0, "loss")[1], b.series(0, "loss")[1], rtol=1e-5)
    np.testing.assert_allclose(a.series(0, "sharpness")[1], b.series(0, "sharpness")[1], rtol=1e-4)


def test_heavy_ball_threshold_in_metrics(tmp_path, tiny):
    tiny["optimizer"] = {"name": "heavy-ball", "beta": 0.9, "lr": [0.05]}
    tiny["train"]["steps"] = 20
    res = train(config_from_dict(tiny), results_dir=tmp_path, progress=False)
    assert res.thresholds[0] == pytest.approx(3.8 / 0.05)
    np.testing.assert_allclose(res.series(0, "threshold")[1], 3.8 / 0.05)


def test_a_checkpoint_of_another_carry_layout_is_refused_in_one_sentence(tmp_path, tiny):
    """A checkpoint without this version's carry format (probe states) is not resumed into the wrong leaves."""
    from eoslab.errors import InputError
    from eoslab.store import config_hash
    from eoslab.train.checkpoint import save_checkpoint
    cfg = config_from_dict(tiny)
    carry = Trainer(cfg).init_carry()
    path = tmp_path / "checkpoints" / f"{config_hash(cfg.to_dict())}.npz"
    save_checkpoint(path, carry, step=20, meta={"run_ids": np.asarray([1, 2])})  # no carry_format: older layout
    with pytest.raises(InputError, match="written by another version of eoslab; delete it"):
        train(cfg, results_dir=tmp_path, progress=False)


def test_the_progress_bar_shows_the_values_at_its_counter_and_its_last_line_once(tmp_path, tiny, capsys):
    res = train(config_from_dict(tiny), results_dir=tmp_path, progress=True)
    lines = [line.strip() for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.strip()]
    last = f"loss {res.series(0, 'train_loss')[1][-1]:.4g}"
    finals = [line for line in lines if line.startswith("100%")]
    assert len(finals) == 1 and last in finals[0]
    for line in lines:  # every drawn line pairs its step counter with that step's losses
        if "loss" in line:
            step = int(line.split("|")[2].split("/")[0])
            assert f"loss {res.metrics[0]['train_loss'][1][list(res.metrics[0]['train_loss'][0]).index(step)]:.4g}" in line
