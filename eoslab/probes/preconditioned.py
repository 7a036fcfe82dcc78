"""The preconditioned-sharpness probe: lambda_1(P_t^{-1} H) of an adaptive rule, certified.

For an adaptive rule theta <- theta - P_t^{-1} m_t (:mod:`eoslab.rules`;
P_t a positive diagonal that includes the step size, read from the optimizer
state after the step that produced theta_t), the quantity whose threshold
decides stability is the *effective* (preconditioned) sharpness
lambda_1(P_t^{-1} H_t) (Cohen et al. 2022, adaptive edge of stability).  A
second warm-started tracker solves the symmetric P^{-1/2} H P^{-1/2}, at the
same steps as :mod:`eoslab.probes.sharpness` (whose initial state it
warm-starts from: the top eigenvector of H, since P_0 is a scalar).

Metrics: ``effective_sharpness`` with ``effective_sharpness_error``,
``_residual``, ``_converged``, ``_hvps``, and on the host ``edge_ratio`` =
effective sharpness / the rule's threshold.  No preconditioner exists before
the first step, so step 0 is dropped (:meth:`PreconditionedSharpness.finish`).
"""
from __future__ import annotations

from eoslab.probes.base import EvalView, MemberFacts, Probe, ProbeContext, Rows, StepView
from eoslab.probes.sharpness import solve_metrics, trackers

NAME = "effective_sharpness"


class PreconditionedSharpness(Probe):
    """lambda_1(P_t^{-1} H_t) of an adaptive rule (see the module docstring)."""

    name = "preconditioned_sharpness"
    sequential = True

    def __init__(self, ctx: ProbeContext):
        super().__init__(ctx)
        self.step_tracker, self.eval_tracker = trackers(ctx, 1)
        self.every_step = bool(ctx.probes.every_step)

    @classmethod
    def enabled(cls, ctx):
        return ctx.probes.sharpness_k > 0 and ctx.rule.adaptive

    def init(self, params, key, earlier):
        """Warm start from the sharpness probe's top eigenvector; its next one is the guard."""
        s = earlier["sharpness"]
        guard = s.vectors[1] if s.vectors.shape[0] > 1 else s.guard
        return s._replace(vectors=s.vectors[:1], eigenvalues=s.eigenvalues[:1], guard=guard)

    def _precond(self, opt_state, eta):
        return self.ctx.rule.preconditioner(opt_state, eta, self.ctx.hp)

    def at_step(self, state, view: StepView):
        if not self.every_step:
            return {}, state
        res, state = self.step_tracker.update(self.ctx.sharpness_loss, view.params, state,
                                              precond=self._precond(view.opt_state, view.eta))
        return solve_metrics(res, NAME), state

    def at_eval(self, state, view: EvalView):
        res, state = self.eval_tracker.update(self.ctx.sharpness_loss, view.params, state,
                                              precond=self._precond(view.opt_state, view.eta), refresh=view.refresh)
        return solve_metrics(res, NAME), state

    def finish(self, rows: Rows, facts: MemberFacts) -> None:
        if NAME not in rows:
            return
        for key in [k for k in rows if k.startswith(NAME)]:
            steps, vals = rows[key]
            keep = steps > 0  # no preconditioner exists before the first step
            rows[key] = (steps[keep], vals[keep])
        steps, eff = rows[NAME]
        rows["edge_ratio"] = (steps, eff / facts.effective_threshold)
