r"""Polyak step size, SPS_max and SPS+ (no evaluation beyond the given value and gradient).

Stochastic Polyak step (Loizou et al. 2021, "Stochastic Polyak step-size for
SGD", SPS_max; Polyak 1987 for full batch):

    eta = min( (f(w) - f*) / (c |g|^2 + eps), max_step ),      update = eta * u

with g = the ``grad`` argument (|g|^2 uses the gradient, not the incoming
direction u, which is only scaled; for u = -g this is SGD with the Polyak
step), f* a lower bound of f (Loizou et al. use f_i* = inf f_i; Roulet et al.
2023 use f* = 0 for losses that can be interpolated) and c > 0 (c = 1/2 in
Loizou et al.'s theory, 1 in Polyak's and Roulet et al.'s step).  ``eps``
guards the denominator (optax's ``eps``).

Variants:

* ``"max"`` (SPS_max).  The paper's f* is a lower bound, so the gap
  f - f* is non-negative by assumption.  A negative gap means f* is not a
  lower bound and the raw formula would step *uphill*; we take eta = 0 and
  report ``success=False`` (the assumption failed).
* ``"plus"`` (SPS+, Garrigos et al. 2023): the gap is replaced by
  max(f - f*, 0) by definition, so a negative gap gives eta = 0 with
  ``success=True``.  The max_step cap is applied too (``max_step=inf``
  gives the uncapped SPS+).

Vanishing gradient: when c |g|^2 + eps == 0 the formula is 0/0 or x/0; the
guard takes eta = max_step if the gap is positive and max_step is finite,
else 0, with ``success=False``.  A non-finite value, gradient or result also
gives eta = 0 with ``success=False``: the update is never NaN or inf.
``info.num_values = num_grads = 0``; ``info.curvature`` is NaN.

Relation to ``optax.polyak_sgd(max_learning_rate, scaling=1, f_min, eps, variant)``
(= ``chain(sgd(1), scale_by_polyak(...))``): it computes
min((f - f_min) / (|u|^2 + eps), max_learning_rate) * u with u the incoming
updates, so ``chain(scale(-1), polyak(f_star=f_min, c=1, max_step, eps=eps))``
takes the same steps whenever f >= f_min and |g|^2 + eps exceeds float64's
machine epsilon.  Differences: optax sets the step to 0 whenever
|u|^2 + eps <= 2.2e-16 (even with a positive gap, i.e. it stops as the
gradient vanishes; we take max_step there as the formula's limit does, and
only guard the exact zero); optax's ``"sps"`` takes the negative step when
f < f_min (an ascent step; we take 0); optax measures |u|^2 of the incoming
updates, so with ``scaling`` != 1 its formula changes (ours uses |g|^2 of the
``grad`` argument and merely scales u).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from eoslab.pytree import tree_scale, tree_sq_norm
from eoslab.tuners.base import (TunerInfo, check_at_least, check_choice, check_interval, check_positive, initial_info,
                                make_info)

PyTree = Any

VARIANTS = ("max", "plus")


class PolyakState(NamedTuple):
    info: TunerInfo


def polyak(f_star: float = 0.0, c: float = 1.0, max_step: float = 1.0, variant: str = "max",
           eps: float = 0.0) -> optax.GradientTransformationExtraArgs:
    """Polyak step eta = min((f - f*) / (c |g|^2 + eps), max_step) times the direction (module docstring).

    Args:
      f_star: lower bound f* on the objective (0 for interpolating losses).
      c: scale > 0 of |g|^2 in the denominator.
      max_step: cap on eta (> 0; inf allowed).
      variant: ``"max"`` (SPS_max) or ``"plus"`` (SPS+, gap clipped at 0).
      eps: guard >= 0 added to the denominator.
    """
    check_interval("polyak", "f_star", f_star, -float("inf"), float("inf"), "the lower bound of the objective")
    check_positive("polyak", "c", c, "the scale of |g|^2 in the denominator", finite=True)
    check_positive("polyak", "max_step", max_step, "the cap on the step")
    check_choice("polyak", "variant", variant, VARIANTS, "SPS_max or SPS+")
    check_at_least("polyak", "eps", eps, 0.0, "the guard added to the denominator")

    def init_fn(params: PyTree) -> PolyakState:
        return PolyakState(initial_info(params))

    def update_fn(updates: PyTree, state: PolyakState, params: PyTree = None, *, value: jax.Array,
                  grad: PyTree, value_fn: Callable | None = None, **extra_args) -> tuple[PyTree, PolyakState]:
        del params, value_fn, extra_args
        dtype = state.info.step_size.dtype
        gap = (jnp.asarray(value) - f_star).astype(dtype)
        if variant == "plus":
            gap = jnp.maximum(gap, 0.0)
        den = (c * tree_sq_norm(grad) + eps).astype(dtype)
        finite = jnp.isfinite(gap) & jnp.isfinite(den)
        regular = finite & (den > 0)
        raw = jnp.clip(gap / jnp.where(regular, den, 1.0), 0.0, max_step)
        guard = jnp.where((gap > 0) & jnp.isfinite(max_step), max_step, 0.0)
        eta = jnp.where(regular, raw, jnp.where(finite, guard, 0.0))
        ok_eta = jnp.isfinite(eta)
        eta = jnp.where(ok_eta, eta, 0.0).astype(dtype)
        success = regular & ok_eta & (gap >= 0)
        info = make_info(dtype, eta, 0, 0, success)
        return tree_scale(eta, updates), PolyakState(info)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
