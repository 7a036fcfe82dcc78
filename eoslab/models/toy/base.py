"""The shared machinery of the toy models: float64, parameter checks, the 2x2 eigenvalue, the base class.

See :mod:`eoslab.models.toy` for the models and their curvature.
"""
from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.errors import ConfigError
from eoslab.losses import ScalarLoss
from eoslab.models.base import as_key


def require_x64() -> None:
    """Raise :class:`ConfigError` unless JAX computes in float64."""
    if not jax.config.jax_enable_x64:
        raise ConfigError(
            "toy models compute in float64 but JAX's x64 mode is off; call "
            "jax.config.update('jax_enable_x64', True) or wrap the call in "
            "'with jax.enable_x64(True):'."
        )


def top_eig_2x2(a, b, d):
    """Largest eigenvalue of the symmetric matrix [[a, b], [b, d]]."""
    return 0.5 * (a + d) + jnp.hypot(0.5 * (a - d), b)


def check_box(name: str, box) -> tuple[float, float]:
    """``box`` as a finite pair ``(low, high)`` with ``low <= high``, else :class:`ConfigError`."""
    try:
        lo, hi = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a pair [low, high] of numbers, got {box!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ConfigError(f"{name} = [{lo}, {hi}] must be finite with low <= high; fix the range.")
    return lo, hi


def check_finite(name: str, value) -> float:
    """``value`` as a finite float, else :class:`ConfigError`."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(v):
        raise ConfigError(f"{name} = {v} must be finite.")
    return v


def check_input(model: str, x) -> float:
    """The scalar input ``x`` of a model as a finite, nonzero float, else :class:`ConfigError`."""
    x = check_finite("x", x)
    if x == 0.0:
        raise ConfigError(f"the {model} input x must be nonzero (x = 0 makes f constant).")
    return x


def check_count(name: str, n) -> int:
    """``n`` as a positive int (not a bool), else :class:`ConfigError`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"{name} must be a positive integer, got {n!r}.")
    return int(n)


class ScalarToy:
    """Shared machinery of the scalar toy models (subclasses are frozen dataclasses).

    Subclasses define ``dim``, ``target``, ``loss_fn``, ``f``, ``grad_f``,
    ``sharpness`` (closed form) and ``_sample``.  The model protocol
    (:mod:`eoslab.models.base`) where it fits: ``name``, ``dtype``,
    ``init(key)``, ``num_params``, ``param_shapes``; ``loss(theta)`` is the
    scalar ``loss_fn`` of :mod:`eoslab.curvature`.
    """

    name: ClassVar[str]
    dtype: ClassVar[np.dtype] = np.dtype("float64")

    # -- parameters ---------------------------------------------------------
    def as_theta(self, theta) -> jnp.ndarray:
        """``theta`` as float64 of shape ``[..., dim]``; checks shape (and values, when concrete)."""
        require_x64()
        theta = jnp.asarray(theta, jnp.float64)
        if theta.ndim == 0 or theta.shape[-1] != self.dim:
            raise ConfigError(
                f"{self.name} parameters must have last dimension {self.dim}, got shape "
                f"{list(theta.shape)}; build them with model.init or model.pack."
            )
        return theta

    def check_params(self, theta) -> jnp.ndarray:
        """Validate concrete parameters ``[dim]`` or ``[n, dim]``: shape and finiteness."""
        theta = self.as_theta(theta)
        values = np.asarray(theta)
        if not np.all(np.isfinite(values)):
            bad = int(np.sum(~np.all(np.isfinite(values.reshape(-1, self.dim)), axis=-1)))
            raise ConfigError(
                f"{bad} {self.name} initialisation(s) have non-finite parameters; pass finite values."
            )
        return theta

    def init(self, key, n: int | None = None) -> jnp.ndarray:
        """``n`` initialisations ``[n, dim]`` drawn from the distribution in the class docstring.

        ``key`` is a PRNG key or an integer seed; without ``n``, one
        initialisation ``[dim]`` (the first of ``init(key, 1)``), as
        :meth:`eoslab.models.Model.init` gives one params tree.
        """
        require_x64()
        if n is None:
            return self._sample(as_key(key), 1)[0]
        n = check_count("the number of initialisations", n)
        return self._sample(as_key(key), n)

    def num_params(self, params=None) -> int:
        """The number of scalar parameters, ``dim``."""
        return self.dim

    def param_shapes(self) -> jax.ShapeDtypeStruct:
        """The parameters' shape and dtype, ``[dim]`` float64, without computing anything."""
        return jax.ShapeDtypeStruct((self.dim,), jnp.float64)

    # -- objective ----------------------------------------------------------
    @property
    def target(self) -> float:
        """The target ``y`` of the one data point."""
        return self.y

    @property
    def loss_fn(self) -> ScalarLoss:
        """The scalar loss ``l`` (the ``loss_type`` field, resolved by :func:`eoslab.losses.get_scalar_loss`)."""
        return self.loss_type

    def residual(self, theta):
        """``p = f(theta) - y``."""
        return self.f(theta) - self.target

    def loss(self, theta):
        """``l(p)``, a scalar per ``theta`` (``[..., dim]`` -> ``[...]``)."""
        return self.loss_fn(self.residual(theta))

    def grad(self, theta):
        """Exact gradient ``l'(p) grad f`` (closed form)."""
        theta = self.as_theta(theta)
        return self.loss_fn.grad(self.residual(theta)) * self.grad_f(theta)

    def grad_f_sq(self, theta):
        """``|grad_theta f|^2``."""
        g = self.grad_f(theta)
        return jnp.sum(g * g, axis=-1)

    def hessian(self, theta):
        """Dense Hessian of the loss (``jax.hessian``), ``[dim, dim]``."""
        return jax.hessian(self.loss)(self.as_theta(theta))

    def sharpness_dense(self, theta):
        """Top eigenvalue of the dense Hessian (``jnp.linalg.eigh``)."""
        return jnp.linalg.eigh(self.hessian(theta))[0][-1]
