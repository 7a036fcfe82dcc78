"""The tuner probe: what a step-size tuner (:mod:`eoslab.tuners`) did at each step.

At every step (from the tuner's :class:`~eoslab.tuners.base.TunerInfo` in the
optimizer state after the update):

* ``step_size``: eta_t = |theta_{t+1} - theta_t| / |g_t|, the step actually
  taken along -g_t;
* ``tuner_step`` (the tuner's own step), ``tuner_values`` and ``tuner_grads``
  (the loss and gradient evaluations it spent) and ``tuner_success``;
* ``step_curvature`` = eta_t u.H u / |u|^2 along u = -g_t, for a rule that
  measures it to choose its step (CDAT, :attr:`~eoslab.rules.Rule.measures_step_curvature`),
  at no extra cost.

At evaluation steps, ``tuned_step_size``: the step the tuner would take from
theta_t (computed there, not applied), which the sharpness probe multiplies
into ``effective_sharpness`` = eta_t lambda_1 and ``edge_ratio`` = eta_t lambda_1 / 2.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from eoslab.probes.base import EvalView, Probe, StepView
from eoslab.pytree import tree_sq_norm
from eoslab.tuners.base import tuner_info


def step_length(updates, grads) -> jax.Array:
    """eta_t = |theta_{t+1} - theta_t| / |g_t| (the step size along -g; 0 where g = 0)."""
    gg = tree_sq_norm(grads)
    return jnp.where(gg > 0, jnp.sqrt(tree_sq_norm(updates) / jnp.where(gg > 0, gg, 1)), 0.0)


class Tuner(Probe):
    """The step-size tuner's telemetry (see the module docstring)."""

    name = "tuner"
    every_step = True

    @classmethod
    def enabled(cls, ctx):
        return ctx.rule.tuner

    def at_step(self, state, view: StepView):
        info = tuner_info(view.new_opt_state)
        eta = step_length(view.updates, view.grads)
        out = dict(step_size=eta, tuner_step=info.step_size, tuner_values=info.num_values,
                   tuner_grads=info.num_grads, tuner_success=info.success)
        if self.ctx.rule.measures_step_curvature:
            out["step_curvature"] = eta * info.curvature
        return out, state

    def at_eval(self, state, view: EvalView):
        loss, grads = jax.value_and_grad(view.loss_fn)(view.params)
        updates, _ = self.ctx.rule.update(view.params, view.opt_state, view.eta, self.ctx.hp, loss, grads,
                                          view.loss_fn)
        return {"tuned_step_size": step_length(updates, grads)}, state
