"""What a probe is: a measurement taken along training, with its own state, that names its own metrics.

A probe (:class:`Probe`) measures one member of an ensemble at a time and is
traced into the trainer's compiled functions (``vmap``-ed over members, or run
one member after another for the eigensolves, :attr:`Probe.sequential`):

* ``init(params, key, earlier)`` -> the probe's state at theta_0 (a pytree;
  ``()`` when it keeps none).  ``earlier`` maps the names of the probes built
  before it to their initial states, so a probe may warm-start from another
  (the preconditioned sharpness starts from the Hessian's top eigenvector);
* ``at_step(state, view)`` -> ``(metrics, state)`` at every step, inside the
  scan, with the :class:`StepView` of the step theta_t -> theta_{t+1};
  :attr:`Probe.every_step` says whether it measures anything there;
* ``at_eval(state, view)`` -> ``(metrics, state)`` at evaluation steps, with
  the :class:`EvalView` of theta_t (no step is taken);
* ``at_end(state, view)`` -> ``metrics`` once, after the last step;
* ``finish(rows, facts)`` on the host: metrics that a probe derives from its
  own rows and the member's :class:`MemberFacts` in float64 (the edge ratio
  lambda / threshold, for instance), added to ``rows`` in place.

Metrics are named where they are measured: a probe returns
``{name: scalar}`` per member and the trainer stores them under those names.
Between steps a probe's state is frozen, like the parameters, once a member
diverged or stopped.

A probe is enabled by the config (:meth:`Probe.enabled`; :meth:`Probe.from_config`
returns ``None`` when it is off); :data:`eoslab.probes.PROBES` lists them in the order they
are built.  Adding a probe is one module and one line there.  Outside the
trainer a probe needs only a :class:`ProbeContext` (the loss functions and
the rule), so it can measure the parameters of any training loop.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, NamedTuple

import jax

PyTree = Any
Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class ProbeContext:
    """What probes measure with: the losses, the update rule and its hyper-parameters, the probe config.

    Attributes:
      sharpness_loss: the loss whose Hessian the sharpness probes solve (the training loss or a fixed subset).
      train_loss: the full training loss (the loss barrier is on it).
      rule: the update rule (:mod:`eoslab.rules`); hp: its hyper-parameters.
      probes: the ``[probes]`` section of the config (:class:`~eoslab.train.config.ProbeConfig`).
      dim: the number of parameters.
      gradient_from_solve: whether the every-step loss is the loss the sharpness is measured on (full batch,
        no subset), so the sharpness solve's linearisation also gives the step's loss and gradient.
    """
    sharpness_loss: Callable
    train_loss: Callable
    rule: Any
    hp: Any
    probes: Any
    dim: int
    gradient_from_solve: bool = False


class StepView(NamedTuple):
    """One member's step theta_t -> theta_{t+1} = theta_t + updates, as the probes see it inside the scan."""
    t: jax.Array
    params: PyTree  # theta_t
    opt_state: PyTree  # the optimizer state that produced theta_t (P_t of the step before)
    eta: jax.Array  # the member's step size eta (for a tuner, its cap)
    loss_fn: Callable  # the loss this step descends (the minibatch of step t, or the training loss)
    loss: jax.Array
    grads: PyTree
    updates: PyTree  # theta_{t+1} - theta_t
    new_opt_state: PyTree  # the optimizer state after the update


class EvalView(NamedTuple):
    """One member at an evaluation step t (theta_t; no step is taken)."""
    t: jax.Array
    params: PyTree
    opt_state: PyTree
    eta: jax.Array
    seed: jax.Array
    loss_fn: Callable  # the loss step t would descend
    refresh: jax.Array  # the eigensolves run a cold check


@dataclasses.dataclass(frozen=True)
class MemberFacts:
    """Host-side constants of one member, in float64: its step size and thresholds.

    Attributes:
      eta: the step size eta (after c / lambda_0 with ``optimizer.lr_units = "1/lambda0"``; a tuner's cap).
      threshold: the raw-sharpness threshold (e.g. 2 / eta) for the SGD family, else the effective one.
      effective_threshold: the threshold of lambda_1(P^{-1} H) (:meth:`eoslab.rules.Rule.threshold`).
    """
    eta: float
    threshold: float
    effective_threshold: float


def member_facts(rule, hp, eta: float) -> MemberFacts:
    """The facts of a member trained by ``rule`` (hyper-parameters ``hp``) at step size ``eta``.

    The effective threshold is the rule's (:meth:`eoslab.rules.Rule.threshold`);
    the raw one is effective / eta for the SGD family (P = I / eta), and the
    effective one for adaptive rules and tuners, whose thresholds are on lambda_1(P^{-1} H).
    """
    eta = float(eta)
    eff = float(rule.threshold(eta, hp))
    raw = eff if rule.adaptive or rule.tuner else float(rule.raw_threshold(eta, hp))
    return MemberFacts(eta, raw, eff)


Rows = dict[str, tuple[Any, Any]]  # metric -> (steps, values), float64 on the host


class Probe:
    """Base of the probes (see the module docstring); every method defaults to measuring nothing."""

    name: ClassVar[str]
    every_step: bool = False  # at_step measures something
    optional: ClassVar[bool] = False  # off unless probes.enable names it (else its own config keys decide)
    supplies_gradient: bool = False  # at_step_with_gradient gives the step's loss and gradient
    sequential: ClassVar[bool] = False  # on the CPU, at_eval runs member after member (eigensolves)

    def __init__(self, ctx: ProbeContext):
        self.ctx = ctx

    @classmethod
    def enabled(cls, ctx: ProbeContext) -> bool:
        """Whether the config turns this probe on (an optional probe: when ``probes.enable`` names it)."""
        return cls.optional and cls.name in ctx.probes.enable

    @classmethod
    def from_config(cls, ctx: ProbeContext) -> "Probe | None":
        """This probe as the config asks for it, or None when the config turns it off."""
        return cls(ctx) if cls.enabled(ctx) else None

    def init(self, params: PyTree, key: jax.Array, earlier: dict[str, PyTree]) -> PyTree:
        del params, key, earlier
        return ()

    def at_step_with_gradient(self, state: PyTree, params: PyTree):
        """(loss, gradient, metrics, state) at theta_t, for a probe whose measurement yields the step's loss
        and gradient as by-products (:attr:`supplies_gradient`); the trainer then skips its own gradient."""
        raise NotImplementedError

    def at_step(self, state: PyTree, view: StepView) -> tuple[Metrics, PyTree]:
        del view
        return {}, state

    def at_eval(self, state: PyTree, view: EvalView) -> tuple[Metrics, PyTree]:
        del view
        return {}, state

    def at_end(self, state: PyTree, view: EvalView) -> Metrics:
        del state, view
        return {}

    def finish(self, rows: Rows, facts: MemberFacts) -> None:
        del rows, facts
