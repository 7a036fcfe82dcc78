"""Lanczos tridiagonalisation against dense linear algebra."""
import jax
import jax.numpy as jnp
import numpy as np

from eoslab.curvature import ritz_pairs, ritz_vectors, tridiag_sym
from eoslab.curvature.block_lanczos import block_lanczos, ritz, ritz_converged


def _sym(n, seed=0):
    a = jax.random.normal(jax.random.PRNGKey(seed), (n, n), jnp.float64)
    return (a + a.T) / 2


def test_basis_orthonormal_and_projection_is_tridiagonal():
    a = _sym(80)
    tri = tridiag_sym(lambda v: a @ v, jnp.ones(80, jnp.float64), 30)
    q = tri.basis[:30]
    np.testing.assert_allclose(q @ q.T, np.eye(30), atol=1e-12)
    t = q @ a @ q.T
    expected = np.diag(tri.alpha) + np.diag(tri.beta[:-1], 1) + np.diag(tri.beta[:-1], -1)
    np.testing.assert_allclose(t, expected, atol=1e-10)
    assert int(tri.num_steps) == 30


def test_ritz_residual_is_exact_residual():
    a = _sym(60, 1)
    tri = tridiag_sym(lambda v: a @ v, jnp.ones(60, jnp.float64), 12)
    pairs = ritz_pairs(tri, 3)
    y = ritz_vectors(tri, pairs)
    true = jnp.linalg.norm(y @ a - pairs.values[:, None] * y, axis=1)
    np.testing.assert_allclose(pairs.residuals, true, rtol=1e-8)
    # Ritz values interlace: below the true top eigenvalues (Cauchy)
    evals = np.linalg.eigvalsh(np.asarray(a))[::-1]
    assert np.all(np.asarray(pairs.values) <= evals[:3] + 1e-10)


def test_breakdown_on_low_rank_start():
    # v0 in a 3-dimensional invariant subspace: exact after 3 steps
    d = jnp.array([5.0, 2.0, -1.0] + [0.5] * 17, jnp.float64)
    a = jnp.diag(d)
    v0 = jnp.zeros(20, jnp.float64).at[:3].set(1.0)
    tri = tridiag_sym(lambda v: a @ v, v0, 10)
    assert bool(tri.breakdown) and int(tri.num_steps) == 3
    np.testing.assert_allclose(ritz_pairs(tri, 3).values, [5.0, 2.0, -1.0], rtol=1e-13)
    assert float(jnp.max(ritz_pairs(tri, 3).residuals)) == 0.0


def test_early_stop_meets_tolerance():
    d = jnp.concatenate([jnp.array([10.0, 7.0]), jnp.linspace(-1, 1, 200)])
    a = jnp.diag(d)
    kr = block_lanczos(lambda v: a @ v, jnp.ones((1, 202), jnp.float64), 150, k=1, tol=1e-8)
    r = ritz(kr, 1, 1)
    assert int(kr.num_steps) < 150 and bool(ritz_converged(r, 1, 1e-8))
    assert abs(float(r.values[0]) - 10.0) <= 1e-8 * 10.0 * (1 + 1e-9)  # the estimate met tol, and so did the error
    assert abs(float(r.values[0]) - 10.0) <= float(r.residuals[0])


def test_tridiag_view_equals_the_block_process_with_one_vector():
    a = _sym(50, 2)
    v0 = jnp.ones(50, jnp.float64)
    tri = tridiag_sym(lambda v: a @ v, v0, 20)
    kr = block_lanczos(lambda v: a @ v, v0[None], 20, restart=False)
    np.testing.assert_allclose(ritz_pairs(tri, 3).values, ritz(kr, 3, 1).values, rtol=1e-12)
    np.testing.assert_allclose(ritz_pairs(tri, 3).residuals, ritz(kr, 3, 1).residuals, rtol=1e-8)


def test_a_non_finite_operator_stops_at_once_even_under_vmap():
    a = _sym(40)
    poisoned = jnp.asarray([0.0, jnp.nan])

    def run(p):  # p[1] = NaN poisons the operator, as NaN parameters of a diverged run do
        kr = block_lanczos(lambda v: a @ v + p[1] * v, jnp.ones((1, 40), jnp.float64), 30, k=1, tol=1e-10)
        return kr.num_steps
    steps = jax.vmap(run)(jnp.stack([jnp.zeros(2), poisoned]))
    assert int(steps[1]) == 1  # the NaN member stopped after its first product
    assert 1 < int(steps[0]) <= 30  # the healthy member ran its own course
    np.testing.assert_array_equal(int(run(jnp.zeros(2))), int(steps[0]))
