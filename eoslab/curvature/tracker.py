"""Warm-started tracking of the top Hessian eigenpairs along a training run.

Between two optimisation steps the Hessian changes little, so the previous
top eigenvectors are excellent start vectors: block Lanczos
(:mod:`eoslab.curvature.block_lanczos`) started from them reaches the same
accuracy in a few Hessian-vector products instead of the tens a cold (random)
start needs.  Each update stops as soon as every error estimate is below
``tol`` times the largest |eigenvalue| (or its budget is spent) and reports
the estimates, the rigorous residuals and a ``converged`` flag.

**Lost tracks.**  A warm start can miss a new top eigenvalue whose
eigenvector is orthogonal to the tracked ones (an eigenvalue crossing): the
solve then converges to a lower eigenvalue with a small residual.  Three
guards make that visible and short-lived:

* the start block is the k tracked vectors *plus a guard*, the (k+1)-th Ritz
  vector of the previous update, so the tracked space follows the next
  eigenvector too and a crossing between them is seen; every start vector
  carries a random component (:data:`~eoslab.curvature.eigen.WARM_NOISE`),
  so no direction has weight zero and a hidden eigenvector cannot stay
  invisible over updates;
* an update whose top value moved by more than ``jump`` (relative) or that did
  not converge marks the state ``suspect``;
* :meth:`SharpnessTracker.update` with ``refresh`` (a bool, traced or not)
  also runs a cold solve from k + 1 Gaussian vectors when asked, when the state is
  suspect, when the warm value jumped or did not converge, and keeps the
  result with the larger top value (every Ritz value is a lower bound of the
  eigenvalue of its rank, by interlacing, so the larger one is the better).
  The every-step hot path leaves ``refresh`` at the constant False (no branch
  under ``vmap``); the trainer refreshes at eval steps on a schedule and when
  suspect.

An update that runs out of budget is reported as not converged, and the next
update starts from its (improved) Ritz vectors.  The budget is also the size
of the Lanczos buffer, so a small one keeps every update cheap.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from eoslab.curvature.eigen import (EigenResult, FlatSolve, default_max_hvps, solve_flat, start_block,
                                    validate_request, with_noise)
from eoslab.curvature.operators import FlatOperator, check_inputs, flat_operator

PyTree = Any

# The guard's random component: enough that no direction has weight zero, small enough that the guard stays
# a good approximation of the next eigenvector (a poor one would only slow the convergence test).
GUARD_NOISE = 0.01


class TrackerState(NamedTuple):
    vectors: jax.Array  # (k, n) flat eigenvectors of the previous update
    eigenvalues: jax.Array  # (k,)
    updates: jax.Array  # number of updates since init
    key: jax.Array
    guard: jax.Array  # (n,) the (k+1)-th Ritz vector of the previous update (zero if the dimension is k)
    suspect: jax.Array  # the last update jumped or did not converge: the next refresh-enabled update verifies


@dataclasses.dataclass(frozen=True)
class SharpnessTracker:
    """Track the k largest (or most negative) eigenpairs of H or P^{-1/2} H P^{-1/2}.

    Attributes:
      k: number of eigenpairs.
      which: ``"largest"`` or ``"smallest"``.
      tol: eigenvalue accuracy: an update stops once every error estimate is <= tol * max|lambda|.
      max_hvps: budget of one warm update (and its buffer size).
      cold_max_hvps: budget of a cold solve (:meth:`init`, refreshes; default min(dim, max(100, 20 k))).
      jump: a relative change of the top value above this marks the state suspect (default 0.1).
    """
    k: int = 1
    which: str = "largest"
    tol: float = 1e-4
    max_hvps: int = 20
    cold_max_hvps: int | None = None
    jump: float = 0.1

    def _budget(self, dim: int, cold: bool = False) -> int:
        budget = (self.cold_max_hvps or default_max_hvps(dim, self.k)) if cold else self.max_hvps
        return min(budget, dim)

    def _check(self, loss_fn, params, precond, cold: bool) -> None:
        check_inputs(loss_fn, params, precond)
        dim = ravel_pytree(params)[0].shape[0]
        validate_request(dim, self.k, self.which, self.tol, self._budget(dim, cold=cold))

    def init(self, loss_fn: Callable, params: PyTree, *, precond: PyTree | None = None,
             key: jax.Array | None = None) -> tuple[EigenResult, TrackerState]:
        """A cold solve at ``params``; returns its result and the tracker state."""
        self._check(loss_fn, params, precond, cold=True)
        key = jax.random.PRNGKey(0) if key is None else key
        return self._init(loss_fn, params, precond, key)

    def update(self, loss_fn: Callable, params: PyTree, state: TrackerState, *,
               precond: PyTree | None = None, refresh: bool | jax.Array = False) -> tuple[EigenResult, TrackerState]:
        """Re-solve at new ``params`` starting from the previous eigenvectors (see the module docstring for
        ``refresh``)."""
        self._check(loss_fn, params, precond, cold=refresh is not False)
        result, state, _, _ = self._update(loss_fn, params, state, precond, refresh, refresh is not False)
        return result, state

    def update_with_grad(self, loss_fn: Callable, params: PyTree, state: TrackerState, *,
                         precond: PyTree | None = None, refresh: bool | jax.Array = False):
        """:meth:`update` that also returns ``loss_fn(params)`` and its gradient (a pytree).

        Both are by-products of the linearisation the solve needs, so a
        training step that tracks the sharpness of its own loss saves a gradient.
        """
        self._check(loss_fn, params, precond, cold=refresh is not False)
        return self._update(loss_fn, params, state, precond, refresh, refresh is not False)

    def _solve(self, op: FlatOperator, block, key, cold: bool) -> FlatSolve:
        return solve_flat(op, block, self.k, which=self.which, tol=self.tol,
                          max_hvps=self._budget(op.dim, cold), key=key, extra=1)

    def _cold(self, op: FlatOperator, key) -> FlatSolve:
        k1, k2 = jax.random.split(key)
        return self._solve(op, start_block(op, None, self.k, k1), k2, cold=True)

    def _verified(self, op: FlatOperator, warm_block, k_warm, k_cold, asked, doubtful) -> FlatSolve:
        """The warm solve, then a cold check from k + 1 Gaussian vectors if ``asked`` or ``doubtful(warm)``;
        the one with the larger top value (both are lower bounds of the eigenvalue of that rank).

        Both attempts run through one call of the solver (a loop of one or two
        trips over a buffer of the larger budget, each attempt limited to its
        own), so the solver is compiled once.
        """
        sign = 1.0 if self.which == "largest" else -1.0
        budgets = (self._budget(op.dim, cold=False), self._budget(op.dim, cold=True))
        k_block, k_cold = jax.random.split(k_cold)
        cold_block = start_block(op, None, warm_block.shape[0], k_block)
        keys = jnp.stack([k_warm, k_cold])

        def attempt(i):
            return solve_flat(op, jnp.where(i == 0, warm_block, cold_block), self.k, which=self.which, tol=self.tol,
                              max_hvps=max(budgets), key=keys[i], extra=1, limit=jnp.asarray(budgets)[i])

        def body(carry):
            i, best, spent, _ = carry
            solve = attempt(i)
            take = (i == 0) | (sign * solve.values[0] >= sign * best.values[0])
            best = jax.tree_util.tree_map(lambda a, b: jnp.where(take, a, b), solve, best)
            again = (i == 0) & (jnp.asarray(asked) | doubtful(solve))
            return i + 1, best, spent + solve.num_hvps, again

        empty = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(attempt, 0))
        zero = jnp.asarray(0, jnp.int32)
        _, best, spent, _ = jax.lax.while_loop(lambda c: c[3], body, (zero, empty, zero, jnp.asarray(True)))
        return best._replace(num_hvps=spent)

    def _state(self, solve: FlatSolve, updates, key, suspect) -> TrackerState:
        k = self.k
        guard = solve.vectors[k] if solve.vectors.shape[0] > k else jnp.zeros_like(solve.vectors[0])
        return TrackerState(solve.vectors[:k], solve.values[:k], updates, key, guard, suspect)

    @functools.partial(jax.jit, static_argnums=(0, 1))
    def _init(self, loss_fn, params, precond, key):
        op = flat_operator(loss_fn, params, precond)
        key, sub = jax.random.split(key)
        solve = self._cold(op, sub)
        return solve.result(op, self.k), self._state(solve, jnp.asarray(0, jnp.int32), key, ~solve.converged)

    @functools.partial(jax.jit, static_argnums=(0, 1, 6))
    def _update(self, loss_fn, params, state, precond, refresh, verify: bool):
        op = flat_operator(loss_fn, params, precond)
        key, k_noise, k_solve, k_cold = jax.random.split(state.key, 4)
        # the tracked vectors as they are, the guard with a random component
        guard = with_noise(state.guard.astype(op.dtype), k_noise, GUARD_NOISE)
        block = jnp.concatenate([state.vectors.astype(op.dtype), guard[None]])
        sign = 1.0 if self.which == "largest" else -1.0
        prev = sign * state.eigenvalues[0]

        def doubtful(solve):  # the top value jumped, or the solve did not converge
            return (jnp.abs(sign * solve.values[0] - prev) > self.jump * jnp.abs(prev)) | ~solve.converged

        if not verify:  # the hot path: no cold branch
            warm = self._solve(op, block, k_solve, cold=False)
            solve, suspect = warm, state.suspect | doubtful(warm)
        else:
            solve = self._verified(op, block, k_solve, k_cold, refresh | state.suspect, doubtful)
            suspect = ~solve.converged
        new_state = self._state(solve, state.updates + 1, key, suspect)
        return solve.result(op, self.k), new_state, op.value, op.unravel(op.grad)
