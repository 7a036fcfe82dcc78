"""Lanczos tridiagonalisation with full reorthogonalisation, and Ritz pairs.

Small composable pieces of numerical linear algebra on flat vectors:

* :func:`tridiag_sym` runs the Lanczos process A Q_m = Q_m T_m + b_m q_{m+1} e_m^T
  for a symmetric ``matvec``, reorthogonalising every new vector against the
  whole basis twice (classical Gram-Schmidt twice is enough, Giraud et al.
  2005), so the basis stays orthonormal to working precision and no spurious
  copies of converged eigenvalues appear.  It can stop early once the ``k``
  largest Ritz values have converged: the residual of a Ritz pair
  (theta_i, y_i = Q_m s_i) is exactly ||A y_i - theta_i y_i|| = |b_m s_{m,i}|
  (Parlett, *The Symmetric Eigenvalue Problem*, 13.1), and the eigenvalue error
  is at most that residual (and about residual^2 / gap once it is small).
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


def tridiag_sym(
    matvec: Callable[[jax.Array], jax.Array],
    v0: jax.Array,
    max_steps: int,
    *,
    k: int = 1,
    tol: float = 0.0,
) -> Tridiag:
    """Lanczos with full reorthogonalisation, from start vector ``v0``.

    Runs at most ``max_steps`` matvecs.  With ``tol > 0`` it stops as soon as
    the ``k`` largest Ritz pairs all have residual <= tol * max|theta| (a
    relative residual: the eigenvalue error is at most that much relative to
    the spectral radius).  The test runs at every step up to 32 steps and
    then about every m/16 steps.  It also stops when the Krylov space becomes
    invariant (breakdown), in which case the Ritz values are exact, and after
    a non-finite product (NaN or inf: the Ritz values are then NaN).
    """
    n = v0.shape[0]
    dtype = v0.dtype
    eps = jnp.finfo(dtype).eps
    q0 = v0 / jnp.linalg.norm(v0)
    basis = jnp.zeros((max_steps + 1, n), dtype).at[0].set(q0)
    zeros = jnp.zeros((max_steps,), dtype)
    init = Tridiag(basis, zeros, zeros, jnp.asarray(0, jnp.int32), jnp.asarray(False))

    def converged(coeffs):  # only the small tridiagonal enters the branch, never the basis
        alpha, beta, m, breakdown = coeffs
        pairs = ritz_pairs(Tridiag(None, alpha, beta, m, breakdown), k)
        scale = jnp.max(jnp.abs(pairs.values))
        return (m >= k) & jnp.all(pairs.residuals <= tol * scale)

    def cond(carry):
        tri, done = carry
        return (tri.num_steps < max_steps) & ~done

    def body(carry):
        tri, _ = carry
        j = tri.num_steps
        q = tri.basis[j]
        w = matvec(q)
        a = jnp.vdot(q, w)
        hq_norm = jnp.linalg.norm(w)
        mask = (jnp.arange(max_steps + 1) <= j).astype(dtype)
        for _ in range(2):  # Gram-Schmidt twice against the whole basis
            w = w - tri.basis.T @ (mask * (tri.basis @ w))
        b = jnp.linalg.norm(w)
        breakdown = b <= 100 * eps * hq_norm
        q_next = jnp.where(breakdown, jnp.zeros_like(w), w / jnp.where(breakdown, 1.0, b))
        new = Tridiag(
            tri.basis.at[j + 1].set(q_next),
            tri.alpha.at[j].set(a),
            tri.beta.at[j].set(jnp.where(breakdown, 0.0, b)),
            j + 1,
            breakdown,
        )
        # a non-finite product (NaN or inf parameters: a diverged run) ends the iteration: nothing more is learned,
        # and under vmap one such member would otherwise keep the whole batch iterating to max_steps
        done = breakdown | ~jnp.isfinite(a) | ~jnp.isfinite(b)
        if tol > 0:
            m = j + 1
            # test every step up to 32, then about every m/16 steps (<= 6% extra matvecs),
            # so long runs do not pay a dense eigh of the buffer at every step
            check = (m >= k) & ((m <= 32) | (m % jnp.maximum(1, m // 16) == 0))
            coeffs = (new.alpha, new.beta, new.num_steps, new.breakdown)
            done = done | jax.lax.cond(check, converged, lambda _: jnp.asarray(False), coeffs)
        return new, done

    tri, _ = jax.lax.while_loop(cond, body, (init, jnp.asarray(False)))
    return tri
