"""The optimizer as a flow sees it: a preconditioner P(s) of a state s, the state's rate, and a threshold.

A flow needs, of an optimizer with state s:

* ``P(s)``: the preconditioner (step size included), positive, a scalar or
  one entry per parameter; the optimizer is stable while
  lambda_1(P^{-1} H) < ``threshold`` c, that is while the slack
  U^T (c P - H) U is PSD on the top eigenvectors;
* ``theta_rate(s, gbar)``: dtheta/dt.  First-order rules: -P(s)^{-1} gbar;
  momentum rules: -P(s)^{-1} m, with m the state's momentum;
* ``rate(s, g, gbar)``: ds/dt (one unit of time per step) for the gradient g
  and the averaged gradient gbar.  On the central flow gbar = g +
  1/2 grad <H, Sigma> (the oscillation's mean effect on the gradient) and the
  second moments see g^2 plus the oscillation's 1/2 d^2 r/dg^2 [H Sigma H];
  on the stable flow gbar = g;
* ``momentum``: whether the state carries a velocity.  The flows then take
  semi-implicit (symplectic) Euler substeps, the state first and theta with
  the new state, so that Sigma, which enters through the velocity, acts on
  theta within the substep;
* ``fastest_rate(lam, s)``: the largest rate of the flow's linearisation at
  lambda_1(P^{-1} H) = lam and flow state s, which sets the Euler substeps
  (first order: lam; momentum: sqrt(kappa lam), see :class:`HeavyBall`, with
  Adam's bias-corrected kappa / (1 - beta1^t) early on);
* ``init(theta, g0)`` and ``update(theta, s, g) -> (theta', s')``: the
  discrete optimizer itself (the state updates first, as in optax and PyTorch);
  ``flow_init(theta, g0)``: the flows' initial state.

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
  In EMA form m = (1 - beta) v: m <- m + (1 - beta)(g - m), theta <- theta -
  P^{-1} m with P = (1 - beta)/eta.  The flows carry m:

      dm/dt = kappa (gbar - m),   dtheta/dt = -P^{-1} m,   kappa = -ln(beta),

  the EMA's own relaxation rate.  On a quadratic of curvature lambda
  (a = lambda/P) this is theta'' + kappa theta' + kappa a theta = 0, whose
  roots are complex once a > kappa/4, ringing at sqrt(kappa a) per unit and
  decaying at kappa/2 per unit; the iteration's roots are complex once
  eta lambda > (1 - sqrt(beta))^2, the same onset to first order in 1 - beta
  (a = 0.0263 and 0.0263 at beta = 0.9), and decay by sqrt(beta) per step,
  the same kappa/2.  The iteration is stable while eta lambda < 2 + 2 beta,
  so c = (2 + 2 beta)/(1 - beta) (38 at beta = 0.9); the flow, a damped
  oscillator, is stable at any a, and the central flow's Sigma holds it at c.
  At the edge (a = 38, beta = 0.9) the flow rings at sqrt(kappa a) = 2.0 per
  unit: a few Euler substeps per unit (the first-order flow needed 77).
  Sigma acts on theta only through m, so when the flow reaches the edge with
  m pushing into it, the first substep's X is large (it stops the push, of
  order 1/(kappa dt) times the X that then holds the flow there): an
  inelastic arrival.  The flows start with m_0 = (1 - beta kappa/(1 - beta)) g_0,
  with which, for a constant gradient, the flow passes through every iterate
  (the iteration starts at v = 0 and lags gradient flow by beta/(1 - beta)
  steps; so does the flow).  Measured in the central-flows reproduction
  (eta = 0.2, fc-tanh [200, 200] on 1000 digits): up to the edge the flows
  stay within 0.045-0.062 of the run's own displacement from it; a flow of
  theta alone (P = (1 - beta)/eta, no m) was 0.78 away at step 20, since the
  iteration rings in its stiff directions and such a flow cannot.
* :class:`Adam` (an extension): m <- beta1 m + (1 - beta1) g, nu <- beta2 nu + (1 - beta2) g^2,
  theta <- theta - eta m_hat / (sqrt(nu_hat) + eps) with bias corrections.
  P = (sqrt(nu_hat) + eps)/eta; with P frozen the EMA momentum is stable
  while lambda_1(P^{-1} H) < (2 + 2 beta1)/(1 - beta1) = 38 at beta1 = 0.9
  (Cohen et al. 2022), so c = 38.  The flows carry m like heavy ball's
  (kappa1 = -ln beta1, dtheta/dt = -P^{-1} m_hat) and nu like RMSProp's (rate
  -ln(beta2)(g^2 - nu)), and t (rate 1) with both bias corrections,
  m_hat = m / (1 - beta1^t), nu_hat = nu / (1 - beta2^t).  They start from the
  state the discrete run's first step applies: t = 1, m = (1 - beta1) g_0,
  nu = (1 - beta2) g_0^2 (m_hat = g_0, nu_hat = g_0^2), so both start from the
  same P and direction, and for a constant gradient the flow passes through
  every iterate.  Early on the bias-corrected EMAs relax at about 1/t, which
  sets the first units' substeps.  Sigma acts on the slack through nu (as
  RMSProp's, at once) and through m.

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


class _FirstOrder:
    """theta moves with the (averaged) gradient: dtheta/dt = -P(s)^{-1} gbar."""
    momentum = False

    def theta_rate(self, s: jax.Array, gbar: jax.Array) -> jax.Array:
        return -gbar / self.P(s)

    def fastest_rate(self, lam: float, s: jax.Array) -> float:
        return lam


class _Momentum:
    """theta moves with the momentum m (an EMA of gbar at rate kappa): dtheta/dt = -P(s)^{-1} m."""
    momentum = True

    def theta_rate(self, s: jax.Array, gbar: jax.Array) -> jax.Array:
        return -self._m(s) / self.P(s)

    def fastest_rate(self, lam: float, s: jax.Array) -> float:
        """max |z| over the roots of z^2 + k z + k a = 0, a <= lam (the linearised flow), k the momentum's rate."""
        k = self._kappa_now(s)
        return max(math.sqrt(k * max(lam, 0.0)), k)

    def _kappa_now(self, s: jax.Array) -> float:
        return self.kappa


