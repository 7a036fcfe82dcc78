"""The optimizer as a flow sees it: a preconditioner P(s) of a state s, and the state's dynamics.

Every rule here is theta <- theta - P(s')^{-1} g with s' = step(s, g): the
state updates first, then the parameters (optax's and PyTorch's order), and
P includes the step size.  The flows need, besides ``P`` and ``step``, the
state's continuous-time rate ``rate(s, g)`` (ds/dt, one unit of time per
step) and the stability threshold of lambda_1(P^{-1} H), which is 2 for
every rule here (the iteration's linearisation I - P^{-1} H is stable while
lambda_1(P^{-1} H) < 2).  States and parameters are flat vectors.

* :class:`GD`: P = I / eta, no state (s is a dummy scalar).
* :class:`RMSProp`: nu <- nu + (1 - beta2)(g^2 - nu), P = (sqrt(nu) + eps) / eta
  (eps outside the root, as eoslab's ``rmsprop`` rule and PyTorch), diagonal, or
  ``scalar=True`` with nu an EMA of ||g||^2 (the paper's scalar RMSProp).  Its
  rate is -ln(beta2)(g^2 - nu): the exponential relaxation with the discrete
  EMA's own rate (nu_t - nu* = beta2^t (nu_0 - nu*)), 1 - beta2 to first order.
  nu starts at g_0^2 (``init``), the paper's choice, so that P is defined at
  step 0; optax starts it at 0 and reaches the same EMA after a transient.

The hyper-parameters are validated by the eoslab rule of the same name
(:mod:`eoslab.rules`), so a flow takes the keys of ``[optimizer]``.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from eoslab.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class GD:
    eta: float
    threshold: float = 2.0
    name: str = "gd"

    def init(self, theta: jax.Array, g0: jax.Array) -> jax.Array:
        return jnp.zeros((1,), theta.dtype)

    def P(self, s: jax.Array) -> jax.Array:
        return jnp.full((), 1.0 / self.eta, s.dtype)

    def step(self, s: jax.Array, g: jax.Array) -> jax.Array:
        return s

    def rate(self, s: jax.Array, g: jax.Array) -> jax.Array:
        return jnp.zeros_like(s)


@dataclasses.dataclass(frozen=True)
class RMSProp:
    eta: float
    beta2: float = 0.99
    eps: float = 1e-8
    scalar: bool = False
    threshold: float = 2.0
    name: str = "rmsprop"

    def _sq(self, g: jax.Array) -> jax.Array:
        return jnp.sum(g * g, keepdims=True) if self.scalar else g * g

    def init(self, theta: jax.Array, g0: jax.Array) -> jax.Array:
        return self._sq(g0)

    def P(self, s: jax.Array) -> jax.Array:
        return (jnp.sqrt(s) + self.eps) / self.eta

    def step(self, s: jax.Array, g: jax.Array) -> jax.Array:
        return s + (1.0 - self.beta2) * (self._sq(g) - s)

    def rate(self, s: jax.Array, g: jax.Array) -> jax.Array:
        return -math.log(self.beta2) * (self._sq(g) - s)


def dynamics_for(name: str, eta: float, **hyper) -> GD | RMSProp:
    """The flow dynamics of the eoslab rule ``name`` at step size ``eta`` (its hyper-parameters validated)."""
    from eoslab.rules import get_rule
    scalar = bool(hyper.pop("scalar", False))
    if name not in FLOW_RULES:
        raise ConfigError(f"no central flow for rule {name!r}; flows exist for {', '.join(FLOW_RULES)}.")
    if isinstance(eta, bool) or not (isinstance(eta, (int, float)) and eta > 0):
        raise ConfigError(f"eta={eta!r} must be a positive number (the step size).")
    rule = get_rule(name)
    hp = rule.hyper(**hyper)
    rule.check(eta, hp)
    if name == "gd":
        return GD(float(eta))
    if getattr(hp, "momentum", 0.0):
        raise ConfigError("the RMSProp flow has no momentum; drop optimizer.momentum.")
    return RMSProp(float(eta), float(hp.beta2), float(hp.eps), scalar)


FLOW_RULES = ("gd", "rmsprop")
