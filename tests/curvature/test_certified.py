"""The eigensolver's ``converged`` is a certificate: the traps that once returned wrong values marked
converged, and accuracy at the settings users run (default tol and budget), against dense eigh."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eoslab.curvature import top_eigenpairs
from eoslab.curvature.block_lanczos import block_lanczos, ritz
from eoslab.curvature.eigen import DEFAULT_TOL
from tests.curvature.nets import cached_problem, dense_hessian, designed_quadratic, mlp_problem


def diagonal_quadratic(d):
    d = jnp.asarray(d, jnp.float64)
    return (lambda p: 0.5 * jnp.sum(d * p["w"] ** 2)), {"w": jnp.zeros(d.shape[0], jnp.float64)}


def test_breakdown_before_k_pairs_restarts_instead_of_padding():
    # H = I: the Krylov space of any start vector is invariant after one product.  The padding of the
    # tridiagonal once leaked out as [1, -1, -1], "converged".
    loss_fn, params = diagonal_quadratic(np.ones(10))
    res = top_eigenpairs(loss_fn, params, 3)
    np.testing.assert_allclose(res.eigenvalues, [1.0, 1.0, 1.0], rtol=1e-12)
    assert bool(res.converged) and int(res.num_hvps) == 3
    assert float(jnp.max(res.residuals)) < 1e-12


def test_breakdown_with_fewer_directions_than_pairs_is_not_converged():
    # H = I in dimension 2 asked for k = 2 with a budget of 2: exact; dimension exhausted is fine
    loss_fn, params = diagonal_quadratic([3.0, 3.0])
    res = top_eigenpairs(loss_fn, params, 2, max_hvps=2)
    np.testing.assert_allclose(res.eigenvalues, [3.0, 3.0], rtol=1e-12)
    assert bool(res.converged)


@pytest.mark.parametrize("seed", range(3))
def test_repeated_top_eigenvalue_comes_with_its_multiplicity(seed):
    # diag(5, 5, 4, ...) with k = 2 once returned [5, 4], converged
    d = np.concatenate([[5.0, 5.0, 4.0], np.linspace(0.0, 3.0, 40)])
    loss_fn, params = diagonal_quadratic(d)
    res = top_eigenpairs(loss_fn, params, 2, key=jax.random.PRNGKey(seed))
    assert bool(res.converged)
    np.testing.assert_allclose(res.eigenvalues, [5.0, 5.0], rtol=DEFAULT_TOL)
    k3 = top_eigenpairs(loss_fn, params, 3, key=jax.random.PRNGKey(seed))
    np.testing.assert_allclose(k3.eigenvalues, [5.0, 5.0, 4.0], rtol=DEFAULT_TOL)


@pytest.mark.parametrize("seed", range(4))
def test_start_vector_near_a_lower_eigenvector_still_finds_the_top(seed):
    # a start 1e-6 away from the second eigenvector once returned 9 after one product, converged
    d = np.concatenate([[10.0, 9.0], np.linspace(0.0, 8.0, 200)])
    loss_fn, params = diagonal_quadratic(d)
    v0 = np.zeros(202)
    v0[1] = 1.0
    v0 += 1e-6 * np.random.default_rng(seed).normal(size=202)
    res = top_eigenpairs(loss_fn, params, 1, v0={"w": jnp.asarray(v0)}, key=jax.random.PRNGKey(seed))
    assert bool(res.converged)
    np.testing.assert_allclose(res.eigenvalues[0], 10.0, rtol=DEFAULT_TOL)


def test_residual_is_exact_and_error_estimate_never_exceeds_it():
    # the residual formula ||C s|| against an explicit product, on a dense symmetric matrix
    a = jax.random.normal(jax.random.PRNGKey(0), (80, 80), jnp.float64)
    a = (a + a.T) / 2
    kr = block_lanczos(lambda v: a @ v, jax.random.normal(jax.random.PRNGKey(1), (2, 80), jnp.float64), 14)
    r = ritz(kr, 3, 2)
    y = r.coeffs.T @ kr.basis[:14]
    explicit = jnp.linalg.norm(y @ a - r.values[:, None] * y, axis=1)
    np.testing.assert_allclose(r.residuals, explicit, rtol=1e-8)
    assert np.all(np.asarray(r.errors) <= np.asarray(r.residuals) * (1 + 1e-12))
    # interlacing: every Ritz value is below the eigenvalue of its rank; a true eigenvalue lies within r
    evals = np.linalg.eigvalsh(np.asarray(a))[::-1]
    assert np.all(np.asarray(r.values) <= evals[:3] + 1e-10)
    for theta, res in zip(np.asarray(r.values), np.asarray(r.residuals)):
        assert np.min(np.abs(evals - theta)) <= res * (1 + 1e-10)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 2])
def test_converged_values_meet_tol_at_the_default_settings(seed, k):
    # what users run: default tol (1e-4) and default budget; float64 so the dense truth is exact
    loss_fn, params, _, evals, _ = cached_problem(act="tanh", loss="mse", widths=(40, 40))
    res = top_eigenpairs(loss_fn, params, k, key=jax.random.PRNGKey(seed))
    assert bool(res.converged)
    truth = evals[::-1][:k]
    err = np.abs(np.asarray(res.eigenvalues) - truth)
    assert np.all(err <= DEFAULT_TOL * abs(truth[0])), (err, res.errors)
    # the reported estimate is honest to within a small factor where it is not a strict bound
    assert np.all(err <= 10 * np.asarray(res.errors) + 1e-12 * abs(truth[0]))


@pytest.mark.parametrize("seed", range(3))
def test_smallest_at_default_settings(seed):
    loss_fn, params = mlp_problem(seed=seed, widths=(24,), act="tanh", loss="mse")
    evals = np.linalg.eigvalsh(np.asarray(dense_hessian(loss_fn, params)))
    res = top_eigenpairs(loss_fn, params, 1, which="smallest", key=jax.random.PRNGKey(seed))
    if bool(res.converged):
        scale = np.max(np.abs(evals))
        assert abs(float(res.eigenvalues[0]) - evals[0]) <= DEFAULT_TOL * max(abs(evals[0]), 1e-3 * scale)


def test_budget_capped_solve_says_so():
    loss_fn, params, _ = designed_quadratic(np.linspace(1.0, 1.05, 60), seed=2)  # clustered: slow
    res = top_eigenpairs(loss_fn, params, 1, tol=1e-8, max_hvps=4)
    assert int(res.num_hvps) == 4 and not bool(res.converged)
    assert float(res.errors[0]) > 1e-8 * float(res.eigenvalues[0])
