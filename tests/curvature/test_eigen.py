"""Krylov eigensolver against dense eigh of the full Hessian (float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eoslab.curvature import right_eigenvectors, sharpness, top_eigenpairs
from eoslab.errors import InputError
from tests.curvature.nets import cached_problem, dense_hessian, designed_quadratic, mlp_problem

REL = 1e-8

CASES = [
    dict(act="tanh", loss="mse", widths=(40, 40)),  # 2484 parameters
    dict(act="relu", loss="ce", widths=(40, 40), d_out=5, seed=1),
    dict(act="tanh", loss="ce", widths=(60,), d_in=20, d_out=10, seed=2, scale=2.0),
    dict(act="relu", loss="mse", widths=(30, 30, 30), seed=3),
]


def _ids(case):
    return "-".join(f"{k}={v}" for k, v in case.items())


@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("k", [1, 10])
def test_top_k_match_dense(case, k):
    loss_fn, params, _, evals, evecs = cached_problem(**case)
    res = top_eigenpairs(loss_fn, params, k, tol=1e-12, max_hvps=600)
    truth = evals[::-1][:k]
    np.testing.assert_allclose(res.eigenvalues, truth, rtol=REL, atol=0)
    assert bool(res.converged)
    assert res.eigenvalues.shape == (k,)
    # eigenvectors: unit norm, and aligned with the dense ones (when the eigenvalue is simple)
    flat = jax.vmap(lambda t: ravel_pytree(t)[0])(res.eigenvectors)
    np.testing.assert_allclose(jnp.linalg.norm(flat, axis=1), 1.0, rtol=1e-10)
    cos = jnp.abs(flat[0] @ evecs[:, -1])
    assert cos > 1 - 1e-8


@pytest.mark.parametrize("case", CASES[:2], ids=_ids)
def test_smallest_match_dense(case):
    loss_fn, params, _, evals, _ = cached_problem(**case)
    assert evals[0] < 0, "test problem must be indefinite"
    res = top_eigenpairs(loss_fn, params, 5, which="smallest", tol=1e-12, max_hvps=1000)
    np.testing.assert_allclose(res.eigenvalues, evals[:5], rtol=REL)
    assert bool(jnp.all(jnp.diff(res.eigenvalues) >= 0)), "smallest are returned ascending"


def test_largest_is_algebraic_not_magnitude():
    # |most negative| > largest: a magnitude-based solver would return -10
    loss_fn, params, _ = designed_quadratic([-10.0, -3.0, 0.5, 1.0, 4.0] + [0.0] * 20, seed=4)
    res = top_eigenpairs(loss_fn, params, 2, tol=1e-12)
    np.testing.assert_allclose(res.eigenvalues, [4.0, 1.0], rtol=1e-10)
    assert float(sharpness(loss_fn, params, tol=1e-12)) == pytest.approx(4.0, rel=1e-10)


@pytest.mark.parametrize("ratio", [0.96, 0.99, 0.999])
def test_nearly_equal_top_eigenvalues(ratio):
    rng = np.random.default_rng(0)
    bulk = list(rng.uniform(-0.5, 0.5, size=300))
    lam = [10.0, 10.0 * ratio, 10.0 * ratio**2, 3.0] + bulk
    loss_fn, params, a = designed_quadratic(lam, seed=5, cubic=0.3)
    truth = np.sort(np.linalg.eigvalsh(np.asarray(dense_hessian(loss_fn, params))))[::-1]
    res = top_eigenpairs(loss_fn, params, 3, tol=1e-12, max_hvps=300)
    np.testing.assert_allclose(res.eigenvalues, truth[:3], rtol=REL)


def test_indefinite_network_both_ends():
    loss_fn, params, _, evals, _ = cached_problem(act="relu", loss="ce", widths=(40, 40), d_out=5, seed=1)
    top = top_eigenpairs(loss_fn, params, 3, tol=1e-12, max_hvps=600)
    bottom = top_eigenpairs(loss_fn, params, 3, which="smallest", tol=1e-12, max_hvps=1000)
    assert evals[0] < 0 < evals[-1]
    np.testing.assert_allclose(top.eigenvalues, evals[::-1][:3], rtol=REL)
    np.testing.assert_allclose(bottom.eigenvalues, evals[:3], rtol=REL)


def test_residuals_bound_true_residuals():
    loss_fn, params, h, evals, _ = cached_problem(act="tanh", loss="mse", widths=(40, 40))
    res = top_eigenpairs(loss_fn, params, 4, tol=1e-3, max_hvps=40)
    flat = jax.vmap(lambda t: ravel_pytree(t)[0])(res.eigenvectors)
    true_res = jnp.linalg.norm(flat @ h - res.eigenvalues[:, None] * flat, axis=1)
    np.testing.assert_allclose(res.residuals, true_res, rtol=1e-6, atol=1e-12)
    # each eigenvalue is within its residual of a true eigenvalue
    for lam, r in zip(res.eigenvalues, res.residuals):
        assert float(jnp.min(jnp.abs(evals - lam))) <= float(r) * (1 + 1e-9) + 1e-12


def test_preconditioned_matches_dense():
    loss_fn, params, h, _, _ = cached_problem(act="tanh", loss="mse", widths=(40, 40))
    key = jax.random.PRNGKey(7)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    precond = tree.unflatten([jnp.exp(jax.random.normal(kk, l.shape, l.dtype)) for kk, l in zip(keys, leaves)])
    p = ravel_pytree(precond)[0]
    s = 1 / jnp.sqrt(p)
    sym = s[:, None] * h * s[None, :]
    truth = np.sort(np.linalg.eigvalsh(np.asarray(sym)))[::-1]
    res = top_eigenpairs(loss_fn, params, 5, precond=precond, tol=1e-12, max_hvps=600)
    np.testing.assert_allclose(res.eigenvalues, truth[:5], rtol=REL)
    # right eigenvectors of P^-1 H
    x = ravel_pytree(jax.tree_util.tree_map(lambda a: a[0], right_eigenvectors(res.eigenvectors, precond)))[0]
    np.testing.assert_allclose((h @ x) / p, res.eigenvalues[0] * x, atol=1e-7 * float(jnp.abs(x).max()) * truth[0])


def test_jit_and_vmap_over_ensemble():
    loss_fn, params = mlp_problem(widths=(20,), d_in=8, d_out=3, n=32)
    batch = jax.tree_util.tree_map(lambda a: jnp.stack([a, 1.5 * a, 0.5 * a]), params)
    solve = lambda p: top_eigenpairs(loss_fn, p, 2, tol=1e-12, max_hvps=200).eigenvalues
    vm = jax.jit(jax.vmap(solve))(batch)
    for i in range(3):
        pi = jax.tree_util.tree_map(lambda a: a[i], batch)
        truth = np.sort(np.linalg.eigvalsh(np.asarray(dense_hessian(loss_fn, pi))))[::-1][:2]
        np.testing.assert_allclose(vm[i], truth, rtol=REL)


def test_warm_start_is_cheaper_than_cold():
    loss_fn, params, _, evals, evecs = cached_problem(act="tanh", loss="mse", widths=(40, 40))
    _, unravel = ravel_pytree(params)
    cold = top_eigenpairs(loss_fn, params, 1, tol=1e-8, max_hvps=300)
    warm = top_eigenpairs(loss_fn, params, 1, tol=1e-8, max_hvps=300, v0=unravel(evecs[:, -1] + 1e-4))
    assert int(warm.num_hvps) < int(cold.num_hvps)
    np.testing.assert_allclose(warm.eigenvalues[0], evals[-1], rtol=1e-8)


def test_exact_in_small_dimension_with_breakdown():
    # dim 6 < budget: Lanczos becomes invariant and the answer is exact
    loss_fn, params, a = designed_quadratic([3.0, 1.0, -2.0, 0.5, 0.2, -0.1], seed=1)
    res = top_eigenpairs(loss_fn, params, 6, tol=0.0)
    np.testing.assert_allclose(res.eigenvalues, sorted(np.linalg.eigvalsh(np.asarray(a)))[::-1], rtol=1e-12)
    assert int(res.num_hvps) == 6


def test_float32_default_dtype_works():
    loss_fn, params = mlp_problem(widths=(20,), d_in=8, d_out=3, n=32)
    p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
    loss32 = lambda p: loss_fn(jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), p)).astype(jnp.float32)
    res = top_eigenpairs(loss32, p32, 1)
    truth = np.linalg.eigvalsh(np.asarray(dense_hessian(loss_fn, params)))[-1]
    assert res.eigenvalues.dtype == jnp.float32
    np.testing.assert_allclose(res.eigenvalues[0], truth, rtol=1e-4)


# ---- bad input -------------------------------------------------------------

def test_k_larger_than_dimension():
    loss_fn, params, _ = designed_quadratic([1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="k=4 .*3-dimensional"):
        top_eigenpairs(loss_fn, params, 4)


def test_non_scalar_loss():
    _, params, _ = designed_quadratic([1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="real scalar"):
        top_eigenpairs(lambda p: p["theta"] ** 2, params)


def test_nan_params():
    loss_fn, params, _ = designed_quadratic([1.0, 2.0, 3.0])
    bad = {"theta": params["theta"].at[1].set(jnp.nan)}
    with pytest.raises(InputError, match=r"\['theta'\] contains NaN"):
        top_eigenpairs(loss_fn, bad)


def test_nan_under_jit_is_reported_not_silent_and_terminates():
    loss_fn, params, _ = designed_quadratic([1.0, 2.0, 3.0] + [0.1] * 20)
    bad = {"theta": params["theta"].at[1].set(jnp.nan)}
    res = jax.jit(lambda p: top_eigenpairs(loss_fn, p, 1, max_hvps=10))(bad)
    assert not bool(res.converged)
    assert int(res.num_hvps) <= 10


def test_mismatched_start_vector():
    loss_fn, params, _ = designed_quadratic([1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="v0 .*shape"):
        top_eigenpairs(loss_fn, params, v0={"theta": jnp.ones(4)})
    with pytest.raises(InputError, match="v0 does not have the same pytree structure"):
        top_eigenpairs(loss_fn, params, v0={"other": jnp.ones(3)})


def test_bad_which_and_tol():
    loss_fn, params, _ = designed_quadratic([1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="which='magnitude'"):
        top_eigenpairs(loss_fn, params, which="magnitude")
    with pytest.raises(InputError, match="tol"):
        top_eigenpairs(loss_fn, params, tol=-1.0)


def test_nonpositive_preconditioner():
    loss_fn, params, _ = designed_quadratic([1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="strictly positive"):
        top_eigenpairs(loss_fn, params, precond={"theta": jnp.array([1.0, 0.0, 1.0])})
