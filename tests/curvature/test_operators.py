"""Hessian-vector products against the dense Hessian."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eoslab.curvature import flat_operator, hvp, value_grad_hvp
from eoslab.errors import InputError
from tests.curvature.nets import dense_hessian, mlp_problem


@pytest.fixture(scope="module")
def problem():
    loss_fn, params = mlp_problem(widths=(12,), d_in=5, d_out=3, n=20)
    return loss_fn, params, dense_hessian(loss_fn, params)


def _random_like(params, seed):
    flat, unravel = ravel_pytree(params)
    return unravel(jax.random.normal(jax.random.PRNGKey(seed), flat.shape, flat.dtype))


def test_hvp_matches_dense(problem):
    loss_fn, params, h = problem
    v = _random_like(params, 1)
    np.testing.assert_allclose(ravel_pytree(hvp(loss_fn, params, v))[0], h @ ravel_pytree(v)[0], rtol=1e-10, atol=1e-12)


def test_value_grad_hvp_from_one_linearisation(problem):
    loss_fn, params, h = problem
    v = _random_like(params, 2)
    out = value_grad_hvp(loss_fn, params, v)
    g = jax.grad(loss_fn)(params)
    np.testing.assert_allclose(out.value, loss_fn(params), rtol=1e-12)
    np.testing.assert_allclose(ravel_pytree(out.grad)[0], ravel_pytree(g)[0], rtol=1e-12)
    np.testing.assert_allclose(out.directional_derivative, ravel_pytree(g)[0] @ ravel_pytree(v)[0], rtol=1e-10)
    np.testing.assert_allclose(ravel_pytree(out.hvp)[0], h @ ravel_pytree(v)[0], rtol=1e-10, atol=1e-12)


def test_flat_operator_with_preconditioner(problem):
    loss_fn, params, h = problem
    p = jax.tree_util.tree_map(lambda a: 1.0 + jnp.abs(a), params)
    pf = ravel_pytree(p)[0]
    op = flat_operator(loss_fn, params, p)
    v = jax.random.normal(jax.random.PRNGKey(3), (op.dim,), op.dtype)
    expected = (h @ (v / jnp.sqrt(pf))) / jnp.sqrt(pf)
    np.testing.assert_allclose(op.matvec(v), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(op.grad, ravel_pytree(jax.grad(loss_fn)(params))[0], rtol=1e-12)


def test_hvp_under_jit_and_vmap(problem):
    loss_fn, params, h = problem
    vs = jax.vmap(lambda s: _random_like(params, s))(jnp.arange(3))
    out = jax.jit(jax.vmap(lambda v: hvp(loss_fn, params, v)))(vs)
    flat_v = jax.vmap(lambda t: ravel_pytree(t)[0])(vs)
    flat_o = jax.vmap(lambda t: ravel_pytree(t)[0])(out)
    np.testing.assert_allclose(flat_o, flat_v @ h.T, rtol=1e-10, atol=1e-12)


def test_mismatched_pytrees(problem):
    loss_fn, params, _ = problem
    with pytest.raises(InputError, match="same pytree structure"):
        hvp(loss_fn, params, params[:-1])
    bad = jax.tree_util.tree_map(lambda a: a, params)
    bad[0]["w"] = jnp.ones((3, 3))
    with pytest.raises(InputError, match=r"v leaf \[0\]\['w'\] has shape \(3, 3\)"):
        hvp(loss_fn, params, bad)


def test_non_scalar_loss(problem):
    _, params, _ = problem
    with pytest.raises(InputError, match="real scalar but returned \\(5, 12\\)"):
        hvp(lambda p: p[0]["w"] * 2.0, params, params)


def test_checks_accept_concrete_params_closed_over_inside_jit():
    # inside a jit trace jnp ops on closed-over concrete arrays are staged; the checks must not trip on it
    import jax
    import jax.numpy as jnp
    from eoslab.curvature import top_eigenpairs
    params = {"w": jnp.asarray([1.0, 2.0, 3.0])}
    loss = lambda p: 0.5 * jnp.sum(jnp.asarray([1.0, 2.0, 5.0]) * p["w"] ** 2)
    precond = {"w": jnp.ones(3)}
    lam = jax.jit(lambda: top_eigenpairs(loss, params, k=1, precond=precond, tol=1e-8).eigenvalues[0])()
    assert abs(float(lam) - 5.0) < 1e-6
