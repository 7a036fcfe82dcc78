"""Stability thresholds of update rules on a quadratic.

On L(theta) = 0.5 * lambda * theta^2 (or along one eigenvector of H), each rule
below is a linear recurrence; it converges iff lambda (the eigenvalue of H, or
of P^{-1} H for a preconditioned rule with a frozen preconditioner P) is
below the rule's threshold.  ``edge ratio = effective sharpness / threshold``.

Update conventions (those of optax and PyTorch), with g_t = grad L(theta_t):

* ``gd``:          theta <- theta - eta g.                        lambda < 2 / eta
* ``heavy-ball``:  v <- beta v + g;  theta <- theta - eta v.      lambda < (2 + 2 beta) / eta
* ``nesterov``:    v <- beta v + g;  theta <- theta - eta (g + beta v).
                                                                  lambda < (2 + 2 beta) / ((1 + 2 beta) eta)
* ``ema-momentum`` (Adam's first moment, frozen preconditioner):
                   m <- beta1 m + (1 - beta1) g;  theta <- theta - eta m.
                                                                  lambda < (2 + 2 beta1) / ((1 - beta1) eta)
  i.e. 38 / eta at beta1 = 0.9 (Cohen et al. 2022).  With beta1 = 0 it is 2 / eta.

Derivations: heavy ball gives the characteristic polynomial
z^2 - (1 + beta - eta lambda) z + beta, whose roots leave the unit disc
through z = -1 when eta lambda = 2 + 2 beta.  Nesterov gives
z^2 - (1 + beta)(1 - eta lambda) z + beta (1 - eta lambda), root -1 at
eta lambda (1 + 2 beta) = 2 + 2 beta.  EMA momentum is heavy ball with
step eta (1 - beta1).
"""
from __future__ import annotations

from eoslab.errors import ConfigError

RULES = ("gd", "heavy-ball", "nesterov", "ema-momentum")


def _check(eta: float, beta: float) -> None:
    if not eta > 0:
        raise ConfigError(f"step size eta={eta!r} must be > 0.")
    if not 0.0 <= beta < 1.0:
        raise ConfigError(f"momentum beta={beta!r} must lie in [0, 1).")


def gd_threshold(eta: float) -> float:
    """2 / eta."""
    _check(eta, 0.0)
    return 2.0 / eta


def heavy_ball_threshold(eta: float, beta: float) -> float:
    """(2 + 2 beta) / eta."""
    _check(eta, beta)
    return (2.0 + 2.0 * beta) / eta


def nesterov_threshold(eta: float, beta: float) -> float:
    """(2 + 2 beta) / ((1 + 2 beta) eta)."""
    _check(eta, beta)
    return (2.0 + 2.0 * beta) / ((1.0 + 2.0 * beta) * eta)


def ema_momentum_threshold(eta: float, beta1: float) -> float:
    """(2 + 2 beta1) / ((1 - beta1) eta): 38 / eta for Adam's beta1 = 0.9."""
    _check(eta, beta1)
    return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * eta)


def threshold(rule: str, eta: float, beta: float = 0.0) -> float:
    """Threshold of ``rule`` (one of :data:`RULES`) for the (effective) sharpness."""
    table = {
        "gd": lambda: gd_threshold(eta),
        "heavy-ball": lambda: heavy_ball_threshold(eta, beta),
        "nesterov": lambda: nesterov_threshold(eta, beta),
        "ema-momentum": lambda: ema_momentum_threshold(eta, beta),
    }
    if rule not in table:
        raise ConfigError(f"unknown update rule {rule!r} for a threshold; choose one of {', '.join(RULES)}.")
    return table[rule]()


def edge_ratio(effective_sharpness, threshold_value):
    """effective sharpness / threshold: 1 means at the edge of stability."""
    return effective_sharpness / threshold_value
