r"""Armijo backtracking line search on the raw direction.

Given the incoming direction u (u = -g for gradient descent), the step s is
the first of the candidates s_k = s0 * decrease_factor^k, k = 0, 1, ...,
max_backtracks, that satisfies the sufficient-decrease (Armijo) condition

    f(w + s u) <= f(w) + c s <g, u>          (= f(w) - c s |g|^2 when u = -g)

(Armijo 1966; Nocedal & Wright 2006, Alg. 3.1).  The search spends at most
max_backtracks + 1 evaluations of ``value_fn``; a trial value that is NaN
fails the condition, so a step into a NaN region is backtracked like any
other.  The update is s * u (raw, unnormalised direction).

The initial candidate s0 (``init``):

* ``"reset"``: s0 = max_step on every step (classic backtracking);
* ``"keep"``:  s0 = min(s_prev, max_step), the step the previous search ended on;
* ``"grow"``:  s0 = min(s_prev * increase_factor, max_step).  optax uses
  increase_factor = 1.5; the stochastic line search SLS of Vaswani et al.
  (2019, "Painless stochastic gradient") multiplies the previous step by
  gamma^(1/n_batches) (n_batches minibatches per epoch), which is
  ``init="grow", increase_factor=gamma ** (1 / n_batches)``.

The first step of a run uses s0 = max_step.  s_prev is the last candidate the
previous search tried: the accepted step on success, the smallest candidate
on failure (whatever ``on_failure`` took), unchanged after a non-descent
direction (no search is made).

Failure: when no candidate satisfies the condition, ``on_failure="take"``
takes the last (smallest) candidate tried, unless its value was NaN or inf,
in which case it takes 0 (never step into a non-finite region);
``on_failure="skip"`` takes 0.  If <g, u> >= 0 (not a descent direction) no
step satisfies the condition for small s, so the tuner takes 0 without
evaluating.  ``info.success`` is False in all these cases.
``info.num_values`` counts the trial evaluations; ``info.curvature`` is NaN.

Relation to ``optax.scale_by_backtracking_linesearch``: with
``slope_rtol=c``, ``decrease_factor``, ``max_backtracking_steps=max_backtracks``,
``max_learning_rate=max_step``, ``atol = rtol = 0`` optax's search is
``init="grow"`` with its ``increase_factor`` (``inf`` is ``"reset"``, 1 is
``"keep"``) and ``on_failure="take"``: it tests the same candidates with the
same condition and the same evaluation budget, so the two take identical
steps while the direction is a descent direction and no trial value is
non-finite, provided max_step <= increase_factor (optax's first guess is
min(increase_factor * 1, max_learning_rate) since it initialises its memory
at 1; ours is max_step).  They differ where optax's choices are unsafe for
long runs: (i) for a non-descent direction optax backtracks the whole budget
and takes the smallest step, which increases f; we take 0; (ii) when the last
trial value is NaN/inf optax takes 0 *and stores 0 as its memory*, so with
"grow"/"keep" every later search starts at 0 and training stalls for ever; we
keep the last tried candidate as the memory.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from eoslab.pytree import scalar_dtype, tree_add_scaled, tree_scale, tree_vdot
from eoslab.tuners.base import (TunerInfo, bind_value_fn, check_choice, check_integer_at_least, check_interval,
                                check_positive, initial_info, make_info, require_params)

PyTree = Any

INITS = ("reset", "keep", "grow")
FAILURES = ("take", "skip")


class ArmijoState(NamedTuple):
    last_step: jax.Array  # the last candidate the previous search tried (inf before the first)
    info: TunerInfo


class _Search(NamedTuple):
    k: jax.Array  # evaluations so far
    step: jax.Array  # current candidate
    value: jax.Array  # f(w + step u)
    accepted: jax.Array  # whether the candidate satisfies the condition


def armijo(c: float = 1e-4, decrease_factor: float = 0.5, max_backtracks: int = 30, max_step: float = 1.0,
           init: str = "reset", increase_factor: float = 1.5,
           on_failure: str = "take") -> optax.GradientTransformationExtraArgs:
    """Armijo backtracking from s0 on f(w + s u) <= f(w) + c s <g, u> (see the module docstring).

    Args:
      c: sufficient-decrease constant in (0, 1).
      decrease_factor: factor in (0, 1) applied to the candidate after each failed trial.
      max_backtracks: the most reductions; at most max_backtracks + 1 evaluations of value_fn.
      max_step: the largest step tried (finite, > 0); s0 on the first step and with ``init="reset"``.
      init: initial candidate, ``"reset"`` (max_step), ``"keep"`` (previous) or ``"grow"``
        (previous * increase_factor, capped at max_step).
      increase_factor: growth factor >= 1 for ``init="grow"``.
      on_failure: ``"take"`` the smallest candidate tried, or ``"skip"`` the step (take 0).
    """
    check_interval("armijo", "c", c, 0.0, 1.0, "the sufficient-decrease constant")
    check_interval("armijo", "decrease_factor", decrease_factor, 0.0, 1.0, "the backtracking factor")
    check_integer_at_least("armijo", "max_backtracks", max_backtracks, 1, "the most step reductions per search")
    check_positive("armijo", "max_step", max_step, "the largest step tried", finite=True)
    check_choice("armijo", "init", init, INITS, "the initial step of each search")
    check_interval("armijo", "increase_factor", increase_factor, 1.0, float("inf"),
                   "the growth of the initial step with init='grow'", closed_lo=True)
    check_choice("armijo", "on_failure", on_failure, FAILURES, "what to do when no step satisfies the condition")

    def init_fn(params: PyTree) -> ArmijoState:
        return ArmijoState(jnp.asarray(jnp.inf, scalar_dtype(params)), initial_info(params))

    def update_fn(updates: PyTree, state: ArmijoState, params: PyTree = None, *, value: jax.Array,
                  grad: PyTree, value_fn: Callable, **extra_args) -> tuple[PyTree, ArmijoState]:
        require_params(params, "armijo")
        dtype = state.info.step_size.dtype
        f = bind_value_fn(value_fn, extra_args)
        value = jnp.asarray(value)
        slope = tree_vdot(grad, updates).astype(dtype)
        descent = slope < 0

        if init == "reset":
            s0 = max_step
        elif init == "keep":
            s0 = jnp.minimum(state.last_step, max_step)
        else:
            s0 = jnp.minimum(state.last_step * increase_factor, max_step)
        s0 = jnp.asarray(s0, dtype)

        def cond(search: _Search):
            return descent & ~search.accepted & (search.k <= max_backtracks)

        def body(search: _Search) -> _Search:
            step = jnp.where(search.k > 0, search.step * decrease_factor, search.step).astype(dtype)
            trial = jnp.asarray(f(tree_add_scaled(params, step, updates)))
            # NaN compares False: a NaN trial fails the condition.
            accepted = trial - value - step * c * slope <= 0
            return _Search(search.k + 1, step, trial.astype(search.value.dtype), accepted)

        start = _Search(jnp.asarray(0, jnp.int32), s0, jnp.asarray(value, jnp.result_type(value, dtype)),
                        jnp.asarray(False))
        search = jax.lax.while_loop(cond, body, start)

        success = descent & search.accepted
        if on_failure == "take":
            fallback = jnp.where(jnp.isfinite(search.value), search.step, 0.0)
        else:
            fallback = jnp.zeros((), dtype)
        step = jnp.where(success, search.step, jnp.where(descent, fallback, 0.0)).astype(dtype)
        last_step = jnp.where(descent, search.step, state.last_step).astype(dtype)
        info = make_info(dtype, step, search.k, 0, success)
        return tree_scale(step, updates), ArmijoState(last_step, info)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
