"""The monitor in a user's own loop: against dense Hessians, optax optimizers read by state type, jit/scan, the store."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from eoslab.curvature import top_eigenpairs
from eoslab.monitor import Monitor, rule_from_optax
from eoslab.store import RunStore


X = jax.random.normal(jax.random.PRNGKey(1), (48, 4), dtype=jnp.float64)
Y = jnp.sin(X[:, :2])


def init(seed=0):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return {"w1": jax.random.normal(k1, (4, 6), jnp.float64) / 2, "w2": jax.random.normal(k2, (6, 2), jnp.float64) / 6 ** 0.5}


def loss(p):
    return 0.5 * jnp.mean(jnp.sum((jnp.tanh(X @ p["w1"]) @ p["w2"] - Y) ** 2, -1))


def dense_top(params, k=1, precond=None):
    flat, unravel = ravel_pytree(params)
    h = np.asarray(jax.hessian(lambda v: loss(unravel(v)))(flat))
    if precond is not None:
        d = 1 / np.sqrt(np.asarray(ravel_pytree(precond)[0]))
        h = d[:, None] * h * d[None, :]
    return np.linalg.eigvalsh(h)[::-1][:k]


def train(tx, steps, monitor=None):
    params, state = init(), tx.init(init())
    step = jax.jit(lambda p, s: (lambda g: (lambda u, s2: (optax.apply_updates(p, u), s2))(*tx.update(g, s, p)))(
        jax.grad(loss)(p)))
    outs = {}
    for t in range(1, steps + 1):
        params, state = step(params, state)
        if monitor is not None:
            out = monitor.update(t, params, state)
            if out is not None:
                outs[t] = out
    return params, state, outs


def test_gd_by_name_against_the_dense_hessian_with_edge_ratio(tmp_path):
    mon = Monitor(loss, optimizer="gd", lr=0.3, every=5, k=2, tol=1e-8, store=tmp_path, verbose=False)
    params, _, outs = train(optax.sgd(0.3), 10, mon)
    mon.close()
    assert sorted(outs) == [5, 10]
    lam = dense_top(params, 2)
    np.testing.assert_allclose([outs[10]["sharpness"], outs[10]["sharpness_2"]], lam, rtol=1e-7)
    assert outs[10]["converged"] and outs[10]["error"] <= 1e-8 * lam[0]
    np.testing.assert_allclose(outs[10]["edge_ratio"], lam[0] / (2 / 0.3), rtol=1e-7)
    np.testing.assert_allclose(outs[10]["effective_sharpness"], 0.3 * lam[0], rtol=1e-7)
    assert outs[10]["threshold"] == pytest.approx(2 / 0.3)
    with RunStore.in_dir(tmp_path) as store:  # the run is in the store like a trained one
        (run,) = store.list_runs()
        assert run.status == "completed" and run.config["optimizer"]["name"] == "gd"
        m = store.get_metrics(run.id)
        np.testing.assert_array_equal(m["sharpness"][0], [5, 10])
        np.testing.assert_allclose(m["edge_ratio"][1][-1], outs[10]["edge_ratio"])


@pytest.mark.parametrize("factory,kw,flags,name", [
    (optax.adam, {}, {}, "adam"),
    (optax.adam, {"nesterov": True}, {"nesterov": True}, "nadam"),
    (optax.adamw, {"weight_decay": 0.1}, {}, "adamw"),
    (optax.rmsprop, {}, {}, "rmsprop-eps-in-sqrt"),
    (optax.rmsprop, {"eps_in_sqrt": False, "momentum": 0.5}, {"eps_in_sqrt": False}, "rmsprop"),
    (optax.adagrad, {}, {}, "adagrad"),
    (optax.sgd, {}, {}, "gd"),
    (optax.sgd, {"momentum": 0.9}, {}, "heavy-ball"),
    (optax.sgd, {"momentum": 0.9, "nesterov": True}, {"nesterov": True}, "nesterov"),
])
def test_optax_optimizers_are_read_by_state_type_and_p_reproduces_their_update(factory, kw, flags, name):
    """theta_{t+1} - theta_t = -P_t^{-1} m_t (+ decoupled) with P_t, m_t from the optax state, to 1e-10."""
    tx = optax.inject_hyperparams(factory)(learning_rate=0.01, **kw)
    params, state, _ = train(tx, 3)
    of = rule_from_optax(state, **flags)
    assert of.rule.name == name
    g = jax.grad(loss)(params)
    updates, new = tx.update(g, state, params)
    eta = of.eta(new)
    P = of.rule.preconditioner(new, eta, of.hp) or jax.tree_util.tree_map(lambda p: jnp.full_like(p, 1 / eta), params)
    m = of.rule.momentum(new, g, eta, of.hp)
    want = jax.tree_util.tree_map(lambda mm, pp: -mm / pp, m, P)
    dec = of.rule.decoupled(params, eta, of.hp)
    if dec is not None:
        want = jax.tree_util.tree_map(jnp.add, want, dec)
    np.testing.assert_allclose(ravel_pytree(updates)[0], ravel_pytree(want)[0], rtol=1e-10, atol=1e-14)


def test_adam_effective_sharpness_against_a_dense_preconditioned_hessian():
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=0.02)
    mon = Monitor(loss, every=4, tol=1e-9, verbose=False)
    params, state, outs = train(tx, 8, mon)
    P = mon.rule_of.rule.preconditioner(state, 0.02, mon.rule_of.hp)
    np.testing.assert_allclose(outs[8]["effective_sharpness"], dense_top(params, 1, P)[0], rtol=1e-6)
    np.testing.assert_allclose(outs[8]["edge_ratio"], outs[8]["effective_sharpness"] / 38.0, rtol=1e-6)
    np.testing.assert_allclose(outs[8]["sharpness"], dense_top(params)[0], rtol=1e-6)


def test_explicit_preconditioner_and_threshold():
    P = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 4.0), init())  # P = I / 0.25
    mon = Monitor(loss, preconditioner=lambda s: P, threshold=2.0, every=1, tol=1e-9, verbose=False)
    out = mon.update(1, init(), opt_state=())
    lam = dense_top(init())[0]
    np.testing.assert_allclose(out["effective_sharpness"], lam / 4, rtol=1e-6)
    np.testing.assert_allclose(out["edge_ratio"], lam / 8, rtol=1e-6)


def test_pure_measure_inside_jit_and_scan_matches_the_python_path():
    mon = Monitor(loss, optimizer="gd", lr=0.1, tol=1e-9, verbose=False)
    state = mon.init(init())
    params = [init(s) for s in (0, 0, 0)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *params)

    @jax.jit
    def scan(state, stacked):
        return jax.lax.scan(lambda s, p: mon.measure(s, p)[::-1], state, stacked)

    _, metrics = scan(state, stacked)
    want = mon.update(0, init())["sharpness"]
    np.testing.assert_allclose(np.asarray(metrics["sharpness"]), want, rtol=1e-8)
    out = mon.finish(0, jax.tree_util.tree_map(lambda a: a[0], metrics))
    np.testing.assert_allclose(out["edge_ratio"], want / 20, rtol=1e-8)


@pytest.mark.parametrize("kwargs,match", [
    ({"optimizer": "adam"}, "needs lr="),
    ({"every": 0}, "every=0 must be an integer >= 1"),
    ({"threshold": 2.0}, "give preconditioner and threshold together"),
    ({"beta": 0.9}, "beta= needs optimizer="),
    ({"optimizer": "gd", "lr": -1.0}, "optimizer.lr=-1.0 must be a positive number"),
    ({"optimizer": "heavy-ball", "lr": 0.1, "momentum": 0.9}, "optimizer.momentum is not a hyper-parameter"),
])
def test_bad_arguments_are_one_sentence(kwargs, match):
    with pytest.raises(Exception, match=match):
        Monitor(loss, **kwargs)


def test_an_optax_state_without_injected_hyperparameters_is_one_sentence():
    state = optax.adam(1e-3).init(init())
    with pytest.raises(ValueError, match="build the optimizer with optax.inject_hyperparams"):
        Monitor(loss, verbose=False).update(0, init(), state)


def test_tensorboard_scalars_read_back_by_tensorboard(tmp_path):
    """The event files are read by TensorBoard's own reader: every measurement and event, at its step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from eoslab.monitor.tensorboard import crc32c
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    mon = Monitor(loss, optimizer="gd", lr=0.3, every=5, tol=1e-8, tensorboard=tmp_path / "tb", verbose=False)
    _, _, outs = train(optax.sgd(0.3), 10, mon)
    mon.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    for name in ("sharpness", "edge_ratio", "effective_sharpness", "loss", "threshold"):
        got = acc.Scalars(f"eoslab/{name}")
        assert [e.step for e in got] == [5, 10]
        np.testing.assert_allclose([e.value for e in got], [outs[5][name], outs[10][name]], rtol=1e-6)


def test_the_optax_optimizer_itself_may_be_passed():
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=0.02)
    params, state, outs = train(tx, 4, Monitor(loss, optimizer=tx, every=4, tol=1e-9, verbose=False))
    assert outs[4]["threshold"] == pytest.approx(38.0)
    with pytest.raises(ValueError, match="carries its own hyper-parameters"):
        Monitor(loss, optimizer=tx, lr=0.1)
    with pytest.raises(TypeError, match="must be an eoslab rule name"):
        Monitor(loss, optimizer=3)
