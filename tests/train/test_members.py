"""Trainer members with their own seeds and step sizes, c / lambda_0 step sizes, and the loss-barrier probe."""
import copy
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eoslab.errors import ConfigError
from eoslab.train import Trainer, config_from_dict, train
from eoslab.train.loop import run_loop
from eoslab.train.sinks import MemorySink

SMALL = {
    "name": "members",
    "data": {"name": "digits", "n_train": 128, "n_test": 64},
    "model": {"name": "fc-relu", "widths": [16]},
    "optimizer": {"name": "gd", "lr": [0.1]},
    "train": {"steps": 12, "eval_every": 4, "dtype": "float64"},
    "probes": {"sharpness_k": 1, "tol": 1e-8, "max_hvps": 40},
}


def small(**sections):
    raw = copy.deepcopy(SMALL)
    for section, values in sections.items():
        raw[section].update(values)
    return raw


def run_members(trainer, lrs=None, seeds=None):
    """Train a trainer's members with ``run_loop``: (per-member {metric: (steps, values)}, final carry)."""
    carry = trainer.init_carry(lrs, seeds)
    sink = MemorySink(trainer.num_members)
    carry, _ = run_loop(trainer, carry, 0, sink, values=lrs)
    return [sink.metrics(i) for i in range(trainer.num_members)], carry


def member(tree, i):
    return jax.tree_util.tree_map(lambda a: a[i], tree)


def assert_same_metrics(a: dict, b: dict, rtol: float, names=None):
    assert set(a) == set(b)
    for name in names or a:
        np.testing.assert_array_equal(a[name][0], b[name][0], err_msg=name)
        np.testing.assert_allclose(a[name][1], b[name][1], rtol=rtol, atol=1e-12, err_msg=name)


# ---- per-member seeds --------------------------------------------------------

def test_member_seeds_give_their_own_initialisations():
    cfg = config_from_dict(small(optimizer={"lr": [0.1, 0.2, 0.3]}, probes={"sharpness_k": 0}))
    trainer = Trainer(cfg, seeds=(3, 3, 5))
    carry = trainer.init_carry()
    np.testing.assert_array_equal(np.asarray(carry.seed), [3, 3, 5])
    flat = [ravel_pytree(member(carry.params, i))[0] for i in range(3)]
    np.testing.assert_array_equal(flat[0], flat[1])  # equal seeds: one initialisation
    assert not np.allclose(flat[0], flat[2])  # another seed: another initialisation
    # each equals the model's own initialisation with that seed (the vmapped init is the plain one)
    for i, seed in ((1, 3), (2, 5)):
        ref = ravel_pytree(trainer.problem.model.init(jax.random.PRNGKey(seed)))[0]
        np.testing.assert_allclose(flat[i], ref, rtol=1e-14, atol=1e-15)
    # the config's seed is the default for every member
    default = Trainer(dataclasses.replace(cfg, seed=5), problem=trainer.problem).init_carry()
    np.testing.assert_array_equal(np.asarray(default.seed), [5, 5, 5])
    np.testing.assert_array_equal(ravel_pytree(member(default.params, 1))[0], flat[2])
    # init_carry overrides the trainer's seeds and lrs
    over = trainer.init_carry([0.4, 0.5, 0.6], [9, 9, 9])
    np.testing.assert_array_equal(np.asarray(over.seed), [9, 9, 9])
    np.testing.assert_allclose(np.asarray(over.eta), [0.4, 0.5, 0.6])
    assert not np.allclose(ravel_pytree(member(over.params, 0))[0], flat[0])


def test_seed_count_must_match_members():
    cfg = config_from_dict(small(optimizer={"lr": [0.1, 0.2]}, probes={"sharpness_k": 0}))
    with pytest.raises(ValueError, match="3 members and the config 2 step sizes"):
        Trainer(cfg, seeds=(0, 1, 2)).init_carry()  # three members need three lrs
    with pytest.raises(ValueError, match="2 step sizes and 2 seeds"):
        Trainer(cfg).init_carry([0.1, 0.2], [0, 1, 2])


