"""Adagrad: P_t from the running sum of squared gradients.

``adagrad`` (``optax.adagrad``, initial accumulator 0.1)::

    S_t = S + g^2,   theta -= eta g / sqrt(S_t + eps)   (0 where S_t = 0)

so P_t = sqrt(S_t + eps) / eta and m_t = g; with P frozen this is GD in the
metric P, threshold 2.  P_t only grows, so the effective sharpness
lambda_1(P_t^{-1} H) falls unless H grows faster.

>>> from eoslab.rules import get_rule
>>> rule = get_rule("adagrad")
>>> rule.threshold(0.1, rule.hyper())
2.0
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from eoslab.rules.base import Rule, check_nonnegative, find_state, positive


@dataclasses.dataclass(frozen=True)
class AdagradHyper:
    eps: float = 1e-8  # added to the accumulator under the root

    def check(self, lr):
        check_nonnegative("eps", self.eps)


class Adagrad(Rule):
    """Adagrad (``optax.adagrad``); threshold 2."""
    name = "adagrad"
    doc = "Adagrad (optax.adagrad)"
    Hyper = AdagradHyper
    adaptive = True

    def transform(self, lr, hp):
        return optax.adagrad(lr, eps=hp.eps)

    def preconditioner(self, opt_state, lr, hp):
        s = find_state(opt_state, optax.ScaleByRssState)
        return jax.tree_util.tree_map(lambda a: positive(jnp.sqrt(a + hp.eps) / lr), s.sum_of_squares)

    def momentum(self, opt_state, grad, lr, hp):
        return grad


    def threshold(self, lr, hp):
        return 2.0
