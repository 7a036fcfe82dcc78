r"""Parabolic approximation line search, PAL (Mutschler & Zell 2020), on the normalised direction.

PAL fits a parabola to the loss along the (optionally conjugate) direction
from one extra evaluation and steps to (alpha times) its minimum.  With the
incoming direction u (u = -g for SGD) and PAL's conjugate direction
d_t = -g_t + beta d_{t-1} written in our convention,

    d_t = u_t + beta d_{t-1},        dhat = d_t / |d_t|,
    l(s) = f(w + s dhat),
    l(0) = value,   b = l'(0) = <g, dhat>   (no extra evaluation),
    l(mu) = value_fn(w + mu dhat)           (one extra evaluation),
    a = (l(mu) - l(0) - b mu) / mu^2,       so l(s) ~ a s^2 + b s + l(0),

    s = alpha * (-b / (2 a))   if a > 0 and b < 0   (step to alpha x the vertex),
    s = mu                     if a <= 0 and b < 0  (concave or flat: step the measuring distance),
    s = 0                      if b >= 0            (d is not a descent direction),
    s = min(s, s_max),                 update = s * dhat.

``info.step_size`` is s, the distance travelled along the *unit* direction
dhat (not a multiplier of u: the update is s * d / |d|).  The state keeps the
unnormalised d_t for the next conjugate direction (zeros at the start, so
d_1 = u_1).  ``info.curvature`` is 2a, the secant estimate of
dhat' H dhat (the curvature along the direction) that PAL computes.
Defaults follow the authors' code (measuring step 1, update step adaptation
alpha = 1/0.6, maximum step 3.16, no conjugate direction).

Failure policy: the loss is measured at w + mu dhat but the returned update
is always the full update from the original params, so params are never left
at the measuring point.  If l(0), b or l(mu) is NaN or inf (the measuring
point diverged), or d = 0 / non-finite (no direction), the step is 0 and
``info.success`` is False.  b >= 0 gives s = 0 by PAL's rule, with
``success`` True.  ``info.num_values`` is 1, ``num_grads`` 0.
optax has no parabolic line search.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from eoslab.pytree import tree_add_scaled, tree_cast_like, tree_scale, tree_sq_norm, tree_vdot
from eoslab.tuners.base import (TunerInfo, bind_value_fn, check_at_least, check_positive, initial_info, make_info,
                                require_params)

PyTree = Any


class ParabolicState(NamedTuple):
    direction: PyTree  # d_{t-1}, the unnormalised (conjugate) direction of the previous step
    info: TunerInfo


def parabolic(mu: float = 1.0, alpha: float = 1 / 0.6, s_max: float = 3.16,
              beta: float = 0.0) -> optax.GradientTransformationExtraArgs:
    """PAL: step alpha x the vertex of the parabola fitted along dhat (module docstring).

    Args:
      mu: measuring distance > 0 along the unit direction.
      alpha: update step adaptation > 0 (1 steps exactly to the vertex; PAL uses 1/0.6).
      s_max: cap on the step (> 0; inf allowed).
      beta: conjugate-direction factor >= 0 (0 = plain direction u).
    """
    check_positive("parabolic", "mu", mu, "the measuring distance along the unit direction", finite=True)
    check_positive("parabolic", "alpha", alpha, "the update step adaptation", finite=True)
    check_positive("parabolic", "s_max", s_max, "the cap on the step")
    check_at_least("parabolic", "beta", beta, 0.0, "the conjugate-direction factor")

    def init_fn(params: PyTree) -> ParabolicState:
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return ParabolicState(zeros, initial_info(params))

    def update_fn(updates: PyTree, state: ParabolicState, params: PyTree = None, *, value: jax.Array,
                  grad: PyTree, value_fn: Callable, **extra_args) -> tuple[PyTree, ParabolicState]:
        require_params(params, "parabolic")
        dtype = state.info.step_size.dtype
        f = bind_value_fn(value_fn, extra_args)
        d = tree_cast_like(tree_add_scaled(updates, beta, state.direction), state.direction)
        norm = jnp.sqrt(tree_sq_norm(d)).astype(dtype)
        has_dir = jnp.isfinite(norm) & (norm > 0)
        dhat = tree_scale(jnp.where(has_dir, 1.0 / jnp.where(has_dir, norm, 1.0), 0.0).astype(dtype), d)

        l0 = jnp.asarray(value).astype(dtype)
        b = tree_vdot(grad, dhat).astype(dtype)
        l_mu = jnp.asarray(f(tree_add_scaled(params, jnp.asarray(mu, dtype), dhat))).astype(dtype)
        a = (l_mu - l0 - b * mu) / mu ** 2

        measured = has_dir & jnp.isfinite(l0) & jnp.isfinite(b) & jnp.isfinite(l_mu)
        vertex = alpha * (-b / (2.0 * jnp.where(a > 0, a, 1.0)))
        s = jnp.where(b < 0, jnp.where(a > 0, vertex, mu), 0.0)
        s = jnp.minimum(s, s_max)
        finite_s = jnp.isfinite(s)
        success = measured & finite_s
        s = jnp.where(success, s, 0.0).astype(dtype)
        curvature = jnp.where(measured, 2.0 * a, jnp.nan)
        info = make_info(dtype, s, 1, 0, success, curvature)
        return tree_scale(s, dhat), ParabolicState(d, info)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
