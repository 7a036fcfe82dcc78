"""Extreme eigenpairs of the Hessian (or preconditioned Hessian) of a loss.

``top_eigenpairs`` returns the k largest *algebraic* eigenvalues of H (never
the largest in magnitude) or, with ``which="smallest"``, the k most negative
ones, by Lanczos with full reorthogonalisation on Hessian-vector products
(:mod:`eoslab.curvature.lanczos`).  With a diagonal preconditioner P (a
positive pytree shaped like params) it returns eigenpairs of the symmetric
operator P^{-1/2} H P^{-1/2}, whose eigenvalues are those of P^{-1} H: the
*effective sharpness* of an update theta <- theta - P^{-1} m (Cohen et al.
2022).  An eigenvector y of the symmetric form gives the right eigenvector
x = P^{-1/2} y of P^{-1} H; :func:`right_eigenvectors` converts.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from eoslab.curvature.lanczos import ritz_pairs, ritz_vectors, tridiag_sym
from eoslab.curvature.operators import (FlatOperator, check_finite, check_inputs,
                                        check_same_structure, flat_operator)
from eoslab.errors import InputError

PyTree = Any

DEFAULT_TOL = 1e-4


class EigenResult(NamedTuple):
    """Eigenpairs of H (or P^{-1/2} H P^{-1/2}) with their cost and accuracy.

    eigenvalues: (k,), descending for ``largest``, ascending for ``smallest``.
    eigenvectors: pytree shaped like params with a leading axis of size k, unit norm.
    residuals: (k,), ||A y_i - lambda_i y_i||, an upper bound on each eigenvalue's error.
    num_hvps: number of Hessian-vector products spent (one more gradient for the linearisation).
    converged: whether every residual reached ``tol`` times the largest |eigenvalue|.
    """
    eigenvalues: jax.Array
    eigenvectors: PyTree
    residuals: jax.Array
    num_hvps: jax.Array
    converged: jax.Array


def default_max_hvps(dim: int, k: int) -> int:
    return int(min(dim, max(100, 20 * k)))


def validate_request(dim: int, k: int, which: str, tol: float, max_hvps: int) -> None:
    if which not in ("largest", "smallest"):
        raise InputError(f"which={which!r} is not supported; use 'largest' or 'smallest'.")
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k={k!r} must be a positive integer.")
    if k > dim:
        raise InputError(f"k={k} eigenpairs were asked of a {dim}-dimensional Hessian; ask for k <= {dim}.")
    if not tol >= 0:
        raise InputError(f"tol={tol!r} must be >= 0 (a relative residual, e.g. 1e-4).")
    if max_hvps < k:
        raise InputError(f"max_hvps={max_hvps} is below k={k}; allow at least k Hessian-vector products.")


def solve_flat(op: FlatOperator, v0: jax.Array, k: int, *, which: str, tol: float,
               max_hvps: int) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """Lanczos on a flat operator: (eigenvalues, flat eigenvectors (k, n), residuals, hvps, converged)."""
    sign = 1.0 if which == "largest" else -1.0
    matvec = op.matvec if sign > 0 else (lambda v: -op.matvec(v))
    tri = tridiag_sym(matvec, v0, min(max_hvps, op.dim), k=k, tol=tol)
    pairs = ritz_pairs(tri, k)
    vecs = ritz_vectors(tri, pairs)
    vecs = vecs / jnp.linalg.norm(vecs, axis=1, keepdims=True)
    scale = jnp.max(jnp.abs(pairs.values))
    converged = jnp.all(pairs.residuals <= tol * scale) | tri.breakdown
    return sign * pairs.values, vecs, pairs.residuals, tri.num_steps, converged


def start_vector(op: FlatOperator, v0: PyTree | None, key) -> jax.Array:
    """The flat start vector: ``v0`` if given, else a Gaussian random vector from ``key``."""
    if v0 is not None:
        return ravel_pytree(v0)[0].astype(op.dtype)
    return jax.random.normal(key, (op.dim,), op.dtype)


def top_eigenpairs(
    loss_fn: Callable[[PyTree], jax.Array],
    params: PyTree,
    k: int = 1,
    *,
    v0: PyTree | None = None,
    precond: PyTree | None = None,
    which: str = "largest",
    tol: float = DEFAULT_TOL,
    max_hvps: int | None = None,
    key: jax.Array | None = None,
) -> EigenResult:
    """The k largest (or most negative) eigenpairs of the Hessian of ``loss_fn`` at ``params``.

    Args:
      loss_fn: scalar loss of a params pytree.
      params: the point at which the Hessian is taken.
      k: number of eigenpairs.
      v0: optional start vector (pytree like params), e.g. a previous eigenvector.
      precond: optional positive diagonal preconditioner P (pytree like params):
        eigenpairs of P^{-1/2} H P^{-1/2}, i.e. the eigenvalues of P^{-1} H.
      which: ``"largest"`` (algebraic) or ``"smallest"`` (most negative first).
      tol: stop once every pair has ||A y - lambda y|| <= tol * max|lambda|.
      max_hvps: budget of Hessian-vector products (default min(dim, max(100, 20 k))).
      key: PRNG key for the random start vector (default PRNGKey(0)).

    Returns an :class:`EigenResult`.  Works under ``jit`` and ``vmap``; raises
    :class:`~eoslab.errors.InputError` for mismatched pytrees, non-scalar
    losses, k larger than the dimension, and NaN/inf in concrete params.
    """
    check_inputs(loss_fn, params, precond)
    dim = ravel_pytree(params)[0].shape[0]
    max_hvps = default_max_hvps(dim, k) if max_hvps is None else int(max_hvps)
    validate_request(dim, k, which, tol, max_hvps)
    if v0 is not None:
        check_same_structure(params, v0, "v0")
        check_finite(v0, "v0")
    key = jax.random.PRNGKey(0) if key is None else key
    return _top_eigenpairs(loss_fn, params, v0, precond, key, k, which, float(tol), max_hvps)


@functools.partial(jax.jit, static_argnums=(0, 5, 6, 7, 8))
def _top_eigenpairs(loss_fn, params, v0, precond, key, k, which, tol, max_hvps) -> EigenResult:
    op = flat_operator(loss_fn, params, precond)
    start = start_vector(op, v0, key)
    values, vecs, res, hvps, conv = solve_flat(op, start, k, which=which, tol=tol, max_hvps=max_hvps)
    return EigenResult(values, jax.vmap(op.unravel)(vecs), res, hvps, conv)


def sharpness(loss_fn: Callable, params: PyTree, **kwargs) -> jax.Array:
    """The top (largest algebraic) Hessian eigenvalue; ``kwargs`` go to :func:`top_eigenpairs`."""
    return top_eigenpairs(loss_fn, params, 1, **kwargs).eigenvalues[0]


def right_eigenvectors(eigenvectors: PyTree, precond: PyTree) -> PyTree:
    """x = P^{-1/2} y: eigenvectors of P^{-1} H from those of P^{-1/2} H P^{-1/2}."""
    return jax.tree_util.tree_map(lambda y, p: y * jax.lax.rsqrt(p), eigenvectors, precond)
