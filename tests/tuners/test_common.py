"""What every tuner shares: jit, vmap over hyper-parameters and params, chains, dtypes, validation."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from eoslab.errors import ConfigError
from eoslab.tuners import TunerInfo, armijo, edge, parabolic, polyak, tuner_info
from tests.tuners import flat, mlp, neg

# Each tuner with one hyper-parameter to batch over (and values that give different steps).
TUNERS = {
    "armijo": (lambda h: armijo(max_step=h, c=0.3, init="grow"), [0.05, 0.5, 4.0]),
    "polyak": (lambda h: polyak(max_step=h, c=0.5), [0.05, 0.3, 2.0]),
    "parabolic": (lambda h: parabolic(mu=h, beta=0.3), [0.1, 1.0, 3.0]),
    "edge": (lambda h: edge(sigma=h, ema=0.5), [0.5, 1.0, 2.0]),
}
STEPS = 3


def _run(tuner, f, params):
    """STEPS updates along -g (one lax.scan); returns the stacked flat updates and infos."""
    def one(carry, _):
        params, state = carry
        value, grad = jax.value_and_grad(f)(params)
        updates, state = tuner.update(neg(grad), state, params, value=value, grad=grad, value_fn=f)
        return (optax.apply_updates(params, updates), state), (flat(updates), state.info)

    return jax.lax.scan(one, (params, tuner.init(params)), None, length=STEPS)[1]


def _assert_same(a, b):
    (ua, ia), (ub, ib) = a, b
    np.testing.assert_allclose(ua, ub, rtol=1e-12, atol=1e-14)
    for name in TunerInfo._fields:
        np.testing.assert_allclose(getattr(ia, name), getattr(ib, name), rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.fixture(scope="module")
def problem():
    return mlp(0)


@functools.lru_cache(maxsize=None)
def _jitted(name):
    """(h, params) -> _run(tuner(h), f, params), with h traced: one compilation per tuner."""
    f, _ = mlp(0)
    return jax.jit(lambda h, p: _run(TUNERS[name][0](h), f, p))


@pytest.mark.parametrize("name", sorted(TUNERS))
def test_jit_matches_eager_with_concrete_hyperparameter(name, problem):
    f, params = problem
    make, values = TUNERS[name]
    _assert_same(_jitted(name)(values[1], params), _run(make(values[1]), f, params))


@pytest.mark.parametrize("name", sorted(TUNERS))
def test_vmap_over_hyperparameters_and_params_matches_single_runs(name):
    values = TUNERS[name][1]
    batch = [mlp(seed)[1] for seed in (0, 1, 2)]
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *batch)
    hs = jnp.asarray(values)
    # every (hyper-parameter, params) pair in one call: vmap over both axes
    batched = jax.vmap(jax.vmap(_jitted(name), in_axes=(0, None)), in_axes=(None, 0))(hs, stacked)
    for j, p in enumerate(batch):
        for i, h in enumerate(values):
            _assert_same(jax.tree_util.tree_map(lambda x: x[j, i], batched), _jitted(name)(h, p))
    steps = np.asarray(batched[1].step_size)
    assert len({tuple(row) for row in steps[0]}) == len(values)  # the hyper-parameter matters here
    assert any(len({tuple(row) for row in steps[:, i]}) == len(batch)  # and so do the params
               for i in range(len(values)))
    assert np.all(steps > 0)


@pytest.mark.parametrize("name", sorted(TUNERS))
def test_inside_chain_and_tuner_info(name, problem):
    f, params = problem
    tuner = TUNERS[name][0](TUNERS[name][1][1])
    chained = optax.chain(optax.scale(-1.0), tuner)
    nested = optax.chain(optax.identity(), optax.chain(optax.scale(-1.0), tuner))

    @jax.jit
    def three_ways(params):
        value, grad = jax.value_and_grad(f)(params)
        kw = dict(value=value, grad=grad, value_fn=f)
        bare = tuner.update(neg(grad), tuner.init(params), params, **kw)
        return bare, chained.update(grad, chained.init(params), params, **kw), \
            nested.update(grad, nested.init(params), params, **kw)

    (bare_updates, bare_state), (updates, state), (nested_updates, nested_state) = three_ways(params)
    np.testing.assert_array_equal(flat(updates), flat(bare_updates))
    np.testing.assert_array_equal(flat(nested_updates), flat(bare_updates))
    info = tuner_info(state)
    assert isinstance(info, TunerInfo)
    assert float(info.step_size) == float(bare_state.info.step_size) > 0
    assert float(tuner_info(nested_state).step_size) == float(info.step_size)
    assert tuner_info(optax.sgd(0.1).init(params)) is None


@pytest.mark.parametrize("name", sorted(TUNERS))
def test_initial_info(name, problem):
    _, params = problem
    info = TUNERS[name][0](1.0).init(params).info
    assert float(info.step_size) == 0.0 and int(info.num_values) == 0 and int(info.num_grads) == 0
    assert bool(info.success) and np.isnan(float(info.curvature))
    assert info.step_size.dtype == jnp.float64 and info.num_values.dtype == jnp.int32


@pytest.mark.parametrize("name", sorted(TUNERS))
def test_float32_params_keep_dtypes_through_scan_with_traced_float64_hyperparameter(name, problem):
    f64, params64 = problem
    params = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), params64)

    def f(p):
        return f64(p).astype(jnp.float32)

    make, values = TUNERS[name]

    def run(h):
        tuner = make(h)  # h is a traced float64

        def one(carry, _):
            p, s = carry
            value, grad = jax.value_and_grad(f)(p)
            updates, s = tuner.update(neg(grad), s, p, value=value, grad=grad, value_fn=f)
            assert all(u.dtype == jnp.float32 for u in jax.tree_util.tree_leaves(updates))
            return (optax.apply_updates(p, updates), s), s.info.step_size

        return jax.lax.scan(one, (params, tuner.init(params)), None, length=STEPS)  # fails if dtypes drift

    (p_end, state), steps = jax.jit(run)(jnp.asarray(values[1], jnp.float64))
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(p_end))
    assert state.info.step_size.dtype == jnp.float32
    single = _jitted(name)(values[1], params64)[1].step_size
    np.testing.assert_allclose(steps, single, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(TUNERS))
def test_extra_arguments_reach_value_fn(name):
    rng = np.random.default_rng(0)
    x, y = jnp.asarray(rng.standard_normal((8, 3))), jnp.asarray(rng.standard_normal(8))
    params = {"w": jnp.asarray(rng.standard_normal(3))}

    def loss(p, batch):
        bx, by = batch
        return jnp.mean(jnp.log(jnp.cosh(jnp.tanh(bx @ p["w"]) * 2.0 - by)))

    def closed(p):
        return loss(p, (x, y))

    tuner = TUNERS[name][0](TUNERS[name][1][1])

    @jax.jit
    def both(params):
        value, grad = jax.value_and_grad(closed)(params)
        upd_a, _ = tuner.update(neg(grad), tuner.init(params), params, value=value, grad=grad, value_fn=loss,
                                batch=(x, y), unrelated=1.0)  # "unrelated" is for another transform
        upd_b, _ = tuner.update(neg(grad), tuner.init(params), params, value=value, grad=grad, value_fn=closed)
        return upd_a, upd_b

    upd_a, upd_b = both(params)
    assert float(jnp.linalg.norm(flat(upd_b))) > 0
    np.testing.assert_array_equal(flat(upd_a), flat(upd_b))


INVALID = [
    (armijo, {"c": 1.5}, "c"), (armijo, {"c": 0.0}, "c"), (armijo, {"c": float("nan")}, "c"),
    (armijo, {"c": "0.1"}, "c"), (armijo, {"decrease_factor": 1.0}, "decrease_factor"),
    (armijo, {"decrease_factor": 0.0}, "decrease_factor"), (armijo, {"max_backtracks": 0}, "max_backtracks"),
    (armijo, {"max_backtracks": 2.5}, "max_backtracks"), (armijo, {"max_backtracks": True}, "max_backtracks"),
    (armijo, {"max_step": 0.0}, "max_step"), (armijo, {"max_step": -1.0}, "max_step"),
    (armijo, {"max_step": float("inf")}, "max_step"), (armijo, {"init": "bogus"}, "init"),
    (armijo, {"increase_factor": 0.5}, "increase_factor"), (armijo, {"on_failure": "retry"}, "on_failure"),
    (polyak, {"c": 0.0}, "c"), (polyak, {"c": -1.0}, "c"), (polyak, {"max_step": 0.0}, "max_step"),
    (polyak, {"eps": -1e-3}, "eps"), (polyak, {"variant": "sps"}, "variant"),
    (polyak, {"f_star": float("nan")}, "f_star"),
    (parabolic, {"mu": 0.0}, "mu"), (parabolic, {"mu": float("inf")}, "mu"), (parabolic, {"alpha": 0.0}, "alpha"),
    (parabolic, {"s_max": -1.0}, "s_max"), (parabolic, {"beta": -0.1}, "beta"),
    (edge, {"sigma": 0.0}, "sigma"), (edge, {"eps": -1.0}, "eps"), (edge, {"ema": 1.0}, "ema"),
    (edge, {"ema": -0.1}, "ema"), (edge, {"max_step": 0.0}, "max_step"),
]


@pytest.mark.parametrize("factory,kwargs,param", INVALID,
                         ids=[f"{f.__name__}-{k}" for f, k, _ in INVALID])
def test_invalid_hyperparameter_raises_config_error_naming_it(factory, kwargs, param):
    with pytest.raises(ConfigError) as err:
        factory(**kwargs)
    assert isinstance(err.value, ValueError)
    message = str(err.value)
    assert f"{factory.__name__} {param}=" in message and message.endswith(".") and message.count(". ") == 0


def test_message_is_one_sentence_with_range():
    with pytest.raises(ConfigError, match=r"^armijo c=1\.5 must lie in \(0, 1\) \(the sufficient-decrease "
                                          r"constant\)\.$"):
        armijo(c=1.5)


def test_boundary_values_are_valid():
    armijo(increase_factor=1.0, max_backtracks=1, max_step=np.float32(2.0))
    armijo(max_backtracks=np.int64(3), max_step=jnp.asarray(0.5))
    polyak(max_step=float("inf"), eps=0.0, f_star=-3)
    parabolic(s_max=float("inf"), beta=0.0)
    edge(ema=0.0, eps=0.0)


def test_traced_hyperparameters_are_not_validated():
    jax.jit(lambda c: armijo(c=c).init({"w": jnp.zeros(2)}).info.step_size)(1.5)  # checked only when concrete


def test_tuners_needing_params_say_so():
    f, params = mlp(0)
    value, grad = 1.0, params  # never used: the call fails first
    for tuner in (armijo(), parabolic(), edge()):
        with pytest.raises(ValueError, match="needs params"):
            tuner.update(neg(grad), tuner.init(params), None, value=value, grad=grad, value_fn=f)
