"""Warm-started tracking of the top Hessian eigenpairs along a training run.

Between two optimisation steps the Hessian changes little, so the previous
top eigenvectors are excellent start vectors: Lanczos started from them
reaches the same relative residual in a few Hessian-vector products instead of
the tens a cold (random) start needs.  For k > 1 the start vector is the sum
of the previous k eigenvectors, whose Krylov space contains all of them after
about k steps.

Each update reports its residual (an upper bound on the eigenvalue error), so
callers know how accurate it is.  If the warm solve does not reach ``tol``
within ``max_hvps`` products, or every ``refresh_every`` updates, a cold solve
from a fresh random vector is run (``lax.cond``; under ``vmap`` both branches
are evaluated, so keep ``fallback`` off for large ensembles).  The refresh
guards against a warm start missing a new top eigenvalue that crosses the
tracked one with an orthogonal eigenvector.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from eoslab.curvature.eigen import (DEFAULT_TOL, EigenResult, default_max_hvps, solve_flat,
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
      tol: relative residual target ||A y - lambda y|| <= tol * max|lambda|.
      max_hvps: budget of a warm update.
      cold_max_hvps: budget of a cold solve (default min(dim, max(100, 20 k))).
      refresh_every: force a cold solve every this many updates (0: never).
      fallback: run a cold solve when a warm update does not converge.
    """
    k: int = 1
    which: str = "largest"
    tol: float = DEFAULT_TOL
    max_hvps: int = 20
    cold_max_hvps: int | None = None
    refresh_every: int = 0
    fallback: bool = True

    def _cold(self, op: FlatOperator, key) -> tuple:
        budget = self.cold_max_hvps or default_max_hvps(op.dim, self.k)
        validate_request(op.dim, self.k, self.which, self.tol, budget)
        v0 = jax.random.normal(key, (op.dim,), op.dtype)
        return solve_flat(op, v0, self.k, which=self.which, tol=self.tol, max_hvps=budget)

    def init(self, loss_fn: Callable, params: PyTree, *, precond: PyTree | None = None,
             key: jax.Array | None = None) -> tuple[EigenResult, TrackerState]:
        """A cold solve at ``params``; returns its result and the tracker state."""
        check_inputs(loss_fn, params, precond)
        key = jax.random.PRNGKey(0) if key is None else key
        return self._init(loss_fn, params, precond, key)

    def update(self, loss_fn: Callable, params: PyTree, state: TrackerState, *,
               precond: PyTree | None = None) -> tuple[EigenResult, TrackerState]:
        """Re-solve at new ``params`` starting from the previous eigenvectors."""
        check_inputs(loss_fn, params, precond)
        validate_request(ravel_pytree(params)[0].shape[0], self.k, self.which, self.tol, self.max_hvps)
        return self._update(loss_fn, params, state, precond)

    @functools.partial(jax.jit, static_argnums=(0, 1))
    def _init(self, loss_fn, params, precond, key):
        op = flat_operator(loss_fn, params, precond)
        key, sub = jax.random.split(key)
        values, vecs, res, hvps, conv = self._cold(op, sub)
        state = TrackerState(vecs, values, jnp.asarray(0, jnp.int32), key)
        return EigenResult(values, jax.vmap(op.unravel)(vecs), res, hvps, conv), state

    @functools.partial(jax.jit, static_argnums=(0, 1))
    def _update(self, loss_fn, params, state, precond):
        op = flat_operator(loss_fn, params, precond)
        v0 = jnp.sum(state.vectors, axis=0).astype(op.dtype)
        warm = solve_flat(op, v0, self.k, which=self.which, tol=self.tol, max_hvps=self.max_hvps)
        key, sub = jax.random.split(state.key)
        updates = state.updates + 1
        need_cold = jnp.asarray(False)
        if self.fallback:
            need_cold = need_cold | ~warm[4]
        if self.refresh_every > 0:
            need_cold = need_cold | (updates % self.refresh_every == 0)
        if self.fallback or self.refresh_every > 0:
            def cold(_):
                values, vecs, res, hvps, conv = self._cold(op, sub)
                return values, vecs, res, hvps + warm[3], conv
            values, vecs, res, hvps, conv = jax.lax.cond(need_cold, cold, lambda _: warm, None)
        else:
            values, vecs, res, hvps, conv = warm
        new_state = TrackerState(vecs, values, updates, key)
        return EigenResult(values, jax.vmap(op.unravel)(vecs), res, hvps, conv), new_state
