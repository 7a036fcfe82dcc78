"""Update rules by name: optax transforms plus each rule's preconditioner and threshold.

Every rule is written theta <- theta - P_t^{-1} m_t (DESIGN.md, "edge ratio").
For the momentum-SGD family P_t = I / eta is a scalar, so the effective
sharpness lambda_1(P^{-1} H) = eta * lambda_1(H) and the raw-sharpness
threshold is the effective one divided by eta:

=============  ======================================  =====================  ==================
rule           update (optax convention)               effective threshold    raw threshold
=============  ======================================  =====================  ==================
gd             theta -= eta g                          2                      2 / eta
heavy-ball     v = beta v + g;  theta -= eta v         2 + 2 beta             (2 + 2 beta) / eta
nesterov       v = beta v + g;  theta -= eta (g + beta v)
                                                       (2 + 2 beta)/(1+2beta) (2+2beta)/((1+2beta) eta)
=============  ======================================  =====================  ==================

See :mod:`eoslab.thresholds` for the derivations.  Hyper-parameters may be
traced arrays, so an ensemble over step sizes is one ``vmap``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import optax

from eoslab import thresholds
from eoslab.errors import ConfigError

PyTree = Any


@dataclasses.dataclass(frozen=True)
class RuleSpec:
    """What the trainer needs to know about a named update rule."""
    name: str
    hyperparams: tuple[str, ...]  # names the rule reads (besides lr)
    build: Callable[..., optax.GradientTransformation]  # build(lr, **hyperparams)
    effective_threshold: Callable[..., float]  # threshold for lambda_1(P^-1 H), from hyperparams
    doc: str

    def raw_threshold(self, lr: float, **hp) -> float:
        """Threshold for the raw sharpness lambda_1(H) when P = I / lr."""
        return self.effective_threshold(**hp) / lr


def _gd(lr, **_):
    return optax.sgd(lr)


def _heavy_ball(lr, beta, **_):
    return optax.sgd(lr, momentum=beta)


def _nesterov(lr, beta, **_):
    return optax.sgd(lr, momentum=beta, nesterov=True)


RULES: dict[str, RuleSpec] = {
    "gd": RuleSpec("gd", (), _gd, lambda **_: 2.0, "gradient descent"),
    "heavy-ball": RuleSpec("heavy-ball", ("beta",), _heavy_ball,
                           lambda beta, **_: thresholds.heavy_ball_threshold(1.0, beta),
                           "Polyak heavy-ball momentum"),
    "nesterov": RuleSpec("nesterov", ("beta",), _nesterov,
                         lambda beta, **_: thresholds.nesterov_threshold(1.0, beta),
                         "Nesterov momentum"),
}


def get_rule(name: str) -> RuleSpec:
    if name not in RULES:
        raise ConfigError(f"unknown update rule {name!r}; choose one of {', '.join(sorted(RULES))}.")
    return RULES[name]


def validate_hyperparams(name: str, lr: float, **hp) -> None:
    """One clear sentence for each invalid hyper-parameter."""
    get_rule(name)
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ConfigError(f"optimizer.lr={lr!r} must be a positive number (the step size eta).")
    beta = hp.get("beta")
    if beta is not None and not 0.0 <= beta < 1.0:
        raise ConfigError(f"optimizer.beta={beta!r} must lie in [0, 1).")
