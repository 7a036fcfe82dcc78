"""Update rules: theta <- theta - P_t^{-1} m_t, each with its preconditioner and threshold.

One module per family (:mod:`~eoslab.rules.sgd`, :mod:`~eoslab.rules.adam`,
:mod:`~eoslab.rules.rmsprop`, :mod:`~eoslab.rules.adagrad`,
:mod:`~eoslab.rules.tuners`); :mod:`~eoslab.rules.base` says what a rule
owns.  Adding a rule is one class in its family's module and one line in
:data:`RULES`.

>>> from eoslab.rules import get_rule
>>> rule = get_rule("adam")
>>> hp = rule.hyper(beta1=0.9)
>>> tx = rule.transform(1e-3, hp)          # an optax GradientTransformation
>>> round(rule.threshold(1e-3, hp), 6)     # of lambda_1(P^{-1} H)
38.0
"""
from __future__ import annotations

from eoslab.errors import ConfigError
from eoslab.rules.adagrad import Adagrad
from eoslab.rules.adam import Adam, AdamW, FrozenAdam, NAdam
from eoslab.rules.base import NoHyper, Rule, find_state
from eoslab.rules.rmsprop import FrozenRMSProp, RMSProp, RMSPropEpsInSqrt
from eoslab.rules.sgd import GD, HeavyBall, Nesterov
from eoslab.rules.tuners import Armijo, Edge, Parabolic, Polyak

#: Every rule by its config name (``optimizer.name``).
RULES: dict[str, Rule] = {rule.name: rule for rule in (
    GD(), HeavyBall(), Nesterov(),
    Adam(), AdamW(), NAdam(), FrozenAdam(),
    RMSProp(), RMSPropEpsInSqrt(), FrozenRMSProp(),
    Adagrad(),
    Armijo(), Polyak(), Parabolic(), Edge(),
)}


def get_rule(name: str) -> Rule:
    """The rule called ``name`` (an unknown name: one sentence listing the known ones)."""
    if name not in RULES:
        raise ConfigError(f"unknown update rule {name!r}; choose one of {', '.join(sorted(RULES))}.")
    return RULES[name]


__all__ = ["RULES", "NoHyper", "Rule", "find_state", "get_rule"]
