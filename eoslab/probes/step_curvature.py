"""The step-curvature probe: the curvature of the loss along the step actually taken.

``step_curvature`` = eta_t u.H u / |u|^2 with u = theta_{t+1} - theta_t and H
the Hessian of the loss the step descends (the minibatch's, in SGD), at every
step: one Hessian-vector product.  For a fixed step size eta_t = eta; for a
step-size tuner eta_t = |u| / |g_t|.  GD on a quadratic is stable along u
while it is below 2 (the one-dimensional edge of stability; cf. the
directional sharpness of Roulet et al. 2024).  On with ``probes.step_curvature``;
a rule that measures it itself (CDAT) reports it through :mod:`eoslab.probes.tuner`.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from eoslab.curvature import hvp
from eoslab.probes.base import Probe, StepView
from eoslab.probes.tuner import step_length
from eoslab.pytree import tree_sq_norm, tree_vdot


def curvature_along(loss_fn: Callable, params, u) -> jax.Array:
    """u.H u / |u|^2 of ``loss_fn`` at ``params`` (one Hessian-vector product; NaN for u = 0)."""
    uu = tree_sq_norm(u)
    return jnp.where(uu > 0, tree_vdot(u, hvp(loss_fn, params, u)) / jnp.where(uu > 0, uu, 1), jnp.nan)


class StepCurvature(Probe):
    """eta_t u.H u / |u|^2 along the step (see the module docstring)."""

    name = "step_curvature"
    every_step = True

    @classmethod
    def enabled(cls, ctx):
        return ctx.probes.step_curvature and not ctx.rule.measures_step_curvature

    def at_step(self, state, view: StepView):
        eta = step_length(view.updates, view.grads) if self.ctx.rule.tuner else view.eta
        return {"step_curvature": eta * curvature_along(view.loss_fn, view.params, view.updates)}, state
