"""Warm-started tracking of the top Hessian eigenpairs along a training run.

Between two optimisation steps the Hessian changes little, so the previous
top eigenvectors are excellent start vectors: Lanczos started from them
reaches the same relative residual in a few Hessian-vector products instead of
the tens a cold (random) start needs.  For k > 1 the start vector is the sum
of the previous k eigenvectors, whose Krylov space contains all of them after
about k steps.

Each update stops as soon as its residual (an upper bound on the eigenvalue
error) reaches ``tol``, and reports it, so callers know how accurate it is.
When the warm start is poor the same Lanczos run simply continues, up to
``max_hvps`` products: continuing a Krylov space that contains the warm vector
is never worse than restarting from a random one, and it needs no branch, so
it stays cheap under ``vmap`` (a ``lax.cond`` there would run both branches).
An update that runs out of budget is reported as not converged, and the next
update starts from its (improved) Ritz vectors.  The budget is also the size
of the Lanczos buffer, so a small one keeps every update cheap.
Every ``refresh_every`` updates the start vector is a fresh random one (a cold
solve), which guards against a new top eigenvalue whose eigenvector is
orthogonal to the tracked ones.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from eoslab.curvature.eigen import (EigenResult, default_max_hvps, solve_flat,
                                    validate_request)
from eoslab.curvature.operators import FlatOperator, check_inputs, flat_operator

PyTree = Any


class TrackerState(NamedTuple):
    vectors: jax.Array  # (k, n) flat eigenvectors of the previous update
    eigenvalues: jax.Array  # (k,)
    updates: jax.Array  # number of updates since init
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class SharpnessTracker:
    """Track the k largest (or most negative) eigenpairs of H or P^{-1/2} H P^{-1/2}.

    Attributes:
      k: number of eigenpairs.
      which: ``"largest"`` or ``"smallest"``.
      tol: relative residual target ||A y - lambda y|| <= tol * max|lambda| (default 1e-3).  The
        residual bounds the distance of the value to *some* eigenvalue; near the top eigenvalue
        the error is about residual^2 / gap, 1e-6 to 1e-5 relative on the networks of
        benchmarks/curvature_cost.py.  If the warm start has lost the top eigenvector (a new
        eigenvalue crossing it), the value can be a lower eigenvalue with a small residual:
        ``refresh_every`` bounds how long that can last.
      max_hvps: budget of one warm update (and its buffer size).
      cold_max_hvps: budget of the cold solve in :meth:`init` (default min(dim, max(100, 20 k))).
      refresh_every: start an update from a random vector every this many updates (0: never).
    """
    k: int = 1
    which: str = "largest"
    tol: float = 1e-3
    max_hvps: int = 20
    cold_max_hvps: int | None = None
    refresh_every: int = 0

    def _budget(self, dim: int, cold: bool = False) -> int:
        budget = (self.cold_max_hvps or default_max_hvps(dim, self.k)) if cold else self.max_hvps
        return min(budget, dim)

    def init(self, loss_fn: Callable, params: PyTree, *, precond: PyTree | None = None,
             key: jax.Array | None = None) -> tuple[EigenResult, TrackerState]:
        """A cold solve at ``params``; returns its result and the tracker state."""
        check_inputs(loss_fn, params, precond)
        dim = ravel_pytree(params)[0].shape[0]
        validate_request(dim, self.k, self.which, self.tol, self._budget(dim, cold=True))
        key = jax.random.PRNGKey(0) if key is None else key
        return self._init(loss_fn, params, precond, key)

    def update(self, loss_fn: Callable, params: PyTree, state: TrackerState, *,
               precond: PyTree | None = None) -> tuple[EigenResult, TrackerState]:
        """Re-solve at new ``params`` starting from the previous eigenvectors."""
        check_inputs(loss_fn, params, precond)
        dim = ravel_pytree(params)[0].shape[0]
        validate_request(dim, self.k, self.which, self.tol, self._budget(dim))
        result, state, _, _ = self._update(loss_fn, params, state, precond)
        return result, state

    def update_with_grad(self, loss_fn: Callable, params: PyTree, state: TrackerState, *,
                         precond: PyTree | None = None):
        """:meth:`update` that also returns ``loss_fn(params)`` and its gradient (a pytree).

        Both are by-products of the linearisation the solve needs, so a
        training step that tracks the sharpness of its own loss saves a gradient.
        """
        check_inputs(loss_fn, params, precond)
        dim = ravel_pytree(params)[0].shape[0]
        validate_request(dim, self.k, self.which, self.tol, self._budget(dim))
        return self._update(loss_fn, params, state, precond)

    def _solve(self, op: FlatOperator, v0, cold: bool = False):
        return solve_flat(op, v0, self.k, which=self.which, tol=self.tol,
                          max_hvps=self._budget(op.dim, cold))

    @functools.partial(jax.jit, static_argnums=(0, 1))
    def _init(self, loss_fn, params, precond, key):
        op = flat_operator(loss_fn, params, precond)
        key, sub = jax.random.split(key)
        values, vecs, res, hvps, conv = self._solve(op, jax.random.normal(sub, (op.dim,), op.dtype), cold=True)
        state = TrackerState(vecs, values, jnp.asarray(0, jnp.int32), key)
        return EigenResult(values, jax.vmap(op.unravel)(vecs), res, hvps, conv), state

    @functools.partial(jax.jit, static_argnums=(0, 1))
    def _update(self, loss_fn, params, state, precond):
        op = flat_operator(loss_fn, params, precond)
        key, sub = jax.random.split(state.key)
        updates = state.updates + 1
        v0 = jnp.sum(state.vectors, axis=0).astype(op.dtype)
        if self.refresh_every > 0:
            cold = updates % self.refresh_every == 0
            v0 = jnp.where(cold, jax.random.normal(sub, (op.dim,), op.dtype), v0)
        values, vecs, res, hvps, conv = self._solve(op, v0)
        new_state = TrackerState(vecs, values, updates, key)
        result = EigenResult(values, jax.vmap(op.unravel)(vecs), res, hvps, conv)
        return result, new_state, op.value, op.unravel(op.grad)
