"""Step-size tuners as update rules: GD whose step eta_t is chosen at every step.

A tuner rule is ``optax.chain(scale(-1), tuner)`` with a tuner of
:mod:`eoslab.tuners`: the tuner scales the direction u = -g and receives the
step's loss, gradient and loss function (the minibatch loss under
minibatching) through optax's line-search convention (``value``, ``grad``,
``value_fn``).  ``optimizer.lr`` is the largest step the tuner may take
(Armijo's and Polyak's ``max_step``, PAL's ``s_max`` along the unit
direction, CDAT's cap); the other config keys are the tuner's own arguments,
by the same names.

P_t = I / eta_t changes every step, so the effective sharpness is
eta_t * lambda_1(H) with threshold 2 (GD's, at the step actually taken),
eta_t = |theta_{t+1} - theta_t| / |g_t| (equal to the tuner's step for u = -g).

>>> from eoslab.rules import get_rule
>>> rule = get_rule("polyak")
>>> rule.hyper(c=0.5).variant, rule.threshold(1.0, rule.hyper())
('max', 2.0)
"""
from __future__ import annotations

import dataclasses
import re

import optax

from eoslab import tuners
from eoslab.errors import ConfigError
from eoslab.rules.base import Rule


class TunerHyper:
    """Base of the tuners' hyper-parameters: the tuner checks its own arguments (:meth:`TunerRule.check`)."""

    def check(self, lr):
        del lr


class TunerRule(Rule):
    """GD with a step-size tuner (see the module docstring); threshold of eta_t * lambda_1: 2."""
    tuner = True
    cap: str  # the tuner's argument that optimizer.lr sets

    _build: staticmethod  # the tuner's constructor (eoslab.tuners)

    def transform(self, lr, hp):
        kwargs = dataclasses.asdict(hp)
        kwargs[self.cap] = lr
        return optax.chain(optax.scale(-1.0), self._build(**kwargs))

    def update(self, params, opt_state, lr, hp, loss, grads, loss_fn):
        return self.transform(lr, hp).update(grads, opt_state, params, value=loss, grad=grads, value_fn=loss_fn)

    def threshold(self, lr, hp):
        return 2.0

    def check(self, lr, hp):
        super().check(lr, hp)
        try:  # the tuner checks its own arguments; name them by their config keys
            self.transform(lr, hp)
        except ConfigError as err:
            msg = re.sub(rf"^{self.name} {self.cap}=", "optimizer.lr=", str(err))  # the tuner's own words
            raise ConfigError(re.sub(rf"^{self.name} (\w+)=", r"optimizer.\1=", msg)) from None


@dataclasses.dataclass(frozen=True)
class ArmijoHyper(TunerHyper):
    c: float = 1e-4  # sufficient-decrease constant, in (0, 1)
    decrease_factor: float = 0.5  # backtracking factor, in (0, 1)
    max_backtracks: int = 30
    init: str = "reset"  # first trial step: "reset" (lr), "keep" (last step), "grow" (last step x increase_factor)
    increase_factor: float = 1.5  # "grow": last step times this (capped at lr)
    on_failure: str = "take"  # "take" the last trial step or "skip" the step when the search fails


class Armijo(TunerRule):
    name = "armijo"
    doc = "GD with Armijo backtracking line search (eoslab.tuners.armijo)"
    Hyper = ArmijoHyper
    cap = "max_step"

    _build = staticmethod(tuners.armijo)


@dataclasses.dataclass(frozen=True)
class PolyakHyper(TunerHyper):
    f_star: float = 0.0  # the optimal value f*
    c: float = 1.0  # eta = (f - f*) / (c |g|^2)
    variant: str = "max"  # "max" (SPS_max) or "plus" (SPS+)


class Polyak(TunerRule):
    name = "polyak"
    doc = "GD with Polyak steps SPS_max / SPS+ (eoslab.tuners.polyak)"
    Hyper = PolyakHyper
    cap = "max_step"

    _build = staticmethod(tuners.polyak)


@dataclasses.dataclass(frozen=True)
class ParabolicHyper(TunerHyper):
    mu: float = 1.0  # measuring distance along the unit direction
    alpha: float = 1 / 0.6  # step = alpha times the parabola's minimum
    beta: float = 0.0  # conjugate direction d = u + beta d_prev


class Parabolic(TunerRule):
    name = "parabolic"
    doc = "GD with the parabolic approximation line search PAL (eoslab.tuners.parabolic)"
    Hyper = ParabolicHyper
    cap = "s_max"

    _build = staticmethod(tuners.parabolic)


@dataclasses.dataclass(frozen=True)
class EdgeHyper(TunerHyper):
    sigma: float = 2.0  # 1 "greedy", 2 "on edge"
    ema: float = 0.0  # EMA factor of numerator and denominator, in [0, 1)


class Edge(TunerRule):
    name = "edge"
    doc = "GD with the curvature-aware tuner CDAT (eoslab.tuners.edge)"
    Hyper = EdgeHyper
    cap = "max_step"
    measures_step_curvature = True  # CDAT measures u.H u / |u|^2 along u = -g (one HVP) to choose its step

    _build = staticmethod(tuners.edge)
