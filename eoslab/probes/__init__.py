"""Probes: measurements along training that own their state and name their metrics (:mod:`eoslab.probes.base`).

:data:`PROBES` lists them in the order they are built (a probe may start from
the state of one before it).  :func:`build_probes` returns those a config
turns on.  Adding a probe is one module and one line in :data:`PROBES`;
one that is off by default is turned on by ``probes.enable = ["its name"]``.
"""
from eoslab.probes.base import EvalView, MemberFacts, Probe, ProbeContext, StepView, member_facts
from eoslab.probes.gradient_norm import GradientNorm
from eoslab.probes.loss_barrier import LossBarrier
from eoslab.probes.preconditioned import PreconditionedSharpness
from eoslab.probes.sharpness import Sharpness
from eoslab.probes.step_curvature import StepCurvature
from eoslab.probes.tuner import Tuner

PROBES: tuple[type[Probe], ...] = (Sharpness, PreconditionedSharpness, Tuner, StepCurvature, LossBarrier,
                                   GradientNorm)
OPTIONAL = tuple(cls.name for cls in PROBES if cls.optional)  # those probes.enable turns on


def build_probes(ctx: ProbeContext) -> tuple[Probe, ...]:
    """The probes the config in ``ctx`` turns on, in the order of :data:`PROBES`."""
    return tuple(p for p in (cls.from_config(ctx) for cls in PROBES) if p is not None)


__all__ = ["EvalView", "GradientNorm", "LossBarrier", "MemberFacts", "OPTIONAL", "PROBES", "PreconditionedSharpness",
           "Probe", "ProbeContext", "Sharpness", "StepCurvature", "StepView", "Tuner", "build_probes",
           "member_facts"]
