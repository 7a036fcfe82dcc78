"""Losses against hand-computed values and numpy references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eoslab.errors import ConfigError, InputError
from eoslab.losses import accuracy, ce, get_loss, make_loss_fn, mse, mse_mean
from eoslab.models import make_model

F = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]])
Y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def test_mse_by_hand():
    # example 1: 0.5 * (0 + 4 + 0) = 2; example 2: 0.5 * (0 + 1 + 4) = 2.5; mean 2.25
    assert float(mse(F, Y)) == pytest.approx(2.25, rel=1e-12)
    assert float(mse_mean(F, Y)) == pytest.approx(2.25 / 3, rel=1e-12)


def test_mse_mean_is_mse_over_k_and_so_is_its_hessian():
    rng = np.random.default_rng(0)
    f, y = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    assert float(mse_mean(f, y)) == pytest.approx(float(mse(f, y)) / 5, rel=1e-12)
    h1, h2 = jax.jit(lambda z: (jax.hessian(mse)(z, y), jax.hessian(mse_mean)(z, y)))(jnp.asarray(f))
    np.testing.assert_allclose(h2, h1 / 5, rtol=1e-12)
    np.testing.assert_allclose(np.diag(h1.reshape(35, 35)), 1 / 7, rtol=1e-12)  # 0.5 * 2 / N


def numpy_ce(f, y):
    m = f.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(f - m).sum(axis=1))
    return np.mean(lse - (f * y).sum(axis=1))


def test_ce_against_numpy_logsumexp():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(9, 4)) * 3
    labels = rng.integers(0, 4, size=9)
    y = np.eye(4)[labels]
    assert float(ce(f, y)) == pytest.approx(numpy_ce(f, y), rel=1e-12)
    assert float(ce(f, labels)) == pytest.approx(numpy_ce(f, y), rel=1e-12)  # integer labels
    # by hand: f = (0, 0) with label 0 -> log 2
    assert float(ce(np.zeros((1, 2)), np.array([[1.0, 0.0]]))) == pytest.approx(np.log(2), rel=1e-12)


def test_ce_is_stable_for_large_logits():
    f = np.array([[1000.0, 0.0], [0.0, -1000.0]])
    y = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert float(ce(f, y)) == pytest.approx(500.0, rel=1e-12)


def test_accuracy():
    assert float(accuracy(F, Y)) == pytest.approx(0.5)  # argmax (1, 2) vs labels (0, 2)
    assert float(accuracy(F, np.array([1, 2]))) == pytest.approx(1.0)
    assert np.isnan(float(accuracy(np.ones((3, 1)), np.ones((3, 1)))))  # regression: undefined


def test_single_output_regression_targets():
    f = np.array([[1.0], [3.0]])
    assert float(mse(f, np.array([0.0, 1.0]))) == pytest.approx(0.5 * (1 + 4) / 2)


def test_shape_mismatch_is_an_input_error():
    with pytest.raises(InputError, match=r"targets of shape \[2, 2\] do not match outputs \[2, 3\]"):
        mse(F, np.ones((2, 2)))


def test_get_loss():
    assert get_loss("mse") is mse and get_loss("mse-mean") is mse_mean and get_loss("ce") is ce
    with pytest.raises(ConfigError, match=r"unknown loss 'mse_mean'; choose one of mse, mse-mean, ce\."):
        get_loss("mse_mean")


def test_make_loss_fn_full_batch_closure():
    model = make_model("fc-tanh", input_shape=(3,), num_outputs=2, widths=(4,))
    x = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[[0, 1, 1, 0, 1]]
    params = model.init(0)
    loss_fn = make_loss_fn(model, "ce", x, y)
    expected = ce(model.apply(params, x), y)
    assert float(loss_fn(params)) == pytest.approx(float(expected), rel=1e-6)
    # a pytree: passes through jit as an argument, and differentiates
    assert float(jax.jit(lambda f, p: f(p))(loss_fn, params)) == pytest.approx(float(expected), rel=1e-6)
    grad = jax.grad(loss_fn)(params)
    assert jax.tree_util.tree_structure(grad) == jax.tree_util.tree_structure(params)
    custom = make_loss_fn(model, lambda f, t: jnp.sum(f), x, y)
    assert float(custom(params)) == pytest.approx(float(jnp.sum(model.apply(params, x))), rel=1e-6)


def test_ce_is_right_under_a_large_vmap():
    # 22 members x 1500 examples: the fused form of the mean came out wrong by 0.13 on the CPU backend
    import jax
    import jax.numpy as jnp
    import numpy as np
    from eoslab.losses import ce
    B, N = 22, 1500
    A = 2.0 * jax.random.normal(jax.random.PRNGKey(0), (B, N, 10), jnp.float32)
    y = jax.nn.one_hot(jnp.arange(N) % 10, 10)
    An = np.asarray(A, np.float64)
    m = An.max(-1, keepdims=True)
    ref = np.mean(m[..., 0] + np.log(np.exp(An - m).sum(-1)) - (np.asarray(y) * An).sum(-1), -1)
    got = np.asarray(jax.jit(jax.vmap(lambda a: ce(a, y)))(A))
    np.testing.assert_allclose(got, ref, atol=1e-5)
