"""Adam and its relatives: a diagonal P_t from the second moment, EMA momentum on top.

``adam`` (``optax.adam``: ``scale_by_adam`` then ``scale_by_learning_rate``)::

    mu_t = b1 mu + (1 - b1) g,   nu_t = b2 nu + (1 - b2) g^2,   t = count after the update
    theta -= eta (mu_t / (1 - b1^t)) / (sqrt(nu_t / (1 - b2^t)) + eps)

so with m_t = mu_t the update is theta -= P_t^{-1} m_t with
P_t = (1 - b1^t)(sqrt(v_hat_t) + eps) / eta (Cohen et al. 2022's P~_t / eta).
With P frozen, m is an EMA of the gradients: along an eigenvector of P^{-1} H
with eigenvalue lambda, a_{t+1} = a_t - mu_t, mu_t = b1 mu_{t-1} + (1 - b1) lambda a_t,
i.e. heavy ball with step (1 - b1) and momentum b1: characteristic polynomial
z^2 - (1 + b1 - (1 - b1) lambda) z + b1, root z = -1 at
lambda = (2 + 2 b1) / (1 - b1): 38 at b1 = 0.9, 2 at b1 = 0 (the roots'
product is b1 < 1, so complex roots never leave the unit disc).

``adamw`` (``optax.adamw``: ``scale_by_adam``, ``add_decayed_weights(wd)``,
scale by eta): theta -= P_t^{-1} m_t + eta wd theta, P_t as for Adam.  The
same recurrence with a_{t+1} = (1 - c) a_t - mu_t, c = eta wd, gives
z (z - b1) = (1 - c)(z - b1) - (1 - b1) lambda z, root -1 at
lambda = (2 - eta wd)(1 + b1) / (1 - b1) (the roots' product b1 (1 - c) < 1).

``nadam`` (``optax.nadam``, Dozat 2016 as optax writes it)::

    theta -= eta (b1 mu_t / (1 - b1^(t+1)) + (1 - b1) g_t / (1 - b1^t)) / (sqrt(v_hat_t) + eps)

so with P_t = (1 - b1^(t+1))(sqrt(v_hat_t) + eps) / eta the momentum is
m_t = b1 mu_t + (1 - b1) g_t (1 - b1^(t+1)) / (1 - b1^t) -> b1 mu_t + (1 - b1) g_t.
With P frozen, a_{t+1} = a_t - b1 mu_t - (1 - b1) lambda a_t: Nesterov momentum
with step (1 - b1) and momentum b1, characteristic polynomial
z^2 - (1 + b1)(1 - s) z + b1 (1 - s), s = (1 - b1) lambda, root -1 at
s (1 + 2 b1) = 2 + 2 b1: lambda = (2 + 2 b1) / ((1 + 2 b1)(1 - b1)) (13.57 at
b1 = 0.9, 2 at b1 = 0).

``frozen-adam``: as ``adam`` but the second moment (and its bias correction)
stops updating after ``freeze_step`` updates; the first-moment correction
1 - b1^t keeps running, so P_t -> (sqrt(v_hat_freeze) + eps) / eta.  Threshold
as Adam's, exact in the limit of a frozen P.

>>> from eoslab.rules import get_rule
>>> rule = get_rule("adam")
>>> round(rule.threshold(1e-3, rule.hyper(beta1=0.9)), 6)
38.0
>>> rule = get_rule("nadam")
>>> round(rule.threshold(1e-3, rule.hyper(beta1=0.9)), 4)
13.5714
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from eoslab import thresholds
from eoslab.errors import ConfigError
from eoslab.rules.base import (FreezeStep, PyTree, Rule, check_decay, check_nonnegative, find_state,
                               frozen_second_moment, positive)


@dataclasses.dataclass(frozen=True)
class AdamHyper:
    beta1: float = 0.9  # first-moment decay
    beta2: float = 0.999  # second-moment decay
    eps: float = 1e-8  # added to the root of the second moment

    def check(self, lr):
        check_decay("beta1", self.beta1)
        check_decay("beta2", self.beta2)
        check_nonnegative("eps", self.eps)


def adam_p(count, nu, lr, beta1, beta2, eps, nu_count=None, lead: int = 0):
    """P = (1 - b1^(t + lead))(sqrt(nu / (1 - b2^s)) + eps) / lr, t = count (>= 1), s = nu_count or t."""
    t = jnp.maximum(count, 1)
    s = t if nu_count is None else jnp.maximum(nu_count, 1)
    c1, c2 = 1 - beta1 ** (t + lead), 1 - beta2 ** s  # as optax.tree.bias_correction
    return jax.tree_util.tree_map(
        lambda n: positive(c1.astype(n.dtype) * (jnp.sqrt(n / c2.astype(n.dtype)) + eps) / lr), nu)


class Adam(Rule):
    """Adam with bias correction (``optax.adam``); threshold (2 + 2 beta1) / (1 - beta1)."""
    name = "adam"
    doc = "Adam with bias correction (optax.adam)"
    Hyper = AdamHyper
    adaptive = True

    def transform(self, lr, hp):
        return optax.chain(optax.scale_by_adam(b1=hp.beta1, b2=hp.beta2, eps=hp.eps), optax.scale_by_learning_rate(lr))

    def preconditioner(self, opt_state, lr, hp):
        s = find_state(opt_state, optax.ScaleByAdamState)
        return adam_p(s.count, s.nu, lr, hp.beta1, hp.beta2, hp.eps)

    def momentum(self, opt_state, grad, lr, hp):
        """m_t of theta -= P_t^{-1} m_t: the first moment mu_t."""
        return find_state(opt_state, optax.ScaleByAdamState).mu


    def threshold(self, lr, hp):
        return thresholds.ema_momentum_threshold(1.0, hp.beta1)


@dataclasses.dataclass(frozen=True)
class AdamWHyper(AdamHyper):
    weight_decay: float = 0.0  # decoupled weight decay

    def check(self, lr):
        super().check(lr)
        check_nonnegative("weight_decay", self.weight_decay)
        if not lr * self.weight_decay < 2:
            raise ConfigError(f"optimizer.weight_decay={self.weight_decay!r} times optimizer.lr={lr!r} must be "
                              f"below 2 (else the decay alone diverges).")


class AdamW(Adam):
    """AdamW (``optax.adamw``): theta -= P_t^{-1} m_t + eta wd theta; threshold (2 - eta wd)(1 + b1)/(1 - b1)."""
    name = "adamw"
    doc = "AdamW, decoupled weight decay (optax.adamw)"
    Hyper = AdamWHyper

    def transform(self, lr, hp):
        return optax.chain(optax.scale_by_adam(b1=hp.beta1, b2=hp.beta2, eps=hp.eps),
                           optax.add_decayed_weights(hp.weight_decay), optax.scale_by_learning_rate(lr))

    def decoupled(self, params, lr, hp):
        """The part of the update outside P^{-1} m: -eta wd theta."""
        return jax.tree_util.tree_map(lambda p: -lr * hp.weight_decay * p, params)


    def threshold(self, lr, hp):
        return (2.0 - lr * hp.weight_decay) * (1.0 + hp.beta1) / (1.0 - hp.beta1)


class NAdam(Adam):
    """NAdam (``optax.nadam``); threshold (2 + 2 b1) / ((1 + 2 b1)(1 - b1))."""
    name = "nadam"
    doc = "NAdam, Nesterov momentum in Adam (optax.nadam)"

    def transform(self, lr, hp):
        return optax.nadam(lr, b1=hp.beta1, b2=hp.beta2, eps=hp.eps)

    def preconditioner(self, opt_state, lr, hp):
        s = find_state(opt_state, optax.ScaleByAdamState)
        return adam_p(s.count, s.nu, lr, hp.beta1, hp.beta2, hp.eps, lead=1)

    def momentum(self, opt_state, grad, lr, hp):
        """m_t = b1 mu_t + (1 - b1) g_t (1 - b1^(t+1)) / (1 - b1^t)."""
        s = find_state(opt_state, optax.ScaleByAdamState)
        t = jnp.maximum(s.count, 1)
        r = (1 - hp.beta1 ** (t + 1)) / (1 - hp.beta1 ** t)
        return jax.tree_util.tree_map(lambda m, g: hp.beta1 * m + (1 - hp.beta1) * r.astype(g.dtype) * g, s.mu, grad)

    def threshold(self, lr, hp):
        b1 = hp.beta1
        return (2.0 + 2.0 * b1) / ((1.0 + 2.0 * b1) * (1.0 - b1))


class FrozenAdamState(NamedTuple):
    count: jax.Array  # updates so far
    mu: PyTree
    nu: PyTree  # frozen after freeze_step updates


def scale_by_frozen_adam(b1: float, b2: float, eps: float, freeze_step: int) -> optax.GradientTransformation:
    """``scale_by_adam`` whose second moment nu (and its bias correction) stops after ``freeze_step`` updates."""
    def init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return FrozenAdamState(jnp.zeros([], jnp.int32), zeros, zeros)

    def update(updates, state, params=None):
        del params
        count = state.count + 1
        mu = jax.tree_util.tree_map(lambda g, m: b1 * m + (1 - b1) * g, updates, state.mu)
        nu = frozen_second_moment(b2, count <= freeze_step, updates, state.nu)
        s = jnp.minimum(count, freeze_step)
        c1, c2 = 1 - b1 ** count, 1 - b2 ** s
        out = jax.tree_util.tree_map(
            lambda m, n: (m / c1.astype(m.dtype)) / (jnp.sqrt(n / c2.astype(n.dtype)) + eps), mu, nu)
        return out, FrozenAdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


@dataclasses.dataclass(frozen=True)
class FrozenAdamHyper(FreezeStep, AdamHyper):
    """Adam's hyper-parameters and ``freeze_step``."""


class FrozenAdam(Adam):
    """Adam whose second moment freezes after ``freeze_step`` updates; threshold as Adam's."""
    name = "frozen-adam"
    doc = "Adam whose preconditioner freezes after freeze_step steps"
    Hyper = FrozenAdamHyper

    def transform(self, lr, hp):
        return optax.chain(scale_by_frozen_adam(hp.beta1, hp.beta2, hp.eps, hp.freeze_step),
                           optax.scale_by_learning_rate(lr))

    def preconditioner(self, opt_state, lr, hp):
        s = find_state(opt_state, FrozenAdamState)
        return adam_p(s.count, s.nu, lr, hp.beta1, hp.beta2, hp.eps, nu_count=jnp.minimum(s.count, hp.freeze_step))

    def momentum(self, opt_state, grad, lr, hp):
        return find_state(opt_state, FrozenAdamState).mu
