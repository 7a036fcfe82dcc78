"""Trace and spectral-density estimators against the dense Hessian.

Tolerances follow from the estimators' variances: Hutchinson with m
Rademacher probes has variance 2 (||H||_F^2 - sum_i H_ii^2) / m, and
Hutch++'s stochastic part is Hutchinson on a deflated matrix whose Frobenius
norm is at most ||H||_F.  We accept 5 standard deviations.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from eoslab.curvature import hutchinson_trace, hutchpp_trace, plot_spectral_density, spectral_density
from eoslab.curvature.lanczos import tridiag_sym
from eoslab.curvature.density import gauss_quadrature
from eoslab.errors import InputError
from tests.curvature.nets import dense_hessian, mlp_problem


@pytest.fixture(scope="module")
def problem():
    loss_fn, params = mlp_problem(widths=(20,), d_in=10, d_out=4, n=40, seed=6, act="relu", loss="ce")
    h = np.asarray(dense_hessian(loss_fn, params))
    return loss_fn, params, h


def _hutchinson_sd(h, m):
    return np.sqrt(2 * (np.sum(h**2) - np.sum(np.diag(h) ** 2)) / m)


@pytest.mark.parametrize("m", [10, 100, 1000])
def test_hutchinson_within_its_variance(problem, m):
    loss_fn, params, h = problem
    est = hutchinson_trace(loss_fn, params, m, key=jax.random.PRNGKey(m))
    assert abs(float(est.value) - np.trace(h)) <= 5 * _hutchinson_sd(h, m)
    assert est.num_hvps == m
    # the reported standard error estimates the true one
    assert 0.5 < float(est.stderr) / _hutchinson_sd(h, m) < 2.0


@pytest.mark.parametrize("m", [30, 99, 300])
def test_hutchpp_within_its_variance(problem, m):
    loss_fn, params, h = problem
    est = hutchpp_trace(loss_fn, params, m, key=jax.random.PRNGKey(m))
    g = m - 2 * (m // 3)
    assert abs(float(est.value) - np.trace(h)) <= 5 * _hutchinson_sd(h, g)
    assert est.num_hvps == m


def test_hutchpp_exact_when_sketch_spans_the_space():
    loss_fn, params = mlp_problem(widths=(3,), d_in=2, d_out=1, n=10)  # 13 parameters
    h = np.asarray(dense_hessian(loss_fn, params))
    est = hutchpp_trace(loss_fn, params, 45, key=jax.random.PRNGKey(0))
    np.testing.assert_allclose(est.value, np.trace(h), rtol=1e-9)


def test_gauss_quadrature_integrates_polynomials_exactly(problem):
    _, _, h = problem
    hj = jnp.asarray(h)
    v = jax.random.rademacher(jax.random.PRNGKey(1), (h.shape[0],), dtype=jnp.float64)
    m = 8
    tri = tridiag_sym(lambda x: hj @ x, v, m)
    nodes, weights = gauss_quadrature(tri.alpha, tri.beta, tri.num_steps)
    u = v / jnp.linalg.norm(v)
    scale = np.abs(np.linalg.eigvalsh(h)).max()
    for p in range(0, 2 * m):
        exact = float(u @ jnp.linalg.matrix_power(hj / scale, p) @ u)
        quad = float(jnp.sum(weights * (nodes / scale) ** p))
        assert abs(quad - exact) <= 1e-10 * max(1.0, abs(exact)), p


def test_slq_moments_converge_with_vectors(problem):
    loss_fn, params, h = problem
    n = h.shape[0]
    exact = np.trace(h @ h) / n
    # per-vector estimate u^T H^2 u with u = z/|z| = z^T H^2 z / n: Hutchinson variance / n^2
    h2 = h @ h
    sd1 = np.sqrt(2 * (np.sum(h2**2) - np.sum(np.diag(h2) ** 2))) / n
    for nv in (4, 64):
        dens = spectral_density(loss_fn, params, num_steps=20, num_vectors=nv, key=jax.random.PRNGKey(nv))
        est = float(dens.integrate(lambda t: t**2))
        assert abs(est - exact) <= 5 * sd1 / np.sqrt(nv)
        np.testing.assert_allclose(jnp.sum(dens.weights, axis=1), 1.0, rtol=1e-12)


def test_smoothed_density_matches_dense(problem, tmp_path):
    loss_fn, params, h = problem
    evals = np.linalg.eigvalsh(h)
    dens = spectral_density(loss_fn, params, num_steps=60, num_vectors=32, key=jax.random.PRNGKey(3))
    sigma = (evals[-1] - evals[0]) / 20
    grid = np.linspace(evals[0] - 3 * sigma, evals[-1] + 3 * sigma, 400)
    true = np.mean(np.exp(-0.5 * ((grid[:, None] - evals[None]) / sigma) ** 2), axis=1) / (sigma * np.sqrt(2 * np.pi))
    est = np.asarray(dens.on_grid(jnp.asarray(grid), sigma))
    dx = grid[1] - grid[0]
    assert np.sum(est) * dx == pytest.approx(1.0, abs=1e-3)
    l1 = np.sum(np.abs(est - true)) * dx
    assert l1 < 0.1, l1
    ax = plot_spectral_density(dens)
    ax.figure.savefig(tmp_path / "density.png")
    assert (tmp_path / "density.png").stat().st_size > 1000


def test_trace_and_density_bad_input(problem):
    loss_fn, params, _ = problem
    with pytest.raises(InputError, match="num_hvps=1 is too small"):
        hutchinson_trace(loss_fn, params, 1)
    with pytest.raises(InputError, match="Hutch\\+\\+"):
        hutchpp_trace(loss_fn, params, 3)
    with pytest.raises(InputError, match="num_steps"):
        spectral_density(loss_fn, params, num_steps=0)