@dataclasses.dataclass(frozen=True)
class GD(_FirstOrder):
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

    def rate(self, s: jax.Array, g: jax.Array, gbar: jax.Array | None = None) -> jax.Array:
        return jnp.zeros_like(s)

    def update(self, theta, s, g):
        return theta - self.eta * g, s


@dataclasses.dataclass(frozen=True)
class RMSProp(_FirstOrder):
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

    def rate(self, s: jax.Array, g: jax.Array, gbar: jax.Array | None = None) -> jax.Array:
        return -math.log(self.beta2) * (self._sq(g) - s)

    def update(self, theta, s, g):
        s = s + (1.0 - self.beta2) * (self._sq(g) - s)
        return theta - g / self.P(s), s


@dataclasses.dataclass(frozen=True)
class HeavyBall(_Momentum):
    eta: float
    beta: float = 0.9
    name: str = "heavy-ball"

    @property
    def threshold(self) -> float:
        return (2.0 + 2.0 * self.beta) / (1.0 - self.beta)

    @property
    def kappa(self) -> float:
        return -math.log(self.beta)

    def init(self, theta: jax.Array, g0: jax.Array) -> jax.Array:
        return jnp.zeros_like(theta)  # the discrete run's velocity v

    def flow_init(self, theta: jax.Array, g0: jax.Array) -> jax.Array:
        """m_0 = (1 - beta kappa / (1 - beta)) g_0 (0.0518 g_0 at beta = 0.9): the start from which, for a constant
        gradient g, the flow passes through every iterate, theta(t) = theta_t = theta_0 - P^{-1} g (t - beta (1 -
        beta^t)/(1 - beta)) (the flow's m(t) = g + (m_0 - g) beta^t, integrated)."""
        return (1.0 - self.beta * self.kappa / (1.0 - self.beta)) * g0

    def _m(self, s: jax.Array) -> jax.Array:
        return s

    def P(self, s: jax.Array) -> jax.Array:
        return jnp.full((), (1.0 - self.beta) / self.eta, s.dtype)

    def rate(self, s: jax.Array, g: jax.Array, gbar: jax.Array | None = None) -> jax.Array:
        return self.kappa * ((g if gbar is None else gbar) - s)

    def update(self, theta, s, g):
        v = self.beta * s + g
        return theta - self.eta * v, v


@dataclasses.dataclass(frozen=True)
class Adam(_Momentum):
    eta: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    name: str = "adam"

    @property
    def threshold(self) -> float:
        return (2.0 + 2.0 * self.beta1) / (1.0 - self.beta1)

    @property
    def kappa(self) -> float:
        return -math.log(self.beta1)

    # state: [nu (n), m (n), t (1)]
    def init(self, theta: jax.Array, g0: jax.Array) -> jax.Array:
        n = theta.shape[0]
        return jnp.concatenate([jnp.zeros(n, theta.dtype), jnp.zeros(n, theta.dtype), jnp.zeros(1, theta.dtype)])

    def flow_init(self, theta: jax.Array, g0: jax.Array) -> jax.Array:
        # the state the first step applies: t = 1, m_hat = g_0, nu_hat = g_0^2
        return jnp.concatenate([(1.0 - self.beta2) * g0 * g0, (1.0 - self.beta1) * g0, jnp.ones(1, theta.dtype)])

    def _split(self, s):
        n = (s.shape[0] - 1) // 2
        return s[:n], s[n:2 * n], s[2 * n:]

    def _m(self, s: jax.Array) -> jax.Array:
        """m_hat = m / (1 - beta1^t)."""
        _, m, t = self._split(s)
        return m / (1.0 - self.beta1 ** jnp.maximum(t, 1.0))

    def _kappa_now(self, s: jax.Array) -> float:
        """The bias-corrected EMAs' rate, kappa / (1 - beta^t): about 1/t while t << 1/kappa (a running mean)."""
        t = max(float(s[-1]), 1.0)
        return max(self.kappa / (1.0 - self.beta1 ** t), -math.log(self.beta2) / (1.0 - self.beta2 ** t))

    def P(self, s: jax.Array) -> jax.Array:
        nu, _, t = self._split(s)
        nu_hat = nu / (1.0 - self.beta2 ** jnp.maximum(t, 1.0))
        return (root(nu_hat) + self.eps) / self.eta

    def rate(self, s: jax.Array, g: jax.Array, gbar: jax.Array | None = None) -> jax.Array:
        nu, m, t = self._split(s)
        gbar = g if gbar is None else gbar
        # nu relaxes to g^2 and m to gbar at the EMAs' rates; t advances one per unit time
        return jnp.concatenate([-math.log(self.beta2) * (g * g - nu), self.kappa * (gbar - m), jnp.ones_like(t)])

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
