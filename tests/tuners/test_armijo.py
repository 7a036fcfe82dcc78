"""Armijo backtracking: the defining properties on random problems, the init strategies, failures, optax."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from eoslab.tuners import armijo
from tests.tuners import apply, flat, neg, quadratic, side_by_side, spd, tuner_step, unflatten

NB = 12  # max_backtracks in the property test


# ---- one objective with traced data (so hypothesis examples share one compilation) ----
# f = w_q * quadratic + w_l * log-sum-exp + w_m * tanh network, with the weights w drawn one-hot
# (a pure family) or as a random mixture.

def _problem_data(rng, weights=None, a=None):
    n = 7
    if weights is None:
        weights = np.eye(3)[rng.integers(3)] if rng.random() < 0.6 else rng.uniform(0.1, 1.0, 3)
    return {"weights": jnp.asarray(weights, float),
            "a": jnp.asarray(spd(rng, n, cond=10 ** rng.uniform(0, 3)) if a is None else a),
            "b": jnp.asarray(rng.standard_normal(n)),
            "m": jnp.asarray(2 * rng.standard_normal((5, n))), "c": jnp.asarray(rng.standard_normal(5)),
            "x": jnp.asarray(rng.standard_normal((10, n))), "y": jnp.asarray(rng.standard_normal(10))}


def _objective(data):
    def f(p):
        x = flat(p)
        quad = 0.5 * x @ data["a"] @ x - data["b"] @ x
        lse = jax.nn.logsumexp(data["m"] @ x + data["c"])
        net = 0.5 * jnp.mean((3.0 * jnp.tanh(data["x"] * x) @ jnp.ones(7) / 7 - data["y"]) ** 2)
        return data["weights"] @ jnp.stack([quad, lse, net])
    return f


@functools.lru_cache(maxsize=None)
def _runner(init, steps=3):
    """Both failure policies of one init strategy, ``steps`` steps each, hyper-parameters traced."""
    def run(data, params, scales, c, df, max_step, inc):
        f = _objective(data)

        def trajectory(on_failure):
            tuner = armijo(c=c, decrease_factor=df, max_backtracks=NB, max_step=max_step, init=init,
                           increase_factor=inc, on_failure=on_failure)

            def one(carry, _):
                params, state = carry
                value, grad = jax.value_and_grad(f)(params)
                u = jax.tree_util.tree_map(lambda g, s: -s * g, grad, scales)  # a descent direction, not -g
                updates, state = tuner.update(u, state, params, value=value, grad=grad, value_fn=f)
                return (apply(params, updates), state), (params, u, updates, state.info)

            return jax.lax.scan(one, (params, tuner.init(params)), None, length=steps)[1]

        return {"take": trajectory("take"), "skip": trajectory("skip")}

    return jax.jit(run)


@jax.jit
def _line_values(data, params, u, steps):
    """f(w), g.u and f(w + s u) for each s in ``steps``."""
    f = _objective(data)
    fw, g = jax.value_and_grad(f)(params)
    trials = jax.vmap(lambda s: f(apply(params, jax.tree_util.tree_map(lambda x: s * x, u))))(steps)
    return fw, flat(g) @ flat(u), trials


def np_flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(tree)])


def _armijo_holds(data, params, u, steps, c, tol_sign):
    """Whether f(w + s u) <= f(w) + c s g.u for each s, with a rounding allowance of sign tol_sign."""
    steps = np.atleast_1d(np.asarray(steps, float))
    padded = np.concatenate([steps, np.zeros(NB + 1 - len(steps))])  # one shape: one compilation
    fw, slope, trials = map(np.asarray, _line_values(data, params, u, jnp.asarray(padded)))
    trials = trials[:len(steps)]
    tol = 1e-11 * (1.0 + abs(float(fw)))
    return np.isfinite(trials) & (trials <= fw + c * steps * slope + tol_sign * tol)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), c=st.floats(1e-4, 0.9), df=st.floats(0.1, 0.9),
       log_max_step=st.floats(-2, 2), init=st.sampled_from(["reset", "keep", "grow"]), inc=st.floats(1.0, 3.0),
       on_failure=st.sampled_from(["take", "skip"]))
def test_accepted_step_is_first_candidate_satisfying_armijo(seed, c, df, log_max_step, init, inc, on_failure):
    rng = np.random.default_rng(seed)
    data = _problem_data(rng)
    params = unflatten(jnp.asarray(rng.standard_normal(7)))
    scales = unflatten(jnp.asarray(rng.uniform(0.2, 2.0, 7)))
    max_step = 10.0 ** log_max_step
    history = jax.device_get(_runner(init)(data, params, scales, c, df, max_step, inc)[on_failure])
    prev_last = np.inf  # the last candidate of the previous search
    for t in range(3):
        p, u, updates, info = jax.tree_util.tree_map(lambda x: x[t], history)
        s0 = {"reset": max_step, "keep": min(prev_last, max_step), "grow": min(prev_last * inc, max_step)}[init]
        s, n = float(info.step_size), int(info.num_values)
        candidates = s0 * df ** np.arange(NB + 1)
        if bool(info.success):
            k = int(round(np.log(s / s0) / np.log(df)))
            assert 0 <= k <= NB and s == pytest.approx(candidates[k], rel=1e-12)
            assert n == k + 1
            assert _armijo_holds(data, p, u, s, c, +1).all()
            assert not _armijo_holds(data, p, u, candidates[:k], c, -1).any()  # every larger candidate fails
            prev_last = s
            event("accepted after backtracking" if k > 0 else "accepted first candidate")
        else:
            event("search failed")
            assert n == NB + 1
            assert not _armijo_holds(data, p, u, candidates, c, -1).any()
            expected = candidates[-1] if on_failure == "take" else 0.0
            assert s == pytest.approx(expected, rel=1e-12, abs=0.0)
            prev_last = candidates[-1]
        np.testing.assert_allclose(np_flat(updates), s * np_flat(u), rtol=1e-14, atol=0)


def _holds(f, params, u, s, c, tol_sign):
    """Eager single-step version of :func:`_armijo_holds` for an arbitrary f."""
    fw, g = jax.value_and_grad(f)(params)
    slope = float(flat(g) @ flat(u))
    trial = float(f(apply(params, jax.tree_util.tree_map(lambda x: s * x, u))))
    tol = 1e-11 * (1.0 + abs(float(fw)))
    return bool(np.isfinite(trial) and trial <= float(fw) + c * s * slope + tol_sign * tol)


def _reference_search(f, params, u, s0, c, df, nb):
    """Plain loop over the candidates s0 df^k: (step, evaluations, success)."""
    fw, g = jax.value_and_grad(f)(params)
    slope = float(flat(g) @ flat(u))
    s = s0
    for k in range(nb + 1):
        s = s if k == 0 else s * df
        if float(f(apply(params, jax.tree_util.tree_map(lambda x: s * x, u)))) <= float(fw) + c * s * slope:
            return s, k + 1, True
    return s, nb + 1, False


def test_init_strategies_give_expected_initial_step_on_second_step():
    f, _, _, params = quadratic(11, cond=40.0)
    c, df, nb, inc = 0.3, 0.5, 20, 1.5
    results = {}
    for init in ("reset", "keep", "grow"):
        tuner = armijo(c=c, decrease_factor=df, max_backtracks=nb, max_step=1.0, init=init, increase_factor=inc)
        upd1, state, _, grad = tuner_step(tuner, tuner.init(params), f, params)
        s1 = float(state.info.step_size)
        ref1 = _reference_search(f, params, neg(grad), 1.0, c, df, nb)  # first step starts at max_step
        assert (s1, int(state.info.num_values)) == (pytest.approx(ref1[0], rel=1e-14), ref1[1])
        assert s1 < 1.0
        p1 = apply(params, upd1)
        _, state, _, grad1 = tuner_step(tuner, state, f, p1)
        s0 = {"reset": 1.0, "keep": s1, "grow": min(inc * s1, 1.0)}[init]
        ref2 = _reference_search(f, p1, neg(grad1), s0, c, df, nb)
        assert float(state.info.step_size) == pytest.approx(ref2[0], rel=1e-14)
        assert int(state.info.num_values) == ref2[1] and bool(state.info.success)
        results[init] = (float(state.info.step_size), int(state.info.num_values))
    assert len(set(results.values())) == 3  # the three strategies really differ here


@pytest.mark.parametrize("on_failure", ["take", "skip"])
def test_failure_recorded_and_policy_respected(on_failure):
    a = np.diag(np.geomspace(1.0, 1e4, 7))
    f, _, _, params = quadratic(2, a=a)
    tuner = armijo(max_step=1.0, decrease_factor=0.5, max_backtracks=3, on_failure=on_failure, init="keep")
    updates, state, _, grad = tuner_step(tuner, tuner.init(params), f, params)
    assert not bool(state.info.success) and int(state.info.num_values) == 4
    for s in (1.0, 0.5, 0.25, 0.125):  # every candidate really fails
        assert not _holds(f, params, neg(grad), s, 1e-4, -1)
    expected = 0.125 if on_failure == "take" else 0.0
    assert float(state.info.step_size) == expected
    np.testing.assert_allclose(flat(updates), -expected * flat(grad), rtol=1e-15)
    # the next search ("keep") starts from the smallest candidate tried, whatever was taken
    p1 = apply(params, updates)
    _, state2, _, grad1 = tuner_step(tuner, state, f, p1)
    ref = _reference_search(f, p1, neg(grad1), 0.125, 1e-4, 0.5, 3)
    taken = ref[0] if ref[2] or on_failure == "take" else 0.0
    assert float(state2.info.step_size) == pytest.approx(taken, rel=1e-14)
    assert int(state2.info.num_values) == ref[1] and bool(state2.info.success) == ref[2]


def test_nan_region_is_backtracked_out_of():
    f0, _, _, params = quadratic(3)
    x0 = flat(params)

    def f(p):
        return jnp.where(jnp.linalg.norm(flat(p) - x0) > 0.05, jnp.nan, f0(p))

    tuner = armijo(max_step=10.0)
    updates, state, _, grad = tuner_step(tuner, tuner.init(params), f, params)
    s = float(state.info.step_size)
    assert bool(state.info.success) and 0 < s * np.linalg.norm(flat(grad)) <= 0.05
    assert _holds(f, params, neg(grad), s, 1e-4, +1)
    assert not np.isfinite(float(f(apply(params, jax.tree_util.tree_map(lambda x: -2 * s * x, grad)))))


@pytest.mark.parametrize("on_failure", ["take", "skip"])
def test_all_nan_trials_take_no_step(on_failure):
    f0, _, _, params = quadratic(3)
    x0 = flat(params)

    def f(p):
        return jnp.where(jnp.all(flat(p) == x0), f0(p), jnp.nan)

    tuner = armijo(max_backtracks=4, on_failure=on_failure)
    updates, state, _, _ = tuner_step(tuner, tuner.init(params), f, params)
    assert not bool(state.info.success) and int(state.info.num_values) == 5
    assert float(state.info.step_size) == 0.0 and np.all(flat(updates) == 0.0)
    assert float(state.last_step) == 0.5 ** 4  # the next search does not start from 0 (optax's stall)


def test_non_descent_direction_takes_no_step_and_no_evaluation():
    f, _, _, params = quadratic(4)
    tuner = armijo(init="keep")
    state = tuner.init(params)
    _, state, _, _ = tuner_step(tuner, state, f, params)
    last = float(state.last_step)
    _, grad = jax.value_and_grad(f)(params)
    updates, state, _, _ = tuner_step(tuner, state, f, params, direction=grad)
    assert not bool(state.info.success) and int(state.info.num_values) == 0
    assert float(state.info.step_size) == 0.0 and np.all(flat(updates) == 0.0)
    assert float(state.last_step) == last


@functools.lru_cache(maxsize=None)
def _optax_pair(init, steps=8):
    """Both searches for ``steps`` steps after optax.sgd(1.0), hyper-parameters traced."""
    def run(data, params, c, df, nb, max_step, inc):
        f = _objective(data)
        ours = optax.chain(optax.sgd(1.0), armijo(c=c, decrease_factor=df, max_backtracks=nb, max_step=max_step,
                                                  init=init, increase_factor=inc if init == "grow" else 1.5))
        theirs = optax.chain(optax.sgd(1.0), optax.scale_by_backtracking_linesearch(
            max_backtracking_steps=nb, slope_rtol=c, decrease_factor=df, increase_factor=inc,
            max_learning_rate=max_step))
        return side_by_side(f, ours, theirs, params, steps, lambda p_o, s_o, p_t, s_t, v_o: (
            flat(p_o), flat(p_t), s_o[1].info, s_t[1].learning_rate, s_t[1].info.num_linesearch_steps))

    return jax.jit(run)


@pytest.mark.parametrize("problem", ["mixed", "stiff-quadratic"])
@pytest.mark.parametrize("init,inc", [("grow", 1.5), ("grow", 2.0), ("keep", 1.0), ("reset", np.inf)])
def test_matches_optax_backtracking_linesearch(problem, init, inc):
    rng = np.random.default_rng(0)
    params = unflatten(jnp.asarray(rng.standard_normal(7)))
    if problem == "mixed":
        data = _problem_data(rng, weights=[0.3, 0.5, 1.0])
        c, df, nb, max_step = 0.2, 0.6, 15, 1.0
    else:  # failures (finite) happen here: both take the smallest candidate
        data = _problem_data(rng, weights=[1.0, 0.0, 0.0], a=np.diag(np.geomspace(1.0, 300.0, 7)))
        c, df, nb, max_step = 0.4, 0.5, 3, 0.8
    p_o, p_t, info, lr_t, n_t = _optax_pair(init)(data, params, c, df, nb, max_step, inc)
    np.testing.assert_allclose(info.step_size, lr_t, rtol=1e-12)
    np.testing.assert_array_equal(info.num_values, n_t)
    np.testing.assert_allclose(p_o, p_t, rtol=1e-12, atol=1e-12)
    assert np.all(np.asarray(info.step_size) > 0)
    if problem == "stiff-quadratic":
        assert not np.all(info.success)  # the failure branch was compared too