def test_member_seed_sets_the_minibatch_order():
    """Same parameters, other seed: other minibatches; same seed and step size: identical members."""
    cfg = config_from_dict(small(optimizer={"lr": [0.1, 0.2, 0.3], "batch_size": 16},
                                 probes={"sharpness_k": 0}))
    trainer = Trainer(cfg)
    carry = trainer.init_carry([0.1, 0.1, 0.1], [0, 0, 1])
    # give member 2 the initialisation of members 0 and 1: only its seed (batch order) differs now
    carry = carry._replace(params=jax.tree_util.tree_map(lambda a: a.at[2].set(a[0]), carry.params))
    carry, outs = trainer.run_chunk(carry, 0, 6)
    loss = np.asarray(outs["loss"])
    np.testing.assert_array_equal(loss[0], loss[1])
    assert not np.any(np.isclose(loss[0], loss[2], rtol=1e-8))  # different batches at every step
    flat = [ravel_pytree(member(carry.params, i))[0] for i in range(3)]
    np.testing.assert_array_equal(flat[0], flat[1])
    assert not np.allclose(flat[0], flat[2])


def test_four_member_batch_equals_members_trained_alone():
    """2 step sizes x 2 seeds as one vmapped ensemble = the same four runs, each a 1-member trainer (minibatch SGD)."""
    raw = small(optimizer={"lr": [0.1, 0.2, 0.3, 0.4], "batch_size": 32}, probes={"sharpness_k": 0})
    cfg = config_from_dict(raw)
    lrs, seeds = [0.05, 0.2, 0.05, 0.2], [0, 0, 1, 1]
    batch, carry = run_members(Trainer(cfg, seeds=(0, 1, 2, 3)), lrs, seeds)
    finals = [ravel_pytree(member(carry.params, i))[0] for i in range(4)]
    assert not np.allclose(finals[0], finals[2])  # the seeds matter (else the test proves nothing)
    assert not np.allclose(finals[0], finals[1])  # the step sizes matter
    # one 1-member trainer (compiled once) for the four runs; the first from its own config, seed and lr
    one = config_from_dict(dict(copy.deepcopy(raw), seed=seeds[0], optimizer=dict(raw["optimizer"], lr=[lrs[0]])))
    single = Trainer(one)
    for i, (lr, seed) in enumerate(zip(lrs, seeds)):
        alone, carry1 = run_members(single) if i == 0 else run_members(single, [lr], [seed])
        assert set(alone[0]) >= {"loss", "train_loss", "test_loss", "eta"}
        assert_same_metrics(batch[i], alone[0], rtol=1e-9)
        np.testing.assert_allclose(finals[i], ravel_pytree(member(carry1.params, 0))[0], rtol=1e-9, atol=1e-12)


# ---- c / lambda_0 step sizes -------------------------------------------------

def dense_sharpness(problem, *params) -> list[float]:
    """lambda_1 of the dense Hessian of ``problem.sharpness_loss`` at each of ``params`` (eigh of the full matrix)."""
    unravel = ravel_pytree(params[0])[1]
    hessian = jax.jit(jax.hessian(lambda v: problem.sharpness_loss(unravel(v))))
    return [float(jnp.linalg.eigh(hessian(ravel_pytree(p)[0]))[0][-1]) for p in params]


def test_relative_step_size_uses_each_members_lambda0():
    """lr_units = "1/lambda0", sharpness probed, members with their own seeds: eta_i = c_i / lambda_0(theta_0 of i)."""
    c, seeds = [1.0, 1.5, 0.5], (0, 4, 0)
    raw = small(optimizer={"lr": c, "lr_units": "1/lambda0"}, probes={"sharpness_k": 1, "tol": 1e-7})
    trainer = Trainer(config_from_dict(raw), seeds=seeds)
    prob = trainer.problem
    lam0 = dict(zip((0, 4), dense_sharpness(prob, *(prob.model.init(jax.random.PRNGKey(s)) for s in (0, 4)))))
    assert abs(lam0[0] - lam0[4]) > 1e-3 * lam0[0]  # two initialisations, two sharpnesses
    carry = trainer.init_carry()
    eta = [ci / lam0[s] for ci, s in zip(c, seeds)]
    np.testing.assert_allclose(np.asarray(carry.eta), eta, rtol=1e-6)
    # the tracker's cold solve at theta_0 is that lambda_0
    np.testing.assert_allclose(np.asarray(carry.probes[0].eigenvalues)[:, 0], [lam0[s] for s in seeds], rtol=1e-6)
    # what run_loop stores as eta and threshold: eta and 2 / eta, not c
    facts = trainer.facts(carry, values=c)
    np.testing.assert_allclose([f.eta for f in facts], eta, rtol=1e-6)
    np.testing.assert_allclose([f.threshold for f in facts], [2 / e for e in eta], rtol=1e-6)


