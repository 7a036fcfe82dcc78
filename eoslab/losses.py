"""Losses and accuracy on model outputs ``[N, k]``, and full-batch objectives.

Conventions (docs/design.md; sharpness scales with the choice, say which):

* ``mse``      ``L = 1/N sum_i 1/2 ||f(x_i) - y_i||^2`` (Cohen et al., 2021).
* ``mse-mean`` ``L = 1/(N k) sum_i 1/2 ||f(x_i) - y_i||^2`` -- also averaged
  over the ``k`` outputs (Kalra & Barkeshli, 2023), so ``mse_mean = mse / k``
  and its Hessian, hence its sharpness, is ``1/k`` times that of ``mse``.
* ``ce``       ``L = 1/N sum_i [logsumexp(f(x_i)) - <y_i, f(x_i)>]``, softmax
  cross-entropy with one-hot (or soft) targets ``y_i``.

Targets are one-hot ``[N, k]`` arrays; for ``ce`` and :func:`accuracy`, integer
class labels ``[N]`` are accepted too.  For a single-output model ``[N, 1]``,
regression targets ``[N]`` are accepted by the MSE losses.

Scalar losses ``l(p)`` of a residual ``p = f - y`` (the toy models of
:mod:`eoslab.models.toy`, one scalar output on one data point), each a
:class:`ScalarLoss` with ``l'`` and ``l''`` (:data:`SCALAR_LOSSES`):
``square`` ``p^2 / 2`` (``mse`` of one output on one point), ``logcosh``
``log cosh p``, ``pseudo_huber`` ``sqrt(1 + p^2) - 1``; all even, convex,
with ``l''(0) = 1``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp

from eoslab.errors import ConfigError, InputError

Loss = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


def _regression_targets(outputs, targets):
    outputs, targets = jnp.asarray(outputs), jnp.asarray(targets)
    if targets.ndim == outputs.ndim - 1 and outputs.shape[-1] == 1:
        targets = targets[..., None]
    if targets.shape != outputs.shape:
        raise InputError(
            f"targets of shape {list(targets.shape)} do not match outputs {list(outputs.shape)}; "
            "pass one target vector per example (one-hot for classification)."
        )
    return outputs, targets.astype(outputs.dtype)


def _one_hot_targets(outputs, targets):
    outputs, targets = jnp.asarray(outputs), jnp.asarray(targets)
    if targets.ndim == outputs.ndim - 1 and jnp.issubdtype(targets.dtype, jnp.integer):
        return outputs, jax.nn.one_hot(targets, outputs.shape[-1], dtype=outputs.dtype)
    return _regression_targets(outputs, targets)


def mse(outputs, targets) -> jnp.ndarray:
    """``mean_i 1/2 sum_j (f_ij - y_ij)^2`` (Cohen et al., 2021)."""
    outputs, targets = _regression_targets(outputs, targets)
    return 0.5 * jnp.mean(jnp.sum(jnp.square(outputs - targets), axis=-1))


def mse_mean(outputs, targets) -> jnp.ndarray:
    """``mean_ij 1/2 (f_ij - y_ij)^2 = mse / k`` (Kalra & Barkeshli, 2023)."""
    outputs, targets = _regression_targets(outputs, targets)
    return 0.5 * jnp.mean(jnp.square(outputs - targets))


def ce(outputs, targets) -> jnp.ndarray:
    """Softmax cross-entropy ``mean_i [logsumexp(f_i) - <y_i, f_i>]``."""
    outputs, targets = _one_hot_targets(outputs, targets)
    log_z = jax.nn.logsumexp(outputs, axis=-1)
    # Two separate means: XLA on the CPU (jaxlib 0.10.2) miscomputes the fused mean(log_z - <y, f>)
    # under vmap once members x examples exceed 32768 (tests/test_losses.py reproduces it).
    return jnp.mean(log_z) - jnp.mean(jnp.sum(targets * outputs, axis=-1))


def accuracy(outputs, targets) -> jnp.ndarray:
    """Fraction of examples with ``argmax f_i == argmax y_i``.

    A single-output model is a regression, for which accuracy is undefined:
    the result is NaN (not an error, so probes can call it on any model).
    """
    outputs, targets = _one_hot_targets(outputs, targets)
    if outputs.shape[-1] == 1:
        return jnp.asarray(jnp.nan, outputs.dtype)
    hits = jnp.argmax(outputs, axis=-1) == jnp.argmax(targets, axis=-1)
    return jnp.mean(hits.astype(outputs.dtype))


LOSSES: dict[str, Loss] = {"mse": mse, "mse-mean": mse_mean, "ce": ce}


def get_loss(name: str) -> Loss:
    """The loss called ``name``: ``mse``, ``mse-mean`` or ``ce``."""
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}.")
    return LOSSES[name]


def _full_batch_loss(apply, loss, x, y, params):
    return loss(apply(params, x), y)


def make_loss_fn(model, loss, x, y) -> Callable:
    """``loss_fn(params) = loss(model.apply(params, x), y)`` on the whole batch ``(x, y)``.

    ``loss`` is a name (see :func:`get_loss`) or a callable.  The result is a
    :class:`jax.tree_util.Partial` whose pytree leaves are ``x`` and ``y``: it
    can be closed over like any function, or passed as an argument through
    ``jit`` / ``vmap`` so the data are traced rather than baked into the
    compiled program as constants.
    """
    loss = get_loss(loss) if isinstance(loss, str) else loss
    static = functools.partial(_full_batch_loss, model.apply, loss)
    return jax.tree_util.Partial(static, jnp.asarray(x), jnp.asarray(y))


# ---- scalar losses of a residual -------------------------------------------

@dataclasses.dataclass(frozen=True)
class ScalarLoss:
    """A scalar loss ``l(p)`` of the residual ``p = f - y`` with its derivatives.

    ``d1``/``d2`` default to ``jax.grad`` of ``value``.
    """

    name: str
    value: Callable
    d1: Callable | None = None
    d2: Callable | None = None

    def __call__(self, p):
        return self.value(p)

    def grad(self, p):
        if self.d1 is not None:
            return self.d1(p)
        return _elementwise(jax.grad(self.value), p)

    def hess(self, p):
        if self.d2 is not None:
            return self.d2(p)
        return _elementwise(jax.grad(jax.grad(self.value)), p)


def _elementwise(fn, p):
    p = jnp.asarray(p)
    out = fn
    for _ in range(p.ndim):
        out = jax.vmap(out)
    return out(p)


def _logcosh(p):  # |p| + log(1 + exp(-2|p|)) - log 2: no overflow of cosh
    a = jnp.abs(p)
    return a + jnp.log1p(jnp.exp(-2.0 * a)) - math.log(2.0)


SCALAR_LOSSES: dict[str, ScalarLoss] = {
    "square": ScalarLoss("square", lambda p: 0.5 * p * p, lambda p: p, lambda p: jnp.ones_like(p)),
    "logcosh": ScalarLoss("logcosh", _logcosh, jnp.tanh, lambda p: 1.0 / jnp.cosh(p) ** 2),
    "pseudo_huber": ScalarLoss(
        "pseudo_huber",
        lambda p: jnp.sqrt(1.0 + p * p) - 1.0,
        lambda p: p / jnp.sqrt(1.0 + p * p),
        lambda p: (1.0 + p * p) ** -1.5,
    ),
}


def get_scalar_loss(loss: str | ScalarLoss) -> ScalarLoss:
    """A :class:`ScalarLoss` from its name or itself."""
    if isinstance(loss, ScalarLoss):
        return loss
    if isinstance(loss, str) and loss in SCALAR_LOSSES:
        return SCALAR_LOSSES[loss]
    raise ConfigError(
        f"unknown toy loss {loss!r}; use one of {sorted(SCALAR_LOSSES)} or pass a ScalarLoss."
    )
