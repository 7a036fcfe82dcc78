"""Extreme eigenpairs of the Hessian (or preconditioned Hessian) of a loss.

``top_eigenpairs`` returns the k largest *algebraic* eigenvalues of H (never
the largest in magnitude) or, with ``which="smallest"``, the k most negative
ones, by block Lanczos with full reorthogonalisation on Hessian-vector
products (:mod:`eoslab.curvature.block_lanczos`, which states exactly what is
guaranteed: the residuals are rigorous, the error estimates are
residual^2 / Ritz gap where the gap is resolved, and that the values are the
*top* k is probabilistic, through the random start).  ``tol`` is the
eigenvalue accuracy asked for: the solve stops when every error estimate is
<= tol * max|lambda|, and ``converged`` says whether it got there.  With a diagonal preconditioner P (a
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

from eoslab.curvature.block_lanczos import block_lanczos, ritz, ritz_converged, ritz_vectors
from eoslab.curvature.operators import (FlatOperator, check_finite, check_inputs,
                                        check_same_structure, flat_operator)
from eoslab.errors import InputError

PyTree = Any

DEFAULT_TOL = 1e-4


class EigenResult(NamedTuple):
    """Eigenpairs of H (or P^{-1/2} H P^{-1/2}) with their cost and accuracy.

    eigenvalues: (k,), descending for ``largest``, ascending for ``smallest``.
    eigenvectors: pytree shaped like params with a leading axis of size k, unit norm.
    residuals: (k,), ||A y_i - lambda_i y_i||: rigorously, some eigenvalue lies within it.
    num_hvps: number of Hessian-vector products spent (one more gradient for the linearisation).
    converged: whether every error estimate reached ``tol`` times the largest |eigenvalue|.
    errors: (k,), the eigenvalue error estimate min(r, r^2 / gap) (gap: to the nearest other Ritz value).
    """
    eigenvalues: jax.Array
    eigenvectors: PyTree
    residuals: jax.Array
    num_hvps: jax.Array
    converged: jax.Array
    errors: jax.Array


class FlatSolve(NamedTuple):
    """A solve on flat vectors: the k requested pairs first, then any extra Ritz pairs."""
    values: jax.Array  # (p,) in the requested order (descending for largest, ascending for smallest)
    vectors: jax.Array  # (p, n) unit Ritz vectors
    residuals: jax.Array  # (p,)
    errors: jax.Array  # (p,)
    num_hvps: jax.Array
    converged: jax.Array  # the first k pairs met tol

    def result(self, op: FlatOperator, k: int) -> EigenResult:
        return EigenResult(self.values[:k], jax.vmap(op.unravel)(self.vectors[:k]), self.residuals[:k],
                           self.num_hvps, self.converged, self.errors[:k])


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
        raise InputError(f"tol={tol!r} must be >= 0 (a relative eigenvalue accuracy, e.g. 1e-4).")
    if max_hvps < k:
        raise InputError(f"max_hvps={max_hvps} is below k={k}; allow at least k Hessian-vector products.")


def solve_flat(op: FlatOperator, start_block: jax.Array, k: int, *, which: str, tol: float,
               max_hvps: int, key: jax.Array, extra: int = 0, limit: jax.Array | None = None) -> FlatSolve:
    """Block Lanczos from the rows of ``start_block`` on a flat operator: the k extreme pairs
    (and ``extra`` further Ritz pairs, e.g. a tracker's guard), with residuals and error estimates.
    ``limit`` (traced) spends fewer than ``max_hvps`` products in the same buffer."""
    sign = 1.0 if which == "largest" else -1.0
    matvec = op.matvec if sign > 0 else (lambda v: -op.matvec(v))
    steps = min(max_hvps, op.dim)
    kr = block_lanczos(matvec, start_block.astype(op.dtype), steps, k=k, tol=tol, key=key, limit=limit)
    r = ritz(kr, min(k + extra, steps), start_block.shape[0])
    vecs = ritz_vectors(kr, r)
    norms = jnp.linalg.norm(vecs, axis=1, keepdims=True)
    vecs = vecs / jnp.where(norms > 0, norms, 1.0)
    return FlatSolve(sign * r.values, vecs, r.residuals, r.errors, kr.num_steps, ritz_converged(r, k, tol))


# A warm start vector v becomes v/|v| + WARM_NOISE z/|z| (z Gaussian): every direction then has weight, so an
# eigenvector orthogonal to v cannot stay invisible, while a good v still converges in a few products.
WARM_NOISE = 1.0


def with_noise(v: jax.Array, key, size: float | None = None) -> jax.Array:
    """Unit ``v`` plus a random component of relative size ``size`` (default :data:`WARM_NOISE`)."""
    z = jax.random.normal(key, v.shape, v.dtype)
    unit = lambda a: a / jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), jnp.finfo(a.dtype).tiny)
    return unit(v) + (WARM_NOISE if size is None else size) * unit(z)


def start_block(op: FlatOperator, v0: PyTree | None, k: int, key) -> jax.Array:
    """The (k, n) start block: ``v0`` (with a random component) and k - 1 Gaussian vectors, or k Gaussian
    vectors.  A block of k finds eigenvalues of multiplicity up to k."""
    key, sub = jax.random.split(key)
    block = jax.random.normal(key, (k, op.dim), op.dtype)
    if v0 is not None:
        block = block.at[0].set(with_noise(ravel_pytree(v0)[0].astype(op.dtype), sub))
    return block


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
      tol: eigenvalue accuracy: stop once every pair's error estimate is <= tol * max|lambda|.
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
    key, sub = jax.random.split(key)
    solve = solve_flat(op, start_block(op, v0, k, sub), k, which=which, tol=tol, max_hvps=max_hvps, key=key)
    return solve.result(op, k)


def sharpness(loss_fn: Callable, params: PyTree, **kwargs) -> jax.Array:
    """The top (largest algebraic) Hessian eigenvalue; ``kwargs`` go to :func:`top_eigenpairs`."""
    return top_eigenpairs(loss_fn, params, 1, **kwargs).eigenvalues[0]


def right_eigenvectors(eigenvectors: PyTree, precond: PyTree) -> PyTree:
    """x = P^{-1/2} y: eigenvectors of P^{-1} H from those of P^{-1/2} H P^{-1/2}."""
    return jax.tree_util.tree_map(lambda y, p: y * jax.lax.rsqrt(p), eigenvectors, precond)
