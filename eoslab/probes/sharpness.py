"""The sharpness probe: the top-k Hessian eigenvalues of the training loss, certified, warm-started.

At every evaluation step (and at every step with ``probes.every_step``) a
warm-started :class:`~eoslab.curvature.SharpnessTracker` solves for the k
largest eigenvalues lambda_1 >= ... >= lambda_k of H = nabla^2 L(theta_t)
(Cohen et al. 2021 call lambda_1 the sharpness).  Metrics:

* ``sharpness``, ``sharpness_2`` ... ``sharpness_k``: the eigenvalues;
* ``sharpness_error`` (the largest error estimate of the solve),
  ``sharpness_residual`` (the rigorous residual bound), ``sharpness_converged``
  (1 when every estimate met ``probes.tol`` relative, else 0: the value is
  budget-capped) and ``sharpness_hvps`` (its cost);
* on the host (:meth:`Sharpness.finish`), for rules whose P_t is a scalar
  I / eta: ``effective_sharpness`` = eta lambda_1 (its error eta times the
  error, the same certificate) and ``edge_ratio``, which is 1 at the edge of
  stability: lambda_1 / threshold for a fixed step size (threshold 2 / eta
  for GD), eta_t lambda_1 / 2 for a step-size tuner, with eta_t the tuner's
  ``tuned_step_size`` at evaluation steps and its ``step_size`` at every step
  (:mod:`eoslab.probes.tuner`).  Adaptive rules get theirs from
  :mod:`eoslab.probes.preconditioned`.

Budgets: every-step solves ``probes.max_hvps`` (small, no cold branch);
evaluation solves ``probes.eval_max_hvps`` (0: the solver's default for the
dimension), with a cold check every ``probes.refresh_every`` steps and
whenever the tracked value jumped by more than ``probes.jump`` or a solve did
not converge.  The initial state is a cold solve at theta_0.

When the step descends the loss the sharpness is measured on (full batch, no
subset), the every-step solve's linearisation also yields the step's loss and
gradient (:meth:`Sharpness.at_step_with_gradient`), which saves a gradient.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from eoslab.curvature import SharpnessTracker
from eoslab.curvature.eigen import default_max_hvps
from eoslab.probes.base import EvalView, MemberFacts, Probe, ProbeContext, Rows, StepView


def trackers(ctx: ProbeContext, k: int) -> tuple[SharpnessTracker, SharpnessTracker]:
    """(every-step tracker, evaluation tracker) for k eigenpairs with the budgets of ``ctx.probes``."""
    p = ctx.probes
    eval_budget = p.eval_max_hvps or None  # None: the solver's default for the dimension
    return (SharpnessTracker(k=k, tol=p.tol, max_hvps=p.max_hvps, cold_max_hvps=eval_budget, jump=p.jump),
            SharpnessTracker(k=k, tol=p.tol, max_hvps=eval_budget or default_max_hvps(ctx.dim, k),
                             cold_max_hvps=eval_budget, jump=p.jump))


def solve_metrics(res, name: str, k: int = 1) -> dict:
    """The metrics of one eigensolve: ``name``, ``name_2`` ... ``name_k`` and the certificate over its pairs."""
    values = {name if i == 0 else f"{name}_{i + 1}": res.eigenvalues[i] for i in range(k)}
    dtype = res.eigenvalues.dtype
    return {**values, f"{name}_error": jnp.max(res.errors), f"{name}_residual": jnp.max(res.residuals),
            f"{name}_converged": res.converged.astype(dtype), f"{name}_hvps": res.num_hvps}


def scaled_effective(rows: Rows, eta) -> None:
    """``effective_sharpness`` = eta * sharpness (P = I / eta), its error eta * error, the same certificate."""
    steps, lam = rows["sharpness"]
    rows["effective_sharpness"] = (steps, eta * lam)
    rows["effective_sharpness_error"] = (steps, np.abs(eta) * rows["sharpness_error"][1])
    rows["effective_sharpness_converged"] = rows["sharpness_converged"]


class Sharpness(Probe):
    """lambda_1 ... lambda_k of the Hessian (see the module docstring)."""

    name = "sharpness"
    sequential = True

    def __init__(self, ctx: ProbeContext):
        super().__init__(ctx)
        self.k = ctx.probes.sharpness_k
        self.step_tracker, self.eval_tracker = trackers(ctx, self.k)
        self.every_step = bool(ctx.probes.every_step)
        self.supplies_gradient = self.every_step and ctx.gradient_from_solve

    @classmethod
    def enabled(cls, ctx):
        return ctx.probes.sharpness_k > 0

    def init(self, params, key, earlier):
        return self.step_tracker.init(self.ctx.sharpness_loss, params, key=key)[1]

    @staticmethod
    def initial(state) -> jnp.ndarray:
        """lambda_1 at theta_0, from the initial state (the cold solve)."""
        return state.eigenvalues[0]

    def at_step_with_gradient(self, state, params):
        """(loss, gradient, metrics, state): the solve at theta_t and the training loss and its gradient."""
        res, state, loss, grads = self.step_tracker.update_with_grad(self.ctx.train_loss, params, state)
        return loss, grads, solve_metrics(res, self.name, self.k), state

    def at_step(self, state, view: StepView):
        if not self.every_step:
            return {}, state
        res, state = self.step_tracker.update(self.ctx.sharpness_loss, view.params, state)
        return solve_metrics(res, self.name, self.k), state

    def at_eval(self, state, view: EvalView):
        res, state = self.eval_tracker.update(self.ctx.sharpness_loss, view.params, state, refresh=view.refresh)
        return solve_metrics(res, self.name, self.k), state

    def finish(self, rows: Rows, facts: MemberFacts) -> None:
        if "sharpness" not in rows or self.ctx.rule.adaptive:
            return
        steps, lam = rows["sharpness"]
        if self.ctx.rule.tuner:  # eval rows carry the probed eta_t, per-step rows the scan's own eta_t
            eta = rows["tuned_step_size" if "tuned_step_size" in rows else "step_size"][1]
            scaled_effective(rows, eta)
            rows["edge_ratio"] = (steps, rows["effective_sharpness"][1] / facts.effective_threshold)
        else:
            scaled_effective(rows, facts.eta)
            rows["edge_ratio"] = (steps, lam / facts.threshold)
