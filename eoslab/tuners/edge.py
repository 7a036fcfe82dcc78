r"""Curvature-aware tuner CDAT, "stepping on the edge" (Roulet, Agarwala, Grill, Swirszcz, Blondel, Pedregosa 2024).

On the raw incoming direction u (u = -g for GD), CDAT takes the step that
is sigma times the minimiser of the local quadratic model along u:

    num_t = max(-<g, u>, 0),     den_t = |u' H u|,
    eta_t = min( sigma * num_t / (den_t + eps), max_step ),     update = eta_t * u.

For a quadratic f, sigma = 1 is the exact line search along u and sigma = 2
puts the step exactly "on the edge" of stability along u (the quadratic model
returns to its starting value); Roulet et al. find sigma ~ 2 works best.
u' H u costs one Hessian-vector product of ``value_fn`` at params along u
(forward-over-reverse, ``jvp`` of ``grad``; :func:`eoslab.curvature.hvp`),
so ``info.num_grads`` is 1 and ``info.num_values`` 0.
``info.curvature`` is u' H u / |u|^2 (the signed curvature along u; NaN
when u = 0).

With minibatches the paper smooths numerator and denominator separately by
exponential moving averages (``ema`` in [0, 1); 0 = none):

    N_t = ema N_{t-1} + (1 - ema) num_t,   D_t = ema D_{t-1} + (1 - ema) den_t,
    eta_t = min( sigma * N_t / (D_t + eps), max_step ),   N_0 = D_0 = 0.

No bias correction: both averages carry the same factor (1 - ema^t), which
cancels in the ratio (exactly when eps = 0; with eps > 0 the uncorrected
denominator makes the guard weigh slightly more in the first steps).

Guards: if D_t + eps == 0 (zero curvature along u, eps = 0) the ratio is
undefined; eta = max_step when N_t > 0 and max_step is finite, else 0, with
``info.success`` False.  A NaN/inf numerator, denominator or result gives
eta = 0 with ``success`` False.  N_t = 0 (u is not a descent direction)
gives eta = 0 by the rule itself, with ``success`` True.  optax has no
curvature-aware tuner.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from eoslab.curvature.operators import hvp
from eoslab.pytree import scalar_dtype, tree_cast_like, tree_scale, tree_sq_norm, tree_vdot
from eoslab.tuners.base import (TunerInfo, bind_value_fn, check_at_least, check_interval, check_positive,
                                initial_info, make_info, require_params)

PyTree = Any


class EdgeState(NamedTuple):
    numerator: jax.Array  # N_t, EMA of max(-<g, u>, 0)
    denominator: jax.Array  # D_t, EMA of |u' H u|
    info: TunerInfo


def edge(sigma: float = 2.0, eps: float = 0.0, ema: float = 0.0,
         max_step: float = math.inf) -> optax.GradientTransformationExtraArgs:
    """CDAT: eta = sigma * max(-<g, u>, 0) / (|u' H u| + eps), capped at max_step (module docstring).

    Args:
      sigma: scale > 0 of the quadratic model's minimiser (2 = on the edge of stability).
      eps: guard >= 0 added to the denominator.
      ema: EMA factor in [0, 1) for the numerator and the denominator (0 = none).
      max_step: cap on eta (> 0; inf by default).
    """
    check_positive("edge", "sigma", sigma, "the scale of the quadratic model's minimiser", finite=True)
    check_at_least("edge", "eps", eps, 0.0, "the guard added to the denominator")
    check_interval("edge", "ema", ema, 0.0, 1.0, "the moving-average factor", closed_lo=True)
    check_positive("edge", "max_step", max_step, "the cap on the step")

    def init_fn(params: PyTree) -> EdgeState:
        zero = jnp.zeros((), scalar_dtype(params))
        return EdgeState(zero, zero, initial_info(params))

    def update_fn(updates: PyTree, state: EdgeState, params: PyTree = None, *, value: jax.Array,
                  grad: PyTree, value_fn: Callable, **extra_args) -> tuple[PyTree, EdgeState]:
        require_params(params, "edge")
        del value
        dtype = state.info.step_size.dtype
        f = bind_value_fn(value_fn, extra_args)
        u = tree_cast_like(updates, params)
        uhu = tree_vdot(u, hvp(f, params, u)).astype(dtype)
        num_t = jnp.maximum(-tree_vdot(grad, u).astype(dtype), 0.0)
        den_t = jnp.abs(uhu)
        smooth = ema > 0
        num = jnp.where(smooth, ema * state.numerator + (1 - ema) * num_t, num_t).astype(dtype)
        den = jnp.where(smooth, ema * state.denominator + (1 - ema) * den_t, den_t).astype(dtype)

        finite = jnp.isfinite(num) & jnp.isfinite(den)
        regular = finite & (den + eps > 0)
        ratio = sigma * num / jnp.where(regular, den + eps, 1.0)
        guard = jnp.where((num > 0) & jnp.isfinite(max_step), max_step, 0.0)
        eta = jnp.where(regular, jnp.minimum(ratio, max_step), jnp.where(finite, guard, 0.0))
        ok_eta = jnp.isfinite(eta)
        eta = jnp.where(ok_eta, eta, 0.0).astype(dtype)
        curvature = uhu / tree_sq_norm(u).astype(dtype)
        info = make_info(dtype, eta, 0, 1, regular & ok_eta, curvature)
        return tree_scale(eta, updates), EdgeState(num, den, info)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
