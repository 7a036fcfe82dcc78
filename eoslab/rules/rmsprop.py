"""RMSProp: P_t from an EMA of squared gradients, optional heavy-ball momentum on the preconditioned step.

``rmsprop`` (``optax.rmsprop`` with ``eps_in_sqrt=False``, PyTorch's placement,
initial scale 0, no bias correction; ``momentum`` = beta)::

    nu_t = b2 nu + (1 - b2) g^2,   u_t = g / (sqrt(nu_t) + eps)
    no momentum:   theta -= eta u_t
    momentum beta: b_t = beta b - eta u_t (optax ``trace``);  theta += b_t

so P_t = (sqrt(nu_t) + eps) / eta and m_t = g (threshold 2, as GD), or with
momentum m_t = -P_t b_t, which for a frozen P is the heavy-ball buffer
beta m + g (threshold 2 + 2 beta, as heavy ball: the characteristic
polynomial z^2 - (1 + beta - lambda) z + beta has the root -1 at
lambda = 2 + 2 beta).

``rmsprop-eps-in-sqrt`` (``optax.rmsprop``'s default placement, eps under the root):
u_t = g / sqrt(nu_t + eps), so P_t = sqrt(nu_t + eps) / eta; thresholds as ``rmsprop``.

``frozen-rmsprop``: nu stops updating after ``freeze_step`` updates.

>>> from eoslab.rules import get_rule
>>> rule = get_rule("rmsprop")
>>> rule.threshold(1e-3, rule.hyper(momentum=0.5))
3.0
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from eoslab import thresholds
from eoslab.rules.base import (FreezeStep, PyTree, Rule, check_decay, check_nonnegative, find_state,
                               frozen_second_moment, positive)


@dataclasses.dataclass(frozen=True)
class RmsHyper:
    beta2: float = 0.999  # second-moment decay
    eps: float = 1e-8  # added to the root of the second moment
    momentum: float = 0.0  # heavy-ball momentum on the preconditioned step

    def check(self, lr):
        check_decay("beta2", self.beta2)
        check_nonnegative("eps", self.eps)
        check_decay("momentum", self.momentum)


def rms_p(nu, lr, eps):
    """P = (sqrt(nu) + eps) / lr."""
    return jax.tree_util.tree_map(lambda n: positive((jnp.sqrt(n) + eps) / lr), nu)


def rms_p_eps_in_sqrt(nu, lr, eps):
    """P = sqrt(nu + eps) / lr."""
    return jax.tree_util.tree_map(lambda n: positive(jnp.sqrt(n + eps) / lr), nu)


def _heavy_ball_momentum(opt_state, grad, P):
    """m_t = -P_t b_t from the trace buffer b_t, or g without momentum."""
    trace = [x for x in jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, optax.TraceState))
             if isinstance(x, optax.TraceState)]
    if not trace:
        return grad
    return jax.tree_util.tree_map(lambda b, p: -p * b, trace[0].trace, P)


class RMSProp(Rule):
    """RMSProp (``optax.rmsprop``, eps outside the root); threshold 2 + 2 momentum."""
    name = "rmsprop"
    doc = "RMSProp, eps outside the square root, optional heavy-ball momentum"
    Hyper = RmsHyper
    adaptive = True
    state_type = optax.ScaleByRmsState

    def transform(self, lr, hp):
        return optax.rmsprop(lr, decay=hp.beta2, eps=hp.eps, eps_in_sqrt=False,
                             momentum=hp.momentum if hp.momentum else None)

    def preconditioner(self, opt_state, lr, hp):
        return rms_p(find_state(opt_state, self.state_type).nu, lr, hp.eps)

    def momentum(self, opt_state, grad, lr, hp):
        return _heavy_ball_momentum(opt_state, grad, self.preconditioner(opt_state, lr, hp))


    def threshold(self, lr, hp):
        return thresholds.heavy_ball_threshold(1.0, hp.momentum)


class RMSPropEpsInSqrt(RMSProp):
    """RMSProp with eps under the root (``optax.rmsprop``'s default); thresholds as RMSProp's."""
    name = "rmsprop-eps-in-sqrt"
    doc = "RMSProp, eps under the square root (optax's default), optional heavy-ball momentum"

    def transform(self, lr, hp):
        return optax.rmsprop(lr, decay=hp.beta2, eps=hp.eps, eps_in_sqrt=True,
                             momentum=hp.momentum if hp.momentum else None)

    def preconditioner(self, opt_state, lr, hp):
        return rms_p_eps_in_sqrt(find_state(opt_state, self.state_type).nu, lr, hp.eps)


class FrozenRmsState(NamedTuple):
    count: jax.Array
    nu: PyTree


def scale_by_frozen_rms(decay: float, eps: float, freeze_step: int) -> optax.GradientTransformation:
    """``scale_by_rms(eps_in_sqrt=False)`` whose nu stops updating after ``freeze_step`` updates."""
    def init(params):
        return FrozenRmsState(jnp.zeros([], jnp.int32), jax.tree_util.tree_map(jnp.zeros_like, params))

    def update(updates, state, params=None):
        del params
        count = state.count + 1
        nu = frozen_second_moment(decay, count <= freeze_step, updates, state.nu)
        out = jax.tree_util.tree_map(lambda g, n: g / (jnp.sqrt(n) + eps), updates, nu)
        return out, FrozenRmsState(count, nu)

    return optax.GradientTransformation(init, update)


@dataclasses.dataclass(frozen=True)
class FrozenRmsHyper(FreezeStep, RmsHyper):
    """Rms's hyper-parameters and ``freeze_step``."""


class FrozenRMSProp(RMSProp):
    """RMSProp whose second moment freezes after ``freeze_step`` updates; threshold as RMSProp's."""
    name = "frozen-rmsprop"
    doc = "RMSProp whose preconditioner freezes after freeze_step steps"
    Hyper = FrozenRmsHyper
    state_type = FrozenRmsState

    def transform(self, lr, hp):
        return optax.chain(scale_by_frozen_rms(hp.beta2, hp.eps, hp.freeze_step), optax.scale_by_learning_rate(lr),
                           optax.trace(decay=hp.momentum) if hp.momentum else optax.identity())
