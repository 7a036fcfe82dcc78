"""The complementarity solver against a general convex solver (cvxpy) and closed forms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eoslab.flows.complementarity import smat, solve, svec


def random_instance(rng, k, rank=None):
    """A solvable instance: beta = D D^T (PSD; singular when rank < k(k+1)/2) and alpha = Y* - beta[X*] with
    X*, Y* >= 0 and X* Y* = 0 (complementary eigenspaces), so that X* solves it."""
    n = k * (k + 1) // 2
    d = rng.standard_normal((n, rank or n))
    beta = d @ d.T
    q, _ = np.linalg.qr(rng.standard_normal((k, k)))
    split = rng.integers(1, k + 1) if k > 1 else 1  # X* lives on the first `split` directions, Y* on the rest
    X = (q[:, :split] * rng.uniform(0.5, 2.0, split)) @ q[:, :split].T
    Y = (q[:, split:] * rng.uniform(0.5, 2.0, k - split)) @ q[:, split:].T
    alpha = Y - np.asarray(smat(jnp.asarray(beta) @ svec(jnp.asarray(X)), k))
    return 0.5 * (alpha + alpha.T), beta


def cvxpy_solution(alpha, beta):
    import cvxpy as cp
    k = alpha.shape[0]
    X = cp.Variable((k, k), PSD=True)
    i, j = np.triu_indices(k)
    w = np.where(i == j, 1.0, np.sqrt(2.0))
    x = cp.hstack([X[a, b] * s for a, b, s in zip(i, j, w)])
    evals, evecs = np.linalg.eigh(beta)
    root = evecs * np.sqrt(np.maximum(evals, 0))
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(root.T @ x) + cp.sum(cp.multiply(alpha, X))))
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return np.asarray(X.value), prob.value


def objective(alpha, beta, X):
    x = np.asarray(svec(jnp.asarray(X)))
    return 0.5 * x @ beta @ x + np.sum(alpha * X)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_against_cvxpy_on_random_instances(k):
    rng = np.random.default_rng(k)
    for trial in range(3):
        alpha, beta = random_instance(rng, k, rank=None if trial % 2 == 0 else max(1, k))
        got = solve(jnp.asarray(alpha), jnp.asarray(beta), tol=1e-10)
        assert bool(got.converged), (k, trial, float(got.residual))
        X = np.asarray(got.X)
        want, best = cvxpy_solution(alpha, beta)
        # the complementarity conditions themselves
        assert np.linalg.eigvalsh(X).min() >= -1e-9
        Y = np.asarray(got.slack)
        assert np.linalg.eigvalsh(Y).min() >= -1e-6 * max(1.0, np.abs(alpha).max())
        assert abs(np.sum(X * Y)) <= 1e-6 * max(1.0, np.abs(alpha).max() * np.abs(X).max())
        # the same optimum as the general solver (X itself where beta is definite, so the optimum unique)
        assert objective(alpha, beta, X) <= best + 1e-7 * max(1.0, abs(best))
        if trial % 2 == 0:
            np.testing.assert_allclose(X, want, atol=1e-5 * max(1.0, np.abs(want).max()))


def test_k_equals_one_is_the_closed_form():
    for a, b in [(-3.0, 2.0), (1.5, 4.0), (-1e-3, 10.0)]:
        got = solve(jnp.array([[a]]), jnp.array([[b]]))
        assert float(got.X[0, 0]) == pytest.approx(max(0.0, -a / b), rel=1e-9, abs=1e-15)


def test_a_stable_slack_needs_no_oscillation():
    alpha = jnp.diag(jnp.array([0.5, 1.0, 2.0]))
    beta = jnp.eye(6)
    got = solve(alpha, beta)
    np.testing.assert_allclose(np.asarray(got.X), 0.0, atol=1e-14)


def test_a_maps_jacobian_in_svec_coordinates_is_its_matrix_and_the_solver_is_jit_safe():
    """The central flow builds beta as the Jacobian of svec(A(t + dt)) in x = svec(X)."""
    k = 3
    rng = np.random.default_rng(0)
    c = rng.uniform(0.5, 2.0, (k, k))
    c = jnp.asarray(c + c.T)
    apply = lambda X: c * X  # noqa: E731  (a PSD map: <X, c * X> = sum c_ij X_ij^2 >= 0)
    B = jax.jacfwd(lambda x: svec(apply(smat(x, k))))(jnp.zeros(k * (k + 1) // 2))
    X = jnp.asarray(np.cov(rng.standard_normal((k, 10))))
    np.testing.assert_allclose(smat(B @ svec(X), k), apply(X), atol=1e-12)
    np.testing.assert_allclose(float(svec(X) @ svec(X)), float(jnp.sum(X * X)), rtol=1e-12)
    alpha = -jnp.eye(k)
    got = jax.jit(lambda a, b: solve(a, b).X)(alpha, B)
    Y = alpha + apply(got)
    assert float(jnp.abs(jnp.sum(got * Y))) < 1e-8


def test_an_instance_without_a_solution_is_not_converged():
    """alpha < 0 along a direction beta cannot move: no X restores the slack there, and the solver says so."""
    alpha = jnp.diag(jnp.array([-1.0, -1.0]))
    beta = jnp.diag(jnp.array([1.0, 0.0, 0.0]))  # acts on X_11 only
    got = solve(alpha, beta, max_iter=500)
    assert not bool(got.converged)


def test_a_map_that_cannot_move_leaves_a_nonnegative_slack_alone_and_cannot_fix_a_negative_one():
    """beta = 0 (a quadratic loss: no third derivatives): X = 0 solves it when alpha >= 0, at any scale of alpha
    (an earlier floor of beta at the smallest float overflowed for ||alpha|| > 2), and nothing does otherwise."""
    for s in (1e-3, 1.0, 30.0, 1e6):
        got = solve(s * jnp.diag(jnp.array([23.0, 33.0])), jnp.zeros((3, 3)))
        assert bool(got.converged) and np.all(np.asarray(got.X) == 0.0)
    got = solve(jnp.diag(jnp.array([1.0, -1.0])), jnp.zeros((3, 3)), max_iter=200)
    assert not bool(got.converged) and np.all(np.isfinite(np.asarray(got.X)))
