"""The optimizer as a flow sees it: a preconditioner P(s) of a state s, the state's rate, and a threshold.

A flow needs, of an optimizer with state s:

* ``P(s)``: the preconditioner of its stable flow dtheta/dt = -P(s)^{-1} grad L
  (step size included), positive, a scalar or one entry per parameter;
* ``rate(s, g)``: ds/dt for the gradient g (one unit of time per step);
* ``threshold`` c: the optimizer is stable while lambda_1(P^{-1} H) < c, that is
  while the slack U^T (c P - H) U is PSD on the top eigenvectors;
* ``init(theta, g0)`` and ``update(theta, s, g) -> (theta', s')``: the
  discrete optimizer itself (the state updates first, as in optax and PyTorch);
  ``flow_init(theta, g0)``: the flows' initial state (the same, except Adam's).

Rules (parameters and states are flat vectors):

* :class:`GD`: theta <- theta - eta g. P = 1/eta, c = 2.
* :class:`RMSProp`: nu <- nu + (1 - beta2)(g^2 - nu), theta <- theta - eta g / (sqrt(nu) + eps)
  (eps outside the root, as eoslab's ``rmsprop`` rule and PyTorch); diagonal, or
  ``scalar=True`` with nu an EMA of ||g||^2 (the paper's scalar RMSProp).
  P = (sqrt(nu) + eps)/eta, c = 2.  The rate is -ln(beta2)(g^2 - nu): the
  exponential relaxation with the discrete EMA's own rate (nu_t - nu* =
  beta2^t (nu_0 - nu*)), 1 - beta2 to first order.  nu starts at g_0^2 (the
  paper's choice, so that P is defined at step 0; optax starts at 0).
* :class:`HeavyBall` (an extension): v <- beta v + g, theta <- theta - eta v.
  Averaged over the oscillation the velocity relaxes to g/(1 - beta), so the
  stable flow is gradient flow with P = (1 - beta)/eta; the iteration on a
  quadratic of curvature lambda is stable while eta lambda < 2 + 2 beta, so
  in P's units c = (2 + 2 beta)/(1 - beta) (38 at beta = 0.9).  The flow keeps
  no velocity: its state is the step count.  This is the overdamped limit.
  On a quadratic the iteration's roots are complex once eta lambda >
  (1 - sqrt(beta))^2 (0.0026 at beta = 0.9): it rings, decaying by sqrt(beta)
  per step whatever lambda, and moves along the stiff directions more slowly
  than the flow.  Measured in the central-flows reproduction (eta = 0.2,
  fc-tanh [200, 200] on 1000 digits): the discrete run is 0.78 of its own
  displacement away from the stable flow at step 20, long before the edge,
  and shifting the flow by beta/(1 - beta) = 9 steps leaves it 0.68 away; the
  central flow inherits that gap (a flow of (theta, v) would be needed).
* :class:`Adam` (an extension): m <- beta1 m + (1 - beta1) g, nu <- beta2 nu + (1 - beta2) g^2,
  theta <- theta - eta m_hat / (sqrt(nu_hat) + eps) with bias corrections.
  The EMA m averages to g, so the stable flow is RMSProp's with Adam's
  P = (sqrt(nu_hat) + eps)/eta; with P frozen the EMA momentum is stable while
  lambda_1(P^{-1} H) < (2 + 2 beta1)/(1 - beta1) = 38 at beta1 = 0.9 (Cohen et
  al. 2022), so c = 38.  The flows' nu starts at g_0^2, which is the discrete
  run's bias-corrected nu_hat after its first step (so both start from the same
  P), and relaxes at rate -ln(beta2) with no bias correction (the flows' t is
  large); they carry no m.

The hyper-parameters are validated by the eoslab rule of the same name
(:mod:`eoslab.rules`), so a flow takes the keys of ``[optimizer]``.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from eoslab.errors import ConfigError


@jax.custom_jvp
def root(nu: jax.Array) -> jax.Array:
    """sqrt(nu), whose derivative is 0 where nu = 0 (not inf).

    A parameter whose gradient is identically zero (a weight from a constant
    input pixel) keeps nu = 0 and d nu / dt = 0: the flows' d P = d nu / (2 sqrt(nu))
    is then 0 * inf = NaN with the plain square root, and 0 in the limit.
    """
    return jnp.sqrt(nu)


@root.defjvp
def _root_jvp(primals, tangents):
    (nu,), (dnu,) = primals, tangents
    r = jnp.sqrt(nu)
    return r, jnp.where(nu > 0, dnu / (2 * jnp.where(nu > 0, r, 1.0)), 0.0)


@dataclasses.dataclass(frozen=True)
class GD:
    eta: float
    name: str = "gd"

    @property
    def threshold(self) -> float:
        return 2.0

    def init(self, theta: jax.Array, g0: jax.Array) -> jax.Array:
        return jnp.zeros((1,), theta.dtype)

    flow_init = init

    def P(self, s: jax.Array) -> jax.Array:
        return jnp.full((), 1.0 / self.eta, s.dtype)

    def rate(self, s: jax.Array, g: jax.Array) -> jax.Array:
        return jnp.zeros_like(s)

    def update(self, theta, s, g):
        return theta - self.eta * g, s


@dataclasses.dataclass(frozen=True)
class RMSProp:
    eta: float
    beta2: float = 0.99
    eps: float = 1e-8
    scalar: bool = False
    name: str = "rmsprop"

    @property
    def threshold(self) -> float:
        return 2.0

    def _sq(self, g: jax.Array) -> jax.Array:
        return jnp.sum(g * g, keepdims=True) if self.scalar else g * g

    def init(self, theta: jax.Array, g0: jax.Array) -> jax.Array:
        return self._sq(g0)

    flow_init = init

    def P(self, s: jax.Array) -> jax.Array:
        return (root(s) + self.eps) / self.eta

    def rate(self, s: jax.Array, g: jax.Array) -> jax.Array:
        return -math.log(self.beta2) * (self._sq(g) - s)

    def update(self, theta, s, g):
        s = s + (1.0 - self.beta2) * (self._sq(g) - s)
        return theta - g / self.P(s), s


@dataclasses.dataclass(frozen=True)
class HeavyBall:
    eta: float
    beta: float = 0.9
    name: str = "heavy-ball"

    @property
    def threshold(self) -> float:
        return (2.0 + 2.0 * self.beta) / (1.0 - self.beta)

    def init(self, theta: jax.Array, g0: jax.Array) -> jax.Array:
        return jnp.zeros_like(theta)  # the discrete run's velocity

    def flow_init(self, theta: jax.Array, g0: jax.Array) -> jax.Array:
        return jnp.zeros((1,), theta.dtype)  # the flows keep no velocity

    def P(self, s: jax.Array) -> jax.Array:
        return jnp.full((), (1.0 - self.beta) / self.eta, s.dtype)

    def rate(self, s: jax.Array, g: jax.Array) -> jax.Array:
        return jnp.zeros_like(s)

    def update(self, theta, s, g):
        v = self.beta * s + g
        return theta - self.eta * v, v


@dataclasses.dataclass(frozen=True)
class Adam:
    eta: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    name: str = "adam"

    @property
    def threshold(self) -> float:
        return (2.0 + 2.0 * self.beta1) / (1.0 - self.beta1)

    # state: [nu (n), m (n), t (1)]; the flows use nu and t, the discrete run all three
    def init(self, theta: jax.Array, g0: jax.Array) -> jax.Array:
        n = theta.shape[0]
        return jnp.concatenate([jnp.zeros(n, theta.dtype), jnp.zeros(n, theta.dtype), jnp.zeros(1, theta.dtype)])

    def flow_init(self, theta: jax.Array, g0: jax.Array) -> jax.Array:
        n = theta.shape[0]
        return jnp.concatenate([g0 * g0, jnp.zeros(n, theta.dtype), jnp.full((1,), 1e9, theta.dtype)])

    def _split(self, s):
        n = (s.shape[0] - 1) // 2
        return s[:n], s[n:2 * n], s[2 * n:]

    def P(self, s: jax.Array) -> jax.Array:
        nu, _, t = self._split(s)
        nu_hat = nu / (1.0 - self.beta2 ** jnp.maximum(t, 1.0))
        return (root(nu_hat) + self.eps) / self.eta

    def rate(self, s: jax.Array, g: jax.Array) -> jax.Array:
        nu, m, t = self._split(s)
        # nu relaxes to g^2 at the EMA's rate; t advances one per unit time; the flows carry no m
        return jnp.concatenate([-math.log(self.beta2) * (g * g - nu), jnp.zeros_like(m), jnp.ones_like(t)])

    def update(self, theta, s, g):
        nu, m, t = self._split(s)
        t = t + 1.0
        m = self.beta1 * m + (1.0 - self.beta1) * g
        nu = self.beta2 * nu + (1.0 - self.beta2) * g * g
        m_hat = m / (1.0 - self.beta1 ** t)
        nu_hat = nu / (1.0 - self.beta2 ** t)
        return theta - self.eta * m_hat / (jnp.sqrt(nu_hat) + self.eps), jnp.concatenate([nu, m, t])


FLOW_RULES = ("gd", "rmsprop", "heavy-ball", "adam")


def dynamics_for(name: str, eta: float, **hyper) -> GD | RMSProp | HeavyBall | Adam:
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
    if name == "heavy-ball":
        return HeavyBall(float(eta), float(hp.beta))
    if name == "adam":
        return Adam(float(eta), float(hp.beta1), float(hp.beta2), float(hp.eps))
    if getattr(hp, "momentum", 0.0):
        raise ConfigError("the RMSProp flow has no momentum; drop optimizer.momentum.")
    return RMSProp(float(eta), float(hp.beta2), float(hp.eps), scalar)