def test_relative_step_size_and_loss_barrier_in_the_store(tmp_path):
    """sharpness_k = 0: lambda_0 comes from the trainer's own cold solve; the run store holds eta; and the
    stored line_max_loss is the max training loss on the segment theta_0 -> theta_T of the saved parameters."""
    c, n = [1.0, 1.5], 7
    raw = small(optimizer={"lr": c, "lr_units": "1/lambda0"}, train={"steps": 8, "eval_every": 4},
                probes={"sharpness_k": 0, "tol": 1e-7, "line_points": n})
    cfg = config_from_dict(raw)
    res = train(cfg, results_dir=tmp_path, progress=False)
    assert res.status == ["completed", "completed"]
    prob = Trainer(cfg).problem
    theta0 = prob.model.init(jax.random.PRNGKey(cfg.seed))
    (lam0,) = dense_sharpness(prob, theta0)
    for i, ci in enumerate(c):
        steps, lr = res.series(i, "eta")
        np.testing.assert_array_equal(steps, [0, 4, 8])
        np.testing.assert_allclose(lr, ci / lam0, rtol=1e-6)  # eta, not c
        np.testing.assert_allclose(res.step_sizes[i], ci / lam0, rtol=1e-6)
        np.testing.assert_allclose(res.thresholds[i], 2 * lam0 / ci, rtol=1e-6)
        np.testing.assert_allclose(res.series(i, "threshold")[1], 2 * lam0 / ci, rtol=1e-6)
        assert res.lrs[i] == ci  # the config's value stays c
    # eta really is the step: theta_1 = theta_0 - eta g_0
    g0 = jax.grad(prob.train_loss)(theta0)
    theta1 = jax.tree_util.tree_map(lambda p, g: p - c[1] / lam0 * g, theta0, g0)
    np.testing.assert_allclose(res.series(1, "loss")[1][1], float(prob.train_loss(theta1)), rtol=1e-6)
    # the loss barrier, recomputed from the saved final parameters
    flat0, unravel = ravel_pytree(theta0)
    leaves = jax.tree_util.tree_leaves_with_path(theta0)
    for i, rid in enumerate(res.run_ids):
        z = np.load(tmp_path / "params" / f"run-{rid}.npz")
        final = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(theta0),
                                             [z[jax.tree_util.keystr(p)] for p, _ in leaves])
        flat_t = ravel_pytree(final)[0]
        assert not np.allclose(flat_t, flat0)
        losses = [float(prob.train_loss(unravel((1 - s) * flat0 + s * flat_t))) for s in np.arange(1, n + 1) / n]
        steps, got = res.series(i, "line_max_loss")
        np.testing.assert_array_equal(steps, [cfg.train.steps])  # only at the last step
        np.testing.assert_allclose(got, [max(losses)], rtol=1e-10)
        final_loss = res.series(i, "train_loss")[1][-1]
        np.testing.assert_allclose(losses[-1], final_loss, rtol=1e-10)  # s = 1 is theta_T
        assert got[0] > 1.2 * final_loss  # here the loss falls along the segment: the max is not the end point


def test_line_max_loss_with_run_loop_and_member_seeds():
    n = 4
    raw = small(optimizer={"lr": [0.3, 0.5]}, probes={"sharpness_k": 0, "line_points": n})
    trainer = Trainer(config_from_dict(raw), seeds=(1, 2))
    rows, carry = run_members(trainer)
    prob = trainer.problem
    for i, seed in enumerate((1, 2)):
        flat0, unravel = ravel_pytree(prob.model.init(jax.random.PRNGKey(seed)))
        flat_t = ravel_pytree(member(carry.params, i))[0]
        want = max(float(prob.train_loss(unravel(flat0 + s * (flat_t - flat0)))) for s in np.arange(1, n + 1) / n)
        np.testing.assert_allclose(rows[i]["line_max_loss"][1], [want], rtol=1e-10)
    # without probes.line_points nothing is measured at the end
    assert Trainer(config_from_dict(small(probes={"sharpness_k": 0}))).at_end(carry, 0) == {}


# ---- validation ----------------------------------------------------------------

@pytest.mark.parametrize("section,key,value", [
    ("optimizer", "lr_units", "lambda0"),
    ("optimizer", "lr_units", "relative"),
    ("probes", "line_points", -1),
])
def test_bad_values_name_their_key(section, key, value):
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        config_from_dict(small(**{section: {key: value}}))


def test_good_values_are_accepted():
    cfg = config_from_dict(small(optimizer={"lr_units": "1/lambda0"}, probes={"line_points": 0}))
    assert cfg.optimizer.lr_units == "1/lambda0" and cfg.probes.line_points == 0
    assert config_from_dict(small()).optimizer.lr_units == "absolute"
