"""CDAT against exact line searches on quadratics and hand-computed moving averages."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eoslab.tuners import edge
from tests.tuners import apply, flat, quadratic, tuner_step, unflatten


def _direction(seed, grad, descent=True):
    """A random direction (not -g), flipped to be a descent direction when asked."""
    u = np.random.default_rng(seed).standard_normal(7)
    g = np.asarray(flat(grad))
    if descent and u @ g > 0:
        u = -u
    return unflatten(jnp.asarray(u))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("along_gradient", [True, False])
def test_sigma_one_is_exact_line_search_and_sigma_two_twice_it(seed, along_gradient):
    f, a, b, params = quadratic(seed, cond=50.0)
    grad = jax.grad(f)(params)
    u = None if along_gradient else _direction(seed, grad)
    steps = {}
    for sigma in (1.0, 2.0):
        tuner = edge(sigma=sigma)
        updates, state, _, _ = tuner_step(tuner, tuner.init(params), f, params, direction=u)
        steps[sigma] = (np.asarray(flat(updates)), state.info)
    x = np.asarray(flat(params))
    g = a @ x - b
    d = -g if along_gradient else np.asarray(flat(u))
    s_star = -(g @ d) / (d @ a @ d)  # argmin_s f(x + s d)
    upd1, info1 = steps[1.0]
    np.testing.assert_allclose(upd1, s_star * d, rtol=1e-10, atol=1e-14)
    assert float(info1.step_size) == pytest.approx(s_star, rel=1e-10)
    assert float(info1.curvature) == pytest.approx(d @ a @ d / (d @ d), rel=1e-10)
    assert bool(info1.success) and int(info1.num_grads) == 1 and int(info1.num_values) == 0
    x1 = x + upd1
    assert abs((a @ x1 - b) @ d) <= 1e-9 * np.linalg.norm(g) * np.linalg.norm(d)  # stationary along d
    upd2, info2 = steps[2.0]
    np.testing.assert_allclose(upd2, 2 * s_star * d, rtol=1e-10, atol=1e-14)
    # on the edge: the quadratic returns to its starting value along d
    f_x = 0.5 * x @ a @ x - b @ x
    x2 = x + upd2
    assert 0.5 * x2 @ a @ x2 - b @ x2 == pytest.approx(f_x, rel=1e-9, abs=1e-9)


def test_ema_two_steps_by_hand():
    f, a, b, params = quadratic(3, cond=20.0)
    sigma, ema, eps = 1.5, 0.7, 0.1
    tuner = edge(sigma=sigma, ema=ema, eps=eps)
    state = tuner.init(params)
    p = params
    infos = []
    for _ in range(2):
        updates, state, _, _ = tuner_step(tuner, state, f, p)
        p = apply(p, updates)
        infos.append(state.info)
    x = np.asarray(flat(params))
    num = den = 0.0
    for t in range(2):
        g = a @ x - b
        u = -g
        num = ema * num + (1 - ema) * max(g @ g, 0.0)
        den = ema * den + (1 - ema) * abs(u @ a @ u)
        eta = sigma * num / (den + eps)
        assert float(infos[t].step_size) == pytest.approx(eta, rel=1e-12)
        x = x + eta * u
    np.testing.assert_allclose(flat(p), x, rtol=1e-12, atol=1e-12)
    assert float(state.numerator) == pytest.approx(num, rel=1e-12)
    assert float(state.denominator) == pytest.approx(den, rel=1e-12)


def test_negative_curvature_uses_absolute_value():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((7, 7)))
    a = (q * np.array([-3.0, -1.0, 0.5, 1.0, 2.0, 4.0, 8.0])) @ q.T  # indefinite
    f, _, b, params = quadratic(0, a=a)
    u = unflatten(jnp.asarray(q[:, 0]))  # eigenvector of eigenvalue -3
    grad = jax.grad(f)(params)
    if float(flat(grad) @ flat(u)) > 0:
        u = jax.tree_util.tree_map(jnp.negative, u)
    tuner = edge(sigma=2.0)
    _, state, _, _ = tuner_step(tuner, tuner.init(params), f, params, direction=u)
    slope = float(flat(grad) @ flat(u))
    assert float(state.info.step_size) == pytest.approx(2.0 * -slope / 3.0, rel=1e-10)
    assert float(state.info.curvature) == pytest.approx(-3.0, rel=1e-10)


def test_non_descent_direction_takes_no_step():
    f, _, _, params = quadratic(2)
    grad = jax.grad(f)(params)
    tuner = edge()
    updates, state, _, _ = tuner_step(tuner, tuner.init(params), f, params, direction=grad)
    assert float(state.info.step_size) == 0.0 and np.all(flat(updates) == 0.0)
    assert bool(state.info.success)  # eta = 0 is the rule's answer, not a guard


@pytest.mark.parametrize("max_step,expected", [(0.3, 0.3), (np.inf, 0.0)])
def test_zero_curvature_guard(max_step, expected):
    c = jnp.asarray(np.linspace(-1.0, 1.0, 7))

    def f(p):  # linear: u'Hu = 0
        return c @ flat(p)

    params = unflatten(jnp.zeros(7))
    tuner = edge(max_step=max_step)
    updates, state, _, grad = tuner_step(tuner, tuner.init(params), f, params)
    assert float(state.info.step_size) == expected and not bool(state.info.success)
    np.testing.assert_array_equal(flat(updates), -expected * np.asarray(c))
    assert float(state.info.curvature) == 0.0


def test_max_step_caps_the_step():
    f, _, _, params = quadratic(1, cond=2.0)
    tuner = edge(sigma=2.0, max_step=0.01)
    updates, state, _, grad = tuner_step(tuner, tuner.init(params), f, params)
    assert float(state.info.step_size) == 0.01 and bool(state.info.success)
    np.testing.assert_allclose(flat(updates), -0.01 * flat(grad), rtol=1e-15)


def test_non_finite_curvature_takes_no_step():
    f0, _, _, params = quadratic(1)
    x0 = flat(params)[0]

    def f(p):  # finite gradient, infinite curvature at params
        return f0(p) + jnp.abs(flat(p)[0] - x0) ** 1.5

    grad = jax.grad(f)(params)
    assert np.all(np.isfinite(flat(grad)))
    tuner = edge()
    updates, state, _, _ = tuner_step(tuner, tuner.init(params), f, params, direction=_direction(0, grad))
    assert not np.isfinite(float(state.info.curvature))
    assert float(state.info.step_size) == 0.0 and not bool(state.info.success)
    assert np.all(flat(updates) == 0.0)
