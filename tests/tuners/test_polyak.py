"""Polyak steps against the formula (edge cases included) and against optax.polyak_sgd."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from eoslab.tuners import polyak
from tests.tuners import flat, mlp, neg, quadratic, side_by_side, unflatten


def _update(tuner, value, grad, direction=None):
    u = neg(grad) if direction is None else direction
    return tuner.update(u, tuner.init(grad), grad, value=value, grad=grad)


def _grad(values):
    return unflatten(jnp.asarray(values, float))


G = _grad([0.5, -1.0, 2.0, 0.0, 1.5, -0.5, 1.0])  # |g|^2 = 8.75
GSQ = 8.75


@pytest.mark.parametrize("value,f_star,c,eps,max_step", [
    (3.0, 0.0, 1.0, 0.0, 10.0),  # plain: 3 / 8.75
    (3.0, 1.0, 0.5, 0.0, 10.0),  # gap 2, c = 1/2
    (3.0, -2.0, 2.0, 1.25, 10.0),  # eps in the denominator
    (300.0, 0.0, 1.0, 0.0, 10.0),  # clipped at max_step
])
@pytest.mark.parametrize("variant", ["max", "plus"])
def test_formula_with_positive_gap(value, f_star, c, eps, max_step, variant):
    tuner = polyak(f_star=f_star, c=c, max_step=max_step, variant=variant, eps=eps)
    updates, state = _update(tuner, value, G)
    eta = min((value - f_star) / (c * GSQ + eps), max_step)
    assert float(state.info.step_size) == pytest.approx(eta, rel=1e-15)
    np.testing.assert_allclose(flat(updates), -eta * flat(G), rtol=1e-15)
    assert bool(state.info.success)
    assert int(state.info.num_values) == 0 and int(state.info.num_grads) == 0


@pytest.mark.parametrize("variant,success", [("max", False), ("plus", True)])
def test_value_below_f_star_takes_no_step(variant, success):
    tuner = polyak(f_star=1.0, variant=variant)
    updates, state = _update(tuner, 0.25, G)  # the raw SPS formula would give -0.75/8.75 (an ascent step)
    assert float(state.info.step_size) == 0.0 and np.all(flat(updates) == 0.0)
    assert bool(state.info.success) is success


@pytest.mark.parametrize("variant", ["max", "plus"])
@pytest.mark.parametrize("value,max_step,expected", [
    (2.0, 0.7, 0.7),  # positive gap, vanishing gradient: the formula's limit, capped
    (2.0, np.inf, 0.0),  # ... but never an infinite step
    (0.0, 0.7, 0.0),  # zero gap: 0/0
    (-1.0, 0.7, 0.0),  # negative gap
])
def test_zero_gradient_guard(variant, value, max_step, expected):
    zero = _grad(np.zeros(7))
    direction = _grad(np.ones(7))  # the step still scales a non-zero direction
    tuner = polyak(max_step=max_step, variant=variant)
    updates, state = _update(tuner, value, zero, direction)
    assert float(state.info.step_size) == expected
    np.testing.assert_array_equal(flat(updates), expected * np.ones(7))
    assert not bool(state.info.success)


def test_eps_makes_zero_gradient_regular():
    tuner = polyak(max_step=10.0, eps=0.5)
    _, state = _update(tuner, 2.0, _grad(np.zeros(7)))
    assert float(state.info.step_size) == 4.0 and bool(state.info.success)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_value_takes_no_step(value):
    updates, state = _update(polyak(), value, G)
    assert float(state.info.step_size) == 0.0 and np.all(flat(updates) == 0.0)
    assert not bool(state.info.success)


def test_non_finite_gradient_takes_no_step():
    g = _grad([np.nan, 1, 1, 1, 1, 1, 1])
    updates, state = _update(polyak(), 1.0, g, direction=G)
    assert float(state.info.step_size) == 0.0 and np.all(flat(updates) == 0.0)


def test_uses_grad_norm_and_scales_the_given_direction():
    direction = _grad(np.arange(7.0))  # not -g: e.g. a momentum direction
    updates, state = _update(polyak(max_step=10.0), 3.0, G, direction)
    np.testing.assert_allclose(flat(updates), 3.0 / GSQ * np.arange(7.0), rtol=1e-15)


@functools.lru_cache(maxsize=None)
def _pair(variant):
    def run(params, f_min, eps, max_step):
        f, _ = mlp(0)
        ours = optax.chain(optax.scale(-1.0), polyak(f_star=f_min, c=1.0, max_step=max_step, eps=eps,
                                                     variant=variant))
        theirs = optax.polyak_sgd(max_learning_rate=max_step, scaling=1.0, f_min=f_min, eps=eps,
                                  variant={"max": "sps", "plus": "sps+"}[variant])
        return side_by_side(f, ours, theirs, params, 10, lambda p_o, s_o, p_t, s_t, v_o: (
            flat(p_o), flat(p_t), s_o[1].info.step_size, v_o))

    return jax.jit(run)


@pytest.mark.parametrize("variant", ["max", "plus"])
@pytest.mark.parametrize("f_min,eps,max_step", [(0.0, 0.0, 1.0), (0.0, 1e-3, 5.0), (-0.1, 0.0, 2.0)])
def test_matches_optax_polyak_sgd(variant, f_min, eps, max_step):
    _, params = mlp(0)
    p_o, p_t, steps, values = _pair(variant)(params, f_min, eps, max_step)
    np.testing.assert_allclose(p_o, p_t, rtol=1e-12, atol=1e-12)
    assert np.all(np.asarray(values) > f_min) and np.all(np.asarray(steps) > 0)
    assert np.ptp(np.asarray(steps)) > 0  # the step really adapts
    if max_step == 1.0:
        assert np.any(np.asarray(steps) < max_step)  # the formula, not only the cap, was compared


def test_quadratic_with_true_minimum_is_polyak_step():
    """Full-batch Polyak with f* = min f: eta = (f - f*) / |g|^2 exactly (c = 1)."""
    f0, a, b, params = quadratic(2)
    f_min = -0.5 * b @ np.linalg.solve(a, b)
    v, g = jax.value_and_grad(f0)(params)
    _, state = polyak(f_star=f_min, max_step=np.inf).update(neg(g), polyak().init(params), params, value=v, grad=g)
    x = np.asarray(flat(params))
    gn = a @ x - b
    assert float(state.info.step_size) == pytest.approx((float(v) - f_min) / (gn @ gn), rel=1e-12)
