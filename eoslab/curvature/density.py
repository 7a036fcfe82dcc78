"""Spectral density of the Hessian by stochastic Lanczos quadrature (SLQ).

For a unit vector v, m Lanczos steps give T_m = S diag(theta) S^T, and the
nodes theta_j with weights tau_j = S_{1j}^2 form the m-point Gauss quadrature
of the spectral measure mu_v = sum_i (v . u_i)^2 delta(lambda_i): it integrates
polynomials of degree <= 2m - 1 exactly, v^T p(H) v = sum_j tau_j p(theta_j).
Averaging over random v (Rademacher, normalised) estimates the spectral
density phi(t) = (1/n) sum_i delta(t - lambda_i), which is then smoothed with a
Gaussian kernel of width ``sigma`` (Lin, Saad, Yang 2016; Ghorbani, Krishnan,
Xiao 2019; Yao et al. 2020, PyHessian).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from eoslab.curvature.lanczos import _padded_tridiagonal, tridiag_sym
from eoslab.curvature.operators import check_inputs, flat_operator
from eoslab.errors import InputError

PyTree = Any


class SpectralDensity(NamedTuple):
    nodes: jax.Array  # (num_vectors, num_steps) Gauss nodes (Ritz values)
    weights: jax.Array  # (num_vectors, num_steps), each row sums to 1
    num_hvps: int

    def integrate(self, f: Callable[[jax.Array], jax.Array]) -> jax.Array:
        """Estimate of (1/n) tr f(H) = integral of f against the density."""
        return jnp.mean(jnp.sum(self.weights * f(self.nodes), axis=1))

    def on_grid(self, grid: jax.Array, sigma: float) -> jax.Array:
        """Gaussian-smoothed density at the points ``grid`` (integrates to 1)."""
        grid = jnp.asarray(grid)
        diff = grid[:, None, None] - self.nodes[None]
        kern = jnp.exp(-0.5 * (diff / sigma) ** 2) / (sigma * jnp.sqrt(2 * jnp.pi))
        return jnp.mean(jnp.sum(self.weights[None] * kern, axis=2), axis=1)


def gauss_quadrature(alpha: jax.Array, beta: jax.Array, num_steps: jax.Array):
    """Nodes and weights of the Gauss rule of a Lanczos tridiagonal (padding gets weight 0)."""
    t = _padded_tridiagonal(alpha, beta, num_steps)
    nodes, vecs = jnp.linalg.eigh(t)
    weights = vecs[0] ** 2  # the padded block is decoupled from e_1, so its weights are 0
    return nodes, weights / jnp.sum(weights)


def spectral_density(loss_fn: Callable, params: PyTree, *, num_steps: int = 80,
                     num_vectors: int = 10, key: jax.Array | None = None,
                     precond: PyTree | None = None) -> SpectralDensity:
    """SLQ spectral density of H (or P^{-1/2} H P^{-1/2}): ``num_vectors`` Lanczos runs of ``num_steps``."""
    if num_steps < 1 or num_vectors < 1:
        raise InputError(f"num_steps={num_steps} and num_vectors={num_vectors} must both be >= 1.")
    check_inputs(loss_fn, params, precond)
    steps = min(num_steps, ravel_pytree(params)[0].shape[0])
    key = jax.random.PRNGKey(0) if key is None else key
    nodes, weights = _slq(loss_fn, params, precond, key, steps, num_vectors)
    return SpectralDensity(nodes, weights, steps * num_vectors)


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _slq(loss_fn, params, precond, key, steps, num_vectors):
    op = flat_operator(loss_fn, params, precond)
    starts = jax.random.rademacher(key, (num_vectors, op.dim), dtype=op.dtype)

    def one(v0):
        tri = tridiag_sym(op.matvec, v0, steps)
        return gauss_quadrature(tri.alpha, tri.beta, tri.num_steps)

    return jax.lax.map(one, starts)


def plot_spectral_density(density: SpectralDensity, *, sigma: float | None = None,
                          num_points: int = 1000, ax=None, log: bool = True, label: str | None = None,
                          floor: float = 1e-6):
    """Draw the Gaussian-smoothed SLQ density against the eigenvalue; returns the matplotlib axes.

    The curve spans the Gauss nodes (the Ritz values) with 5% margins, with
    ``sigma`` (default: 1/200 of that span) in the title.  On the log y axis
    (``log``) the range runs from ``floor`` times the peak (below it the curve
    is the tails of the Gaussian kernels, not the spectrum) to above the peak;
    on a linear axis from 0.  Without ``ax``, a new figure of its own
    (constrained layout, so the labels are not clipped).
    """
    import matplotlib.pyplot as plt

    lo, hi = float(jnp.min(density.nodes)), float(jnp.max(density.nodes))
    span = max(hi - lo, 1e-12)
    sigma = sigma if sigma is not None else span / 200
    grid = np.linspace(lo - 0.05 * span, hi + 0.05 * span, num_points)
    values = np.asarray(density.on_grid(jnp.asarray(grid), sigma))
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
    peak = float(np.max(values)) if values.size and np.max(values) > 0 else 1.0
    earlier = ax.get_ylim() if ax.lines else None  # densities drawn into this axes before: keep them in range
    if log:
        bottom, top = peak * floor, peak * 3.0
        # below the floor the line leaves the axes at the bottom instead of resting on it
        ax.plot(grid, np.maximum(values, bottom * 1e-3), label=label)
        ax.set_yscale("log")
    else:
        bottom, top = 0.0, peak * 1.05
        ax.plot(grid, values, label=label)
    if earlier is not None:
        bottom, top = min(bottom, earlier[0]), max(top, earlier[1])
    ax.set_ylim(bottom, top)
    left, right = grid[0], grid[-1]
    if earlier is not None:
        left, right = min(left, ax.get_xlim()[0]), max(right, ax.get_xlim()[1])
    ax.set_xlim(left, right)
    ax.set_xlabel("eigenvalue of the Hessian")
    ax.set_ylabel("spectral density")
    ax.set_title(f"Hessian spectral density (SLQ, σ = {sigma:.2g})", fontsize=11)
    return ax
