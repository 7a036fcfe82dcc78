"""PAL against closed-form line minimisers of quadratics and hand-computed conjugate steps."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from eoslab.tuners import parabolic
from tests.tuners import apply, flat, quadratic, tuner_step, unflatten


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("mu", [0.1, 1.0, 3.0])
def test_alpha_one_lands_on_line_minimiser_of_quadratic(seed, mu):
    f, a, b, params = quadratic(seed, cond=30.0)
    tuner = parabolic(mu=mu, alpha=1.0, s_max=np.inf)
    updates, state, _, grad = tuner_step(tuner, tuner.init(params), f, params)
    x, g = np.asarray(flat(params)), np.asarray(flat(grad))
    dhat = -g / np.linalg.norm(g)
    s_star = -(g @ dhat) / (dhat @ a @ dhat)  # argmin_s f(x + s dhat)
    np.testing.assert_allclose(flat(apply(params, updates)), x + s_star * dhat, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(state.info.step_size, s_star, rtol=1e-10)
    np.testing.assert_allclose(state.info.curvature, dhat @ a @ dhat, rtol=1e-8)
    assert bool(state.info.success) and int(state.info.num_values) == 1 and int(state.info.num_grads) == 0
    # the new point is stationary along the line
    x_new = np.asarray(flat(apply(params, updates)))
    assert abs((a @ x_new - b) @ dhat) <= 1e-9 * np.linalg.norm(g)


def test_alpha_scales_the_vertex_step():
    f, a, _, params = quadratic(7)
    out = {}
    for alpha in (1.0, 1 / 0.6):
        tuner = parabolic(alpha=alpha, s_max=np.inf)
        _, state, _, _ = tuner_step(tuner, tuner.init(params), f, params)
        out[alpha] = float(state.info.step_size)
    np.testing.assert_allclose(out[1 / 0.6], out[1.0] / 0.6, rtol=1e-12)


def test_non_descent_direction_gives_zero_step():
    f, _, _, params = quadratic(1)
    tuner = parabolic()
    _, grad = jax.value_and_grad(f)(params)
    updates, state, _, _ = tuner_step(tuner, tuner.init(params), f, params, direction=grad)  # b = |g| > 0
    assert float(state.info.step_size) == 0.0
    assert np.all(flat(updates) == 0.0)


def test_concave_direction_steps_mu():
    def f(p):  # concave everywhere: a < 0 along any direction
        x = flat(p)
        return jnp.sum(x) - 0.5 * x @ x
    params = unflatten(jnp.linspace(-1.0, 2.0, 7))
    tuner = parabolic(mu=0.7)
    updates, state, _, grad = tuner_step(tuner, tuner.init(params), f, params)
    g = np.asarray(flat(grad))
    np.testing.assert_allclose(flat(updates), -0.7 * g / np.linalg.norm(g), rtol=1e-12)
    assert float(state.info.step_size) == pytest.approx(0.7, rel=1e-15)
    assert float(state.info.curvature) == pytest.approx(-1.0, rel=1e-8)


def test_step_clipped_at_s_max():
    f, a, _, params = quadratic(3, cond=2.0)  # eigenvalues in [1, 2]
    params = jax.tree_util.tree_map(lambda x: 50.0 * x, params)  # far away: the vertex is far
    tuner = parabolic(alpha=1.0, s_max=0.5)
    updates, state, _, grad = tuner_step(tuner, tuner.init(params), f, params)
    g = np.asarray(flat(grad))
    dhat = -g / np.linalg.norm(g)
    assert -(g @ dhat) / (dhat @ a @ dhat) > 0.5  # the unclipped step would be larger
    np.testing.assert_allclose(flat(updates), 0.5 * dhat, rtol=1e-12)
    assert float(state.info.step_size) == 0.5 and bool(state.info.success)


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf])
def test_non_finite_loss_at_measuring_point_keeps_params(bad):
    f0, _, _, params = quadratic(4)
    x0 = flat(params)

    def f(p):  # finite only near the starting point
        return jnp.where(jnp.linalg.norm(flat(p) - x0) < 0.5, f0(p), bad)

    tuner = parabolic(mu=1.0)
    updates, state, value, _ = tuner_step(tuner, tuner.init(params), f, params)
    assert np.isfinite(float(value))
    assert np.all(flat(updates) == 0.0)
    assert not bool(state.info.success) and float(state.info.step_size) == 0.0
    np.testing.assert_array_equal(flat(optax.apply_updates(params, updates)), x0)


def test_conjugate_direction_second_step_by_hand():
    f, a, b, params = quadratic(5, cond=20.0)
    alpha, beta, mu, s_max = 1.3, 0.4, 0.5, 10.0
    tuner = parabolic(mu=mu, alpha=alpha, s_max=s_max, beta=beta)
    state = tuner.init(params)
    p = params
    for _ in range(2):
        updates, state, _, _ = tuner_step(tuner, state, f, p)
        p = apply(p, updates)

    def pal_step(x, d):  # exact for a quadratic: the fitted parabola is the function itself
        g = a @ x - b
        dhat = d / np.linalg.norm(d)
        slope, curv = g @ dhat, 0.5 * dhat @ a @ dhat
        s = alpha * (-slope / (2 * curv)) if slope < 0 else 0.0
        return x + min(s, s_max) * dhat

    x0 = np.asarray(flat(params))
    d1 = -(a @ x0 - b)
    x1 = pal_step(x0, d1)
    d2 = -(a @ x1 - b) + beta * d1
    x2 = pal_step(x1, d2)
    g1 = a @ x1 - b
    assert np.linalg.norm(d2 / np.linalg.norm(d2) + g1 / np.linalg.norm(g1)) > 1e-2  # d2 is not along -g
    np.testing.assert_allclose(flat(p), x2, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(flat(state.direction), d2, rtol=1e-10, atol=1e-12)
