"""Update rules by name: optax transforms plus each rule's preconditioner and threshold.

Every rule is written theta <- theta - P_t^{-1} m_t (DESIGN.md, "edge ratio"),
with P_t a positive diagonal that *includes the step size*.  The effective
sharpness is lambda_1(P_t^{-1} H); each rule has a threshold for it.

SGD family (``preconditioner`` is None: P = I / eta is a scalar, so the
effective sharpness is eta * lambda_1(H) and the raw-sharpness threshold is
the effective one divided by eta):

=============  ======================================  =====================  ==================
rule           update (optax convention)               effective threshold    raw threshold
=============  ======================================  =====================  ==================
gd             theta -= eta g                          2                      2 / eta
heavy-ball     v = beta v + g;  theta -= eta v         2 + 2 beta             (2 + 2 beta) / eta
nesterov       v = beta v + g;  theta -= eta (g + beta v)
                                                       (2 + 2 beta)/(1+2beta) (2+2beta)/((1+2beta) eta)
=============  ======================================  =====================  ==================

Adaptive rules (``preconditioner(opt_state, lr, **hp)`` returns the diagonal
P_t as a pytree shaped like params, read from the optax state *after* the
update that produced theta_t, i.e. the P_t of the last step).  Updates are
those of the installed optax (``scale_by_adam``, ``scale_by_rms``,
``scale_by_rss``, ``trace``, ``add_decayed_weights``); d_t below is
elementwise, t = ``count`` after the update:

* ``adam`` (``optax.adam``: scale_by_adam then scale_by_learning_rate)::

      mu_t = b1 mu + (1 - b1) g,   nu_t = b2 nu + (1 - b2) g^2
      theta -= eta (mu_t / (1 - b1^t)) / (sqrt(nu_t / (1 - b2^t)) + eps)

  so with m_t = mu_t the update is theta -= P_t^{-1} m_t with
  P_t = (1 - b1^t) (sqrt(v_hat_t) + eps) / eta.  With P frozen, m is an EMA
  of the gradients: along an eigenvector of P^{-1} H with eigenvalue lambda,
  a_{t+1} = a_t - mu_t, mu_t = b1 mu_{t-1} + (1 - b1) lambda a_t, i.e. heavy
  ball with step (1 - b1) and momentum b1, characteristic polynomial
  z^2 - (1 + b1 - (1 - b1) lambda) z + b1, root z = -1 at
  lambda = (2 + 2 b1) / (1 - b1): 38 at b1 = 0.9, 2 at b1 = 0 (the product
  of the roots is b1 < 1, so complex roots never leave the unit disc).
* ``adamw`` (``optax.adamw``: scale_by_adam, add_decayed_weights(wd), scale by
  eta): theta -= P_t^{-1} m_t + eta wd theta, P_t as for Adam.  The same
  recurrence with a_{t+1} = (1 - c) a_t - mu_t, c = eta wd, gives
  z (z - b1) = (1 - c)(z - b1) - (1 - b1) lambda z, root -1 at
  lambda = (2 - eta wd)(1 + b1) / (1 - b1) (the roots' product b1 (1 - c) < 1).
* ``rmsprop`` (``optax.rmsprop`` with ``eps_in_sqrt=False``, PyTorch's
  placement, initial_scale 0, no bias correction; momentum = ``momentum``)::

      nu_t = b2 nu + (1 - b2) g^2,   u_t = g / (sqrt(nu_t) + eps)
      no momentum:   theta -= eta u_t
      momentum beta: b_t = beta b + eta u_t (optax ``trace``);  theta -= b_t

  so P_t = (sqrt(nu_t) + eps) / eta and m_t = g (threshold 2, as GD), or with
  momentum m_t = P_t b_t, which for a frozen P is the heavy-ball buffer
  beta m + g (threshold 2 + 2 beta, as heavy ball).
* ``adagrad`` (``optax.adagrad``, initial accumulator 0.1): S_t = S + g^2,
  theta -= eta g / sqrt(S_t + eps) (0 where S_t = 0), so
  P_t = sqrt(S_t + eps) / eta, threshold 2.
* ``frozen-adam``, ``frozen-rmsprop``: as ``adam`` / ``rmsprop`` but the
  second moment (and its bias correction) stops updating after
  ``freeze_step`` updates; Adam's first-moment bias correction 1 - b1^t keeps
  running, so P_t -> (sqrt(v_hat_freeze) + eps) / eta.  Thresholds as above,
  exact in the limit of a frozen P.

See :mod:`eoslab.thresholds` for the derivations.  Hyper-parameters (the
step size at least) may be traced arrays, so an ensemble over step sizes is
one ``vmap``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from eoslab import thresholds
from eoslab.errors import ConfigError

PyTree = Any

#: Every hyper-parameter a rule may read (besides lr), with its config default.
HYPERPARAMS = ("beta", "beta1", "beta2", "eps", "weight_decay", "momentum", "freeze_step",
               "c", "decrease_factor", "max_backtracks", "step_init", "increase_factor", "on_failure",
               "f_star", "polyak_c", "polyak_variant", "mu", "alpha", "conjugate_beta", "sigma", "ema")


@dataclasses.dataclass(frozen=True)
class RuleSpec:
    """What the trainer needs to know about a named update rule.

    ``preconditioner(opt_state, lr, **hp)`` returns the positive diagonal P_t
    (a pytree like params) of the update theta <- theta - P_t^{-1} m_t, read
    from the state after the update, or is None for the SGD family where
    P = I / lr.  ``effective_threshold(lr=..., **hp)`` is the threshold for
    lambda_1(P^{-1} H).
    """
    name: str
    hyperparams: tuple[str, ...]  # names the rule reads (besides lr)
    build: Callable[..., optax.GradientTransformation]  # build(lr, **hyperparams)
    effective_threshold: Callable[..., float]  # threshold for lambda_1(P^-1 H), from hyperparams
    doc: str
    preconditioner: Callable[..., PyTree] | None = None
    tuner: bool = False  # a step-size tuner: its update needs value, grad and value_fn


    @property
    def adaptive(self) -> bool:
        """Whether P_t is a (non-scalar) diagonal read from the optimizer state."""
        return self.preconditioner is not None

    def raw_threshold(self, lr: float, **hp) -> float:
        """Threshold for the raw sharpness lambda_1(H) when P = I / lr."""
        return self.effective_threshold(lr=lr, **hp) / lr


# ---- SGD family -----------------------------------------------------------

def _gd(lr, **_):
    return optax.sgd(lr)


def _heavy_ball(lr, beta, **_):
    return optax.sgd(lr, momentum=beta)


def _nesterov(lr, beta, **_):
    return optax.sgd(lr, momentum=beta, nesterov=True)


# ---- adaptive rules ---------------------------------------------------------

def _positive(x):
    """Guard P against exact zeros (eps = 0 before the first gradient)."""
    return jnp.maximum(x, jnp.finfo(jnp.result_type(x)).tiny)


def _adam(lr, beta1, beta2, eps, **_):
    return optax.chain(optax.scale_by_adam(b1=beta1, b2=beta2, eps=eps),
                       optax.scale_by_learning_rate(lr))


def _adamw(lr, beta1, beta2, eps, weight_decay, **_):
    return optax.chain(optax.scale_by_adam(b1=beta1, b2=beta2, eps=eps),
                       optax.add_decayed_weights(weight_decay),
                       optax.scale_by_learning_rate(lr))


def _adam_p(count, nu, lr, beta1, beta2, eps, nu_count=None):
    """P = (1 - b1^t)(sqrt(nu / (1 - b2^s)) + eps) / lr, t = count (>= 1), s = nu_count or t."""
    t = jnp.maximum(count, 1)
    s = t if nu_count is None else jnp.maximum(nu_count, 1)
    c1, c2 = 1 - beta1 ** t, 1 - beta2 ** s  # as optax.tree.bias_correction
    return jax.tree_util.tree_map(
        lambda n: _positive(c1.astype(n.dtype) * (jnp.sqrt(n / c2.astype(n.dtype)) + eps) / lr), nu)


def _adam_precond(opt_state, lr, beta1, beta2, eps, **_):
    s = opt_state[0]
    return _adam_p(s.count, s.nu, lr, beta1, beta2, eps)


def _rmsprop(lr, beta2, eps, momentum=0.0, **_):
    return optax.rmsprop(lr, decay=beta2, eps=eps, eps_in_sqrt=False,
                         momentum=momentum if momentum else None)


def _rms_p(nu, lr, eps):
    return jax.tree_util.tree_map(lambda n: _positive((jnp.sqrt(n) + eps) / lr), nu)


def _rmsprop_precond(opt_state, lr, eps, **_):
    return _rms_p(opt_state[0].nu, lr, eps)


def _adagrad(lr, eps, **_):
    return optax.adagrad(lr, eps=eps)


def _adagrad_precond(opt_state, lr, eps, **_):
    return jax.tree_util.tree_map(lambda s: _positive(jnp.sqrt(s + eps) / lr), opt_state[0].sum_of_squares)


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
        live = count <= freeze_step
        nu = jax.tree_util.tree_map(lambda g, n: jnp.where(live, b2 * n + (1 - b2) * g * g, n), updates, state.nu)
        s = jnp.minimum(count, freeze_step)
        c1, c2 = 1 - b1 ** count, 1 - b2 ** s
        out = jax.tree_util.tree_map(
            lambda m, n: (m / c1.astype(m.dtype)) / (jnp.sqrt(n / c2.astype(n.dtype)) + eps), mu, nu)
        return out, FrozenAdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


def _frozen_adam(lr, beta1, beta2, eps, freeze_step, **_):
    return optax.chain(scale_by_frozen_adam(beta1, beta2, eps, freeze_step), optax.scale_by_learning_rate(lr))


def _frozen_adam_precond(opt_state, lr, beta1, beta2, eps, freeze_step, **_):
    s = opt_state[0]
    return _adam_p(s.count, s.nu, lr, beta1, beta2, eps, nu_count=jnp.minimum(s.count, freeze_step))


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
        live = count <= freeze_step
        nu = jax.tree_util.tree_map(lambda g, n: jnp.where(live, decay * n + (1 - decay) * g * g, n),
                                    updates, state.nu)
        out = jax.tree_util.tree_map(lambda g, n: g / (jnp.sqrt(n) + eps), updates, nu)
        return out, FrozenRmsState(count, nu)

    return optax.GradientTransformation(init, update)


def _frozen_rmsprop(lr, beta2, eps, freeze_step, momentum=0.0, **_):
    return optax.chain(scale_by_frozen_rms(beta2, eps, freeze_step), optax.scale_by_learning_rate(lr),
                       optax.trace(decay=momentum) if momentum else optax.identity())


def _adam_threshold(beta1, **_):
    return thresholds.ema_momentum_threshold(1.0, beta1)


def _adamw_threshold(beta1, weight_decay, lr, **_):
    return (2.0 - lr * weight_decay) * (1.0 + beta1) / (1.0 - beta1)


def _rms_threshold(momentum=0.0, **_):
    return thresholds.heavy_ball_threshold(1.0, momentum)


# ---- step-size tuners ----------------------------------------------------------
#
# A tuner rule is GD whose step eta_t is chosen at every step by one of
# :mod:`eoslab.tuners`: optax.chain(scale(-1), tuner), so the tuner scales the
# direction u = -g and gets the step's loss, gradient and loss function (the
# minibatch loss under minibatching) through optax's line-search convention.
# ``lr`` is the largest step the tuner may take (Armijo's and Polyak's
# max_step, PAL's s_max along the unit direction, CDAT's cap).  P_t = I / eta_t
# changes every step, so the effective sharpness is eta_t * lambda_1(H) with
# threshold 2, eta_t = |theta_{t+1} - theta_t| / |g_t| (equal to the tuner's
# step for u = -g).

#: config key -> (tuner argument) for each tuner rule; ``lr`` is the step cap.
TUNER_KEYS = {
    "armijo": {"c": "c", "decrease_factor": "decrease_factor", "max_backtracks": "max_backtracks",
               "step_init": "init", "increase_factor": "increase_factor", "on_failure": "on_failure"},
    "polyak": {"f_star": "f_star", "polyak_c": "c", "polyak_variant": "variant"},
    "parabolic": {"mu": "mu", "alpha": "alpha", "conjugate_beta": "beta"},
    "edge": {"sigma": "sigma", "ema": "ema"},
}
_TUNER_CAP = {"armijo": "max_step", "polyak": "max_step", "parabolic": "s_max", "edge": "max_step"}


def _tuner_builder(name: str) -> Callable[..., optax.GradientTransformation]:
    def build(lr, **hp):
        from eoslab import tuners
        kwargs = {arg: hp[key] for key, arg in TUNER_KEYS[name].items() if key in hp}
        kwargs[_TUNER_CAP[name]] = lr
        return optax.chain(optax.scale(-1.0), getattr(tuners, name)(**kwargs))
    return build


def _tuner_rule(name: str, doc: str) -> "RuleSpec":
    return RuleSpec(name, tuple(TUNER_KEYS[name]), _tuner_builder(name), lambda **_: 2.0, doc, tuner=True)


RULES: dict[str, RuleSpec] = {
    "gd": RuleSpec("gd", (), _gd, lambda **_: 2.0, "gradient descent"),
    "heavy-ball": RuleSpec("heavy-ball", ("beta",), _heavy_ball,
                           lambda beta, **_: thresholds.heavy_ball_threshold(1.0, beta),
                           "Polyak heavy-ball momentum"),
    "nesterov": RuleSpec("nesterov", ("beta",), _nesterov,
                         lambda beta, **_: thresholds.nesterov_threshold(1.0, beta),
                         "Nesterov momentum"),
    "adam": RuleSpec("adam", ("beta1", "beta2", "eps"), _adam, _adam_threshold,
                     "Adam with bias correction (optax.adam)", _adam_precond),
    "adamw": RuleSpec("adamw", ("beta1", "beta2", "eps", "weight_decay"), _adamw, _adamw_threshold,
                      "AdamW, decoupled weight decay (optax.adamw)", _adam_precond),
    "rmsprop": RuleSpec("rmsprop", ("beta2", "eps", "momentum"), _rmsprop, _rms_threshold,
                        "RMSProp, eps outside the square root, optional heavy-ball momentum", _rmsprop_precond),
    "adagrad": RuleSpec("adagrad", ("eps",), _adagrad, lambda **_: 2.0, "Adagrad (optax.adagrad)",
                        _adagrad_precond),
    "frozen-adam": RuleSpec("frozen-adam", ("beta1", "beta2", "eps", "freeze_step"), _frozen_adam,
                            _adam_threshold, "Adam whose preconditioner freezes after freeze_step steps",
                            _frozen_adam_precond),
    "frozen-rmsprop": RuleSpec("frozen-rmsprop", ("beta2", "eps", "momentum", "freeze_step"), _frozen_rmsprop,
                               _rms_threshold, "RMSProp whose preconditioner freezes after freeze_step steps",
                               _rmsprop_precond),
    "armijo": _tuner_rule("armijo", "GD with Armijo backtracking line search (eoslab.tuners.armijo)"),
    "polyak": _tuner_rule("polyak", "GD with Polyak steps SPS_max / SPS+ (eoslab.tuners.polyak)"),
    "parabolic": _tuner_rule("parabolic", "GD with the parabolic approximation line search PAL "
                                          "(eoslab.tuners.parabolic)"),
    "edge": _tuner_rule("edge", "GD with the curvature-aware tuner CDAT (eoslab.tuners.edge)"),
}


def get_rule(name: str) -> RuleSpec:
    if name not in RULES:
        raise ConfigError(f"unknown update rule {name!r}; choose one of {', '.join(sorted(RULES))}.")
    return RULES[name]


def validate_hyperparams(name: str, lr: float, **hp) -> None:
    """One clear sentence for each invalid hyper-parameter."""
    rule = get_rule(name)
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and lr > 0):
        raise ConfigError(f"optimizer.lr={lr!r} must be a positive number (the step size eta; "
                          f"for a tuner, the largest step it may take).")
    for key in ("beta", "beta1", "beta2", "momentum"):
        v = hp.get(key)
        if v is not None and not 0.0 <= v < 1.0:
            raise ConfigError(f"optimizer.{key}={v!r} must lie in [0, 1).")
    eps = hp.get("eps")
    if eps is not None and not eps >= 0:
        raise ConfigError(f"optimizer.eps={eps!r} must be >= 0.")
    wd = hp.get("weight_decay")
    if wd is not None and not wd >= 0:
        raise ConfigError(f"optimizer.weight_decay={wd!r} must be >= 0.")
    if "freeze_step" in rule.hyperparams:
        fs = hp.get("freeze_step")
        if fs is None or isinstance(fs, bool) or not isinstance(fs, int) or fs < 1:
            raise ConfigError(f"optimizer.freeze_step={fs!r} must be an integer >= 1 for rule {name!r} "
                              f"(the number of steps before its preconditioner freezes).")
    if rule.tuner:  # the tuner checks its own arguments; name them by their config keys
        import re
        try:
            rule.build(lr, **hp)
        except ConfigError as err:
            msg = str(err)
            for key, arg in [("lr", _TUNER_CAP[name]), *((k, a) for k, a in TUNER_KEYS[name].items())]:
                msg = re.sub(rf"^{name} {arg}=", f"optimizer.{key}=", msg)
            raise ConfigError(msg) from None
    if name == "adamw" and wd is not None and not lr * wd < 2:
        raise ConfigError(f"optimizer.weight_decay={wd!r} times optimizer.lr={lr!r} must be below 2 "
                          f"(else the decay alone diverges).")
