"""Lanczos tridiagonalisation with full reorthogonalisation, and Ritz pairs.

Small composable pieces of numerical linear algebra on flat vectors:

* :func:`tridiag_sym` runs the Lanczos process A Q_m = Q_m T_m + b_m q_{m+1} e_m^T
  for a symmetric ``matvec`` (the single-vector case of
  :mod:`eoslab.curvature.block_lanczos`, which reorthogonalises every new
  vector against the whole basis twice), for Gauss quadrature (spectral
  densities).  The residual of a Ritz pair (theta_i, y_i = Q_m s_i) is exactly
  ||A y_i - theta_i y_i|| = |b_m s_{m,i}| (Parlett, *The Symmetric Eigenvalue
  Problem*, 13.1).  The eigensolvers use the block process directly.
* :func:`ritz_pairs` takes the ``k`` largest eigenpairs of T_m.

Everything has fixed shapes (buffers of ``max_steps`` vectors), uses a bounded
``lax.while_loop`` and is therefore ``jit``- and ``vmap``-compatible.  The
unused part of the buffer is padded with a diagonal below the Gershgorin lower
bound of the active block, so the padded matrix has the same top eigenpairs as
T_m and no spurious scale enters the dense eigensolver.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from eoslab.curvature.block_lanczos import block_lanczos


class Tridiag(NamedTuple):
    """The state of a Lanczos run with buffers of ``max_steps`` steps."""
    basis: jax.Array  # (max_steps + 1, n): rows q_1..q_{m+1}; rows past m+1 are zero
    alpha: jax.Array  # (max_steps,): diagonal of T; entries past m are zero
    beta: jax.Array  # (max_steps,): beta[i] = T[i+1, i]; beta[m-1] = b_m, the residual norm
    num_steps: jax.Array  # m, the number of matvecs spent
    breakdown: jax.Array  # True if the Krylov space became invariant (then b_m = 0 exactly)


def _padded_tridiagonal(alpha, beta, m):
    """T_m embedded in a max_steps x max_steps matrix whose padding sits below its spectrum."""
    size = alpha.shape[0]
    idx = jnp.arange(size)
    active = idx < m
    off = jnp.where(idx < m - 1, beta, 0.0)  # couplings inside the active block only
    off_prev = jnp.concatenate([jnp.zeros((1,), off.dtype), off[:-1]])
    lower = jnp.min(jnp.where(active, alpha - jnp.abs(off) - jnp.abs(off_prev), jnp.inf))
    width = jnp.max(jnp.where(active, jnp.abs(alpha) + jnp.abs(off) + jnp.abs(off_prev), 0.0))
    pad = lower - 1.0 - width  # strictly below every eigenvalue of the active block
    diag = jnp.where(active, alpha, pad)
    return jnp.diag(diag) + jnp.diag(off[:-1], 1) + jnp.diag(off[:-1], -1)


class RitzPairs(NamedTuple):
    values: jax.Array  # (k,), descending
    coeffs: jax.Array  # (max_steps, k): eigenvectors s_i of T_m (zero past row m)
    residuals: jax.Array  # (k,): |b_m s_{m,i}| = ||A y_i - theta_i y_i||


def ritz_pairs(tri: Tridiag, k: int) -> RitzPairs:
    """The ``k`` largest Ritz values of a Lanczos run, their coefficients and residuals."""
    m = tri.num_steps
    t = _padded_tridiagonal(tri.alpha, tri.beta, m)
    evals, evecs = jnp.linalg.eigh(t)
    values = evals[::-1][:k]
    coeffs = evecs[:, ::-1][:, :k]
    last = jnp.take(coeffs, jnp.maximum(m - 1, 0), axis=0)
    b_m = jnp.where(tri.breakdown, 0.0, jnp.take(tri.beta, jnp.maximum(m - 1, 0)))
    return RitzPairs(values, coeffs, jnp.abs(b_m * last))


def ritz_vectors(tri: Tridiag, pairs: RitzPairs) -> jax.Array:
    """Ritz vectors y_i = Q_m s_i as rows of a (k, n) array."""
    q = tri.basis[:-1]  # (max_steps, n); rows past m are zero and so are the coeffs there
    return pairs.coeffs.T @ q


def tridiag_sym(matvec: Callable[[jax.Array], jax.Array], v0: jax.Array, max_steps: int) -> Tridiag:
    """Lanczos with full reorthogonalisation from ``v0``: the tridiagonal T_m of at most ``max_steps`` steps.

    The single-vector case of :func:`~eoslab.curvature.block_lanczos.block_lanczos`
    without restarts: it stops early when the Krylov space becomes invariant
    (breakdown; T_m is then exact on that space) or after a non-finite product.
    """
    kr = block_lanczos(matvec, v0[None], max_steps, restart=False)
    m = kr.num_steps
    idx = jnp.arange(max_steps)
    alpha = jnp.where(idx < m, kr.coeffs[idx, idx], 0.0)
    beta = jnp.where(idx < m, kr.coeffs[idx + 1, idx], 0.0)
    breakdown = ~kr.valid[m] & kr.finite
    return Tridiag(kr.basis, alpha, beta, m, breakdown)
