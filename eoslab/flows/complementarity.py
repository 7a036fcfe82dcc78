"""The small semidefinite complementarity problem that fixes the central flow's covariance.

At every instant the central flow (Cohen, Damian et al. 2024) needs the
k x k matrix X of the covariance Sigma = U X U^T of the oscillation along the
top eigenvectors U of P^{-1} H.  Over the next time step the stability slack
Y(X) = alpha + beta[X] (the k x k matrix U^T (2P - H) U after one step of the
flow, an affine function of X) must stay positive semidefinite, X must be,
and X may be non-zero only where the slack is used up:

    X >= 0,    Y = alpha + beta[X] >= 0,    <X, Y> = 0.

When the linear map beta is symmetric and positive semidefinite (it is for
the central flow: -dH/dt[X] = 1/2 D P^{-1} D^T[X]), these are exactly the
optimality conditions of the convex problem

    minimise  f(X) = 1/2 <X, beta[X]> + <alpha, X>   over  X >= 0,

whose gradient is Y.  :func:`solve` minimises it by accelerated projected
gradient (FISTA with adaptive restart; the projection onto the PSD cone
clips the eigenvalues at 0) in the orthonormal coordinates ``svec`` of
symmetric matrices (off-diagonal entries times sqrt 2, so <X, Y> is a dot
product), and stops when the natural residual ||X - Pi(X - Y(X)/L)|| (zero
exactly at a solution) is at most ``tol`` times the scale of alpha over L.
It runs inside ``jit`` (a bounded ``lax.while_loop``), with no callback.

``tests/flows/test_complementarity.py`` checks it against a general convex
solver (cvxpy) on random instances.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def svec(m: jax.Array) -> jax.Array:
    """The upper triangle of a symmetric k x k matrix, off-diagonals times sqrt 2 (an isometry)."""
    k = m.shape[-1]
    i, j = jnp.triu_indices(k)
    return m[..., i, j] * jnp.where(i == j, 1.0, jnp.sqrt(2.0)).astype(m.dtype)


def smat(v: jax.Array, k: int) -> jax.Array:
    """The inverse of :func:`svec`."""
    i, j = jnp.triu_indices(k)
    vals = v * jnp.where(i == j, 1.0, 1.0 / jnp.sqrt(2.0)).astype(v.dtype)
    m = jnp.zeros((k, k), v.dtype).at[i, j].set(vals)
    return m.at[j, i].set(vals)


def psd_part(m: jax.Array) -> jax.Array:
    """The projection of a symmetric matrix onto the PSD cone (its eigenvalues clipped at 0)."""
    w, v = jnp.linalg.eigh(0.5 * (m + m.T))
    return (v * jnp.maximum(w, 0.0)) @ v.T


class Solution(NamedTuple):
    X: jax.Array  # k x k, PSD
    slack: jax.Array  # Y = alpha + beta[X]
    residual: jax.Array  # ||X - Pi(X - Y/L)||, the natural residual (0 at a solution)
    iterations: jax.Array
    converged: jax.Array


def solve(alpha: jax.Array, beta: jax.Array, *, tol: float = 1e-10, max_iter: int = 20_000) -> Solution:
    """X >= 0 with alpha + beta[X] >= 0 and <X, alpha + beta[X]> = 0 (see the module docstring).

    ``alpha``: a symmetric k x k matrix; ``beta``: the linear map as a
    k(k+1)/2 x k(k+1)/2 symmetric PSD matrix acting on :func:`svec`
    coordinates.  ``tol`` is relative: the residual is compared with
    ||alpha|| / L, L the largest eigenvalue of beta.
    """
    k = alpha.shape[0]
    a = svec(0.5 * (alpha + alpha.T))
    B = 0.5 * (beta + beta.T)
    fin = jnp.finfo(alpha.dtype)
    # beta's eigenvalues below eps ||alpha|| are rounding (a solution there would exceed 1/eps): floor them there,
    # so that beta = 0 (no third derivatives, a quadratic) gives X = 0 when alpha >= 0, and no overflow
    lip = jnp.maximum(jnp.linalg.eigvalsh(B)[-1], jnp.maximum(fin.eps * jnp.linalg.norm(a), fin.tiny))
    scale = jnp.maximum(jnp.linalg.norm(a), fin.tiny) / lip
    proj = lambda x: svec(psd_part(smat(x, k)))  # noqa: E731
    grad = lambda x: B @ x + a  # noqa: E731

    def residual(x):
        return jnp.linalg.norm(x - proj(x - grad(x) / lip))

    def cond(c):
        x, _, _, it, res = c
        return (it < max_iter) & (res > tol * scale)

    def body(c):
        x, y, t, it, _ = c
        x_new = proj(y - grad(y) / lip)
        t_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
        # adaptive restart (O'Donoghue & Candes 2015): drop the momentum when it points uphill
        restart = jnp.dot(grad(y), x_new - x) > 0
        y_new = jnp.where(restart, x_new, x_new + ((t - 1.0) / t_new) * (x_new - x))
        t_new = jnp.where(restart, 1.0, t_new)
        return x_new, y_new, t_new, it + 1, residual(x_new)

    x0 = proj(-a / lip)
    init = (x0, x0, jnp.asarray(1.0, alpha.dtype), jnp.asarray(0), residual(x0))
    x, _, _, it, res = jax.lax.while_loop(cond, body, init)
    X = smat(x, k)
    return Solution(X, smat(grad(x), k), res, it, res <= tol * scale)

