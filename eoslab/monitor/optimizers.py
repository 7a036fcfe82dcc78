"""Which update rule an optimizer state belongs to: eoslab rules, and optax optimizers with injected hyper-parameters.

A monitor needs P_t and the threshold of the rule that trains the model
(:mod:`eoslab.rules`).  An optax optimizer built with
``optax.inject_hyperparams`` carries its hyper-parameters (the step size
included, after any schedule) in its state, so the rule is read from the
state: the *type* of its inner state node says the family, never its
position in a chain:

========================  ====================================================
state holds               rule
========================  ====================================================
``ScaleByAdamState``      ``adamw`` if ``weight_decay`` is a hyper-parameter,
                          else ``nadam`` if ``nesterov=True`` was given, else ``adam``
``ScaleByRmsState``       ``rmsprop-eps-in-sqrt`` (optax's default), or
                          ``rmsprop`` with ``eps_in_sqrt=False``
``ScaleByRssState``       ``adagrad``
``TraceState``            ``nesterov`` if ``nesterov=True`` was given, else ``heavy-ball``
none of these             ``gd``
========================  ====================================================

Booleans such as ``nesterov`` and ``eps_in_sqrt`` are not hyper-parameters
that optax injects (they are static), so they are passed to
:func:`rule_from_optax` as the optimizer was built.  Centred RMSProp, Adam's
``eps_root`` > 0 and other states are refused with one sentence.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import optax

from eoslab.pytree import find_node
from eoslab.rules import get_rule

INJECTED = tuple(t for t in (getattr(optax, "InjectHyperparamsState", None),
                             getattr(optax, "InjectStatefulHyperparamsState", None)) if t is not None)


@dataclasses.dataclass(frozen=True)
class RuleOf:
    """The rule of an optimizer state, its hyper-parameters and where its step size lives."""
    rule: Any
    hp: Any
    injected: bool  # the step size is read from the state (optax.inject_hyperparams) at every measurement
    lr: float | None = None  # the fixed step size of an eoslab rule (None when injected)

    def eta(self, opt_state):
        """The step size of this state: the injected ``learning_rate``, or the fixed one."""
        if not self.injected:
            return self.lr
        return find_node(opt_state, INJECTED).hyperparams["learning_rate"]


def _value(h: dict, key: str, default):
    """An injected hyper-parameter as the float it was written as (a float32 0.9 reads back as 0.9)."""
    if key not in h:
        return default
    v = np.asarray(h[key])
    return float(str(v)) if v.dtype == np.float32 else float(v)


def rule_from_optax(opt_state, *, nesterov: bool = False, eps_in_sqrt: bool = True) -> RuleOf:
    """The eoslab rule of an ``optax.inject_hyperparams`` optimizer's state (see the module docstring)."""
    inj = find_node(opt_state, INJECTED)
    if inj is None:
        raise ValueError("the optimizer state carries no hyper-parameters; build the optimizer with "
                         "optax.inject_hyperparams (e.g. optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)) "
                         "or give the monitor an eoslab rule and its lr.")
    h = inj.hyperparams
    if "learning_rate" not in h:
        raise ValueError(f"the injected hyper-parameters {sorted(h)} have no learning_rate; inject the step size.")
    inner = inj.inner_state
    if find_node(inner, optax.ScaleByAdamState) is not None:
        if _value(h, "eps_root", 0.0) != 0.0:
            raise ValueError("Adam with eps_root > 0 is not supported; its P_t is not a fixed function of nu.")
        name = "adamw" if "weight_decay" in h else ("nadam" if nesterov else "adam")
        hp = dict(beta1=_value(h, "b1", 0.9), beta2=_value(h, "b2", 0.999), eps=_value(h, "eps", 1e-8))
        if name == "adamw":
            hp["weight_decay"] = _value(h, "weight_decay", 1e-4)
    elif find_node(inner, optax.ScaleByRStdDevState) is not None:
        raise ValueError("centred RMSProp (centered=True) is not supported: its P_t depends on the mean gradient.")
    elif find_node(inner, optax.ScaleByRmsState) is not None:
        if _value(h, "initial_scale", 0.0) != 0.0:
            raise ValueError("RMSProp with initial_scale > 0 is not supported; use the default 0.")
        name = "rmsprop-eps-in-sqrt" if eps_in_sqrt else "rmsprop"
        hp = dict(beta2=_value(h, "decay", 0.9), eps=_value(h, "eps", 1e-8), momentum=_value(h, "momentum", 0.0))
    elif find_node(inner, optax.ScaleByRssState) is not None:
        if _value(h, "initial_accumulator_value", 0.1) != 0.1:
            raise ValueError("Adagrad with an initial accumulator other than optax's 0.1 is not supported.")
        name, hp = "adagrad", dict(eps=_value(h, "eps", 1e-7))
    elif find_node(inner, optax.TraceState) is not None:
        name, hp = ("nesterov" if nesterov else "heavy-ball"), dict(beta=_value(h, "momentum", 0.9))
    else:
        name, hp = "gd", {}
    rule = get_rule(name)
    return RuleOf(rule, rule.hyper(**hp), injected=True)


def rule_by_name(name: str, lr: float, **hp) -> RuleOf:
    """An eoslab rule with a fixed step size ``lr`` and its hyper-parameters (checked as in a config)."""
    rule = get_rule(name)
    h = rule.hyper(**hp)
    rule.check(lr, h)
    return RuleOf(rule, h, injected=False, lr=float(lr))
