"""What every update rule is: theta <- theta - P_t^{-1} m_t, with its threshold.

A rule (:class:`Rule`) owns, in one module of :mod:`eoslab.rules`:

* its hyper-parameters, a small frozen dataclass (``Rule.Hyper``) whose
  fields are the rule's config keys under ``[optimizer]`` (besides ``name``,
  ``lr``, ``lr_units`` and ``batch_size``, which every rule has), checked by
  ``Hyper.check(lr)`` with one sentence per bad value;
* its optax transform, ``transform(lr, hp)`` (``lr`` may be a traced array,
  so an ensemble over step sizes is one ``vmap``);
* its preconditioner P_t, a positive diagonal that *includes the step size*,
  read from the optimizer state by the *type* of the state node that holds
  it (:func:`find_state`; never by its position in a chain);
* its momentum m_t (``momentum(state, grad)``), so that the update is
  theta_{t+1} = theta_t - P_t^{-1} m_t (plus ``decoupled(theta)``, e.g.
  AdamW's weight decay): a test over the whole registry checks this against
  the optax update;
* its threshold for the effective sharpness lambda_1(P_t^{-1} H), with the
  derivation in its docstring (the recurrence on a quadratic with P frozen;
  :mod:`eoslab.thresholds`), checked over the registry by running the real
  transform on quadratics at 0.99 and 1.01 times it.

The SGD family has the scalar P = I / eta (``preconditioner`` returns None),
so its effective sharpness is eta * lambda_1(H) and its raw-sharpness
threshold is the effective one divided by eta.  Step-size tuners choose
eta_t at every step (P_t = I / eta_t, threshold 2).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax

from eoslab.errors import ConfigError
from eoslab.pytree import find_node

PyTree = Any


@dataclasses.dataclass(frozen=True)
class NoHyper:
    """The hyper-parameters of a rule that has none besides the step size."""

    def check(self, lr: float) -> None:
        del lr


@dataclasses.dataclass(frozen=True)
class FreezeStep:
    """Mixin of the hyper-parameters of a rule whose preconditioner freezes (list it first among the bases)."""
    freeze_step: int = 0  # the preconditioner stops updating after this many steps (>= 1)

    def check(self, lr) -> None:
        check_steps("freeze_step", self.freeze_step, "the number of steps before the preconditioner freezes")
        super().check(lr)


class Rule:
    """An update rule theta <- theta - P_t^{-1} m_t (see the module docstring)."""

    name: ClassVar[str]
    doc: ClassVar[str]  # one line for listings
    Hyper: ClassVar[type] = NoHyper
    adaptive: ClassVar[bool] = False  # P_t is a non-scalar diagonal read from the optimizer state
    tuner: ClassVar[bool] = False  # a step-size tuner: its update needs value, grad and value_fn
    measures_step_curvature: ClassVar[bool] = False  # its state holds u.H u / |u|^2 along its step, exactly

    def transform(self, lr, hp) -> optax.GradientTransformation:
        raise NotImplementedError

    def update(self, params, opt_state, lr, hp, loss, grads, loss_fn) -> tuple[PyTree, PyTree]:
        """(updates, new state) of one step: the optax update of :meth:`transform` for the gradient ``grads``
        (a tuner also receives the loss, the gradient and the loss function, optax's line-search style)."""
        del loss, loss_fn
        return self.transform(lr, hp).update(grads, opt_state, params)

    def threshold(self, lr: float, hp) -> float:
        """The threshold of the effective sharpness lambda_1(P^{-1} H)."""
        raise NotImplementedError

    def preconditioner(self, opt_state, lr, hp) -> PyTree | None:
        """The diagonal P_t (a pytree like params) of the state after an update; None: P = I / lr."""
        del opt_state, lr, hp
        return None

    def momentum(self, opt_state, grad, lr, hp) -> PyTree:
        """m_t of theta_{t+1} = theta_t - P_t^{-1} m_t + decoupled(theta_t), from the state after the update
        and the step's gradient g_t (for a tuner, m_t = g_t and P_t = I / eta_t)."""
        del opt_state, lr, hp
        return grad

    def decoupled(self, params, lr, hp) -> PyTree | None:
        """The part of the update outside P_t^{-1} m_t (AdamW's -eta wd theta); None: there is none."""
        del params, lr, hp
        return None

    def raw_threshold(self, lr: float, hp) -> float:
        """The threshold of the raw sharpness lambda_1(H): the effective one / lr where P = I / lr."""
        if self.adaptive or self.tuner:
            raise ValueError(f"rule {self.name!r} has no fixed raw-sharpness threshold (P_t is not I / lr).")
        return self.threshold(lr, hp) / lr

    def check_keys(self, keys) -> None:
        """A key that is not one of this rule's hyper-parameters: one sentence naming those it takes."""
        fields = {f.name for f in dataclasses.fields(self.Hyper)}
        unknown = sorted(set(keys) - fields)
        if unknown:
            takes = ", ".join(f"optimizer.{f}" for f in sorted(fields)) or "none besides optimizer.lr"
            raise ConfigError(f"optimizer.{unknown[0]} is not a hyper-parameter of rule {self.name!r}; it takes "
                              f"{takes}.")

    def hyper(self, **values) -> Any:
        """This rule's hyper-parameters (its ``Hyper`` dataclass) from config values."""
        self.check_keys(values)
        return self.Hyper(**values)

    def check(self, lr, hp) -> None:
        """One ConfigError sentence for a bad step size or hyper-parameter."""
        if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and lr > 0):
            raise ConfigError(f"optimizer.lr={lr!r} must be a positive number (the step size eta; "
                              f"for a tuner, the largest step it may take).")
        hp.check(lr)

    def __repr__(self) -> str:
        return f"<rule {self.name}: {self.doc}>"


# ---- shared pieces ------------------------------------------------------------------------------

def find_state(opt_state, kind: type | tuple[type, ...]):
    """The first node of type ``kind`` in an optimizer state (a chain, ``inject_hyperparams``, ...).

    Optimizer states are pytrees of NamedTuples; the node is found by its type, wherever the chain
    puts it.  A state without one is an error that names the type.
    """
    node = find_node(opt_state, kind)
    if node is None:
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ValueError(f"the optimizer state holds no {names}; is it the state of this rule's transform?")
    return node


def positive(x):
    """Guard P against exact zeros (eps = 0 before the first gradient)."""
    return jnp.maximum(x, jnp.finfo(jnp.result_type(x)).tiny)


def frozen_second_moment(decay: float, live, grads, nu):
    """The EMA nu <- decay nu + (1 - decay) g^2 while ``live`` (the first ``freeze_step`` updates), else nu."""
    return jax.tree_util.tree_map(lambda g, n: jnp.where(live, decay * n + (1 - decay) * g * g, n), grads, nu)


def check_decay(key: str, value: float) -> None:
    """A decay or momentum factor in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"optimizer.{key}={value!r} must lie in [0, 1).")


def check_nonnegative(key: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
        raise ConfigError(f"optimizer.{key}={value!r} must be a finite number >= 0.")


def check_steps(key: str, value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"optimizer.{key}={value!r} must be an integer >= 1 ({what}).")
