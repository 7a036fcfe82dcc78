"""Gradient descent and momentum: P = I / eta, a scalar.

=============  ======================================  ==========================
rule           update (optax convention)               threshold of eta * lambda
=============  ======================================  ==========================
gd             theta -= eta g                          2
heavy-ball     v = beta v + g;  theta -= eta v         2 + 2 beta
nesterov       v = beta v + g;  theta -= eta (g + beta v)
                                                       (2 + 2 beta) / (1 + 2 beta)
=============  ======================================  ==========================

On L = lambda theta^2 / 2 each is a linear recurrence (:mod:`eoslab.thresholds`):
GD's factor 1 - eta lambda leaves the unit disc at eta lambda = 2; heavy ball's
characteristic polynomial z^2 - (1 + beta - eta lambda) z + beta has the root
z = -1 at eta lambda = 2 + 2 beta (the product of its roots is beta < 1, so
complex roots never leave the disc); Nesterov's
z^2 - (1 + beta)(1 - eta lambda) z + beta (1 - eta lambda) has it at
eta lambda (1 + 2 beta) = 2 + 2 beta.

>>> from eoslab.rules import get_rule
>>> rule = get_rule("heavy-ball")
>>> rule.threshold(0.5, rule.hyper(beta=0.9)), rule.raw_threshold(0.5, rule.hyper(beta=0.9))
(3.8, 7.6)
"""
from __future__ import annotations

import dataclasses

import jax
import optax

from eoslab import thresholds
from eoslab.rules.base import Rule, check_decay, find_state


class GD(Rule):
    """theta <- theta - eta g; threshold eta * lambda_1 < 2."""
    name = "gd"
    doc = "gradient descent"

    def transform(self, lr, hp):
        return optax.sgd(lr)

    def threshold(self, lr, hp):
        return 2.0


@dataclasses.dataclass(frozen=True)
class MomentumHyper:
    beta: float = 0.9  # momentum

    def check(self, lr):
        check_decay("beta", self.beta)


class HeavyBall(Rule):
    """v <- beta v + g, theta <- theta - eta v (``optax.sgd(momentum=beta)``); threshold 2 + 2 beta."""
    name = "heavy-ball"
    doc = "Polyak heavy-ball momentum"
    Hyper = MomentumHyper

    def transform(self, lr, hp):
        return optax.sgd(lr, momentum=hp.beta)

    def momentum(self, opt_state, grad, lr, hp):
        """m_t = v_t, the trace."""
        return find_state(opt_state, optax.TraceState).trace

    def threshold(self, lr, hp):
        return thresholds.heavy_ball_threshold(1.0, hp.beta)


class Nesterov(Rule):
    """v <- beta v + g, theta <- theta - eta (g + beta v); threshold (2 + 2 beta) / (1 + 2 beta)."""
    name = "nesterov"
    doc = "Nesterov momentum"
    Hyper = MomentumHyper

    def transform(self, lr, hp):
        return optax.sgd(lr, momentum=hp.beta, nesterov=True)

    def momentum(self, opt_state, grad, lr, hp):
        """m_t = g_t + beta v_t."""
        v = find_state(opt_state, optax.TraceState).trace
        return jax.tree_util.tree_map(lambda g, x: g + hp.beta * x, grad, v)

    def threshold(self, lr, hp):
        return thresholds.nesterov_threshold(1.0, hp.beta)
