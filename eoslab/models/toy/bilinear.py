"""The bilinear toy models: ``log cosh(x y)``, the two-layer linear network ``v^T U x`` and the uv model.

Their Hessian of ``f`` is ``kappa [[0, I], [I, 0]]`` in suitable coordinates,
so the sharpness is the top eigenvalue of a 2x2 matrix (or ``+-t kappa``,
or 0): :func:`bilinear_sharpness`, derived in :mod:`eoslab.models.toy`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.errors import ConfigError
from eoslab.losses import get_scalar_loss
from eoslab.models.toy.base import ScalarToy, check_box, check_count, check_finite, check_input, top_eig_2x2


@dataclasses.dataclass(frozen=True)
class LogCoshProduct(ScalarToy):
    """``L(x, y) = l(x y)``, default ``l = log cosh``; ``theta = (x, y)``, target 0.

    Initialisation: uniform on the box ``x_box x y_box`` (default the paper's
    ``[-0.5, 1] x [4, 7]``).  Sharpness: top eigenvalue of
    ``s [[y^2, xy], [xy, x^2]] + t [[0, 1], [1, 0]]``.
    """

    x_box: tuple = (-0.5, 1.0)
    y_box: tuple = (4.0, 7.0)
    loss_type: Any = "logcosh"

    name: ClassVar[str] = "logcosh2"
    dim: ClassVar[int] = 2
    target: ClassVar[float] = 0.0

    def __post_init__(self):
        object.__setattr__(self, "x_box", check_box("x_box", self.x_box))
        object.__setattr__(self, "y_box", check_box("y_box", self.y_box))
        object.__setattr__(self, "loss_type", get_scalar_loss(self.loss_type))

    def f(self, theta):
        theta = self.as_theta(theta)
        return theta[..., 0] * theta[..., 1]

    def grad_f(self, theta):
        theta = self.as_theta(theta)
        return theta[..., ::-1]

    def sharpness(self, theta):
        theta = self.as_theta(theta)
        x, y = theta[..., 0], theta[..., 1]
        p = x * y - self.target
        s, t = self.loss_fn.hess(p), self.loss_fn.grad(p)
        return top_eig_2x2(s * y * y, s * x * y + t, s * x * x)

    def _sample(self, key, n):
        kx, ky = jax.random.split(key)
        x = jax.random.uniform(kx, (n,), jnp.float64, *self.x_box)
        y = jax.random.uniform(ky, (n,), jnp.float64, *self.y_box)
        return jnp.stack([x, y], axis=-1)


@dataclasses.dataclass(frozen=True)
class TwoLayerLinear(ScalarToy):
    """Two-layer fully connected linear network ``f = v^T U x`` on one point ``(x, y)``.

    ``U in R^{width x d}``, ``v in R^width``; ``theta = (vec(U) row-major, v)``.
    Initialisation ("balanced"): ``rho ~ Uniform(init_scale)`` per
    initialisation, then ``U_ij = rho g_ij / sqrt(width)``,
    ``v_i = rho g'_i / sqrt(width)`` with iid standard normal ``g, g'``, so
    that ``E|U x|^2 = rho^2 |x|^2``, ``E|v|^2 = rho^2`` and
    ``E|grad f|^2 = 2 rho^2 |x|^2``.

    Sharpness: with ``a = U x``, ``c = |x|``, in the coordinates
    ``(w, v)`` where ``dU = w x^T / c`` (directions of ``U`` with ``dU x = 0``
    have zero curvature), ``g = (c v, a)``, ``hess f = c [[0, I], [I, 0]]``; so
    ``g+- = (c v +- a) / sqrt 2`` and ``kappa = c`` in the module formula.
    """

    x: tuple = (0.5, 0.5, 0.5, 0.5)
    y: float = 1.0
    width: int = 8
    loss_type: Any = "logcosh"
    init_scale: tuple = (1.0, 1.0)

    name: ClassVar[str] = "two_layer_linear"

    def __post_init__(self):
        try:
            x = tuple(float(v) for v in np.ravel(np.asarray(self.x, dtype=float)))
        except (TypeError, ValueError):
            raise ConfigError(f"x must be a list of numbers, got {self.x!r}.") from None
        if not x or not all(math.isfinite(v) for v in x) or not any(v != 0 for v in x):
            raise ConfigError(f"x = {list(x)} must be a finite, nonzero input vector.")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", check_finite("y", self.y))
        object.__setattr__(self, "width", check_count("width", self.width))
        object.__setattr__(self, "loss_type", get_scalar_loss(self.loss_type))
        object.__setattr__(self, "init_scale", check_box("init_scale", self.init_scale))

    @property
    def d(self) -> int:
        return len(self.x)

    @property
    def dim(self) -> int:
        return self.width * self.d + self.width

    @property
    def x_sq(self) -> float:
        """``c = |x|^2``, the constant of the reduced (p, q) map."""
        return float(sum(v * v for v in self.x))

    def unpack(self, theta):
        """``(U [..., width, d], v [..., width])`` from ``theta``."""
        theta = self.as_theta(theta)
        m, d = self.width, self.d
        u = theta[..., : m * d].reshape(*theta.shape[:-1], m, d)
        return u, theta[..., m * d:]

    def pack(self, u, v):
        u, v = jnp.asarray(u, jnp.float64), jnp.asarray(v, jnp.float64)
        return jnp.concatenate([u.reshape(*u.shape[:-2], -1), v], axis=-1)

    def f(self, theta):
        u, v = self.unpack(theta)
        a = u @ jnp.asarray(self.x)
        return jnp.sum(v * a, axis=-1)

    def grad_f(self, theta):
        u, v = self.unpack(theta)
        xv = jnp.asarray(self.x)
        a = u @ xv
        return self.pack(v[..., :, None] * xv, a)

    def grad_f_sq(self, theta):
        u, v = self.unpack(theta)
        a = u @ jnp.asarray(self.x)
        return self.x_sq * jnp.sum(v * v, axis=-1) + jnp.sum(a * a, axis=-1)

    def sharpness(self, theta):
        u, v = self.unpack(theta)
        c = math.sqrt(self.x_sq)
        a = u @ jnp.asarray(self.x)
        p = jnp.sum(v * a, axis=-1) - self.y
        s, t = self.loss_fn.hess(p), self.loss_fn.grad(p)
        return bilinear_sharpness(s, t, c * v, a, c, complement=self.width >= 2, zero=self.d >= 2)

    def _sample(self, key, n):
        kr, ku, kv = jax.random.split(key, 3)
        rho = jax.random.uniform(kr, (n, 1), jnp.float64, *self.init_scale)
        u = jax.random.normal(ku, (n, self.width * self.d), jnp.float64) / math.sqrt(self.width)
        v = jax.random.normal(kv, (n, self.width), jnp.float64) / math.sqrt(self.width)
        return rho * jnp.concatenate([u, v], axis=-1)


def bilinear_sharpness(s, t, gw, gv, kappa, *, complement: bool, zero: bool):
    """Top eigenvalue of ``s g g^T + t kappa [[0, I], [I, 0]]`` with ``g = (gw, gv)`` (+ zeros).

    ``complement``: the blocks have dimension >= 2, so ``+-t kappa`` are
    eigenvalues too; ``zero``: there are flat directions (eigenvalue 0).
    """
    gp = (gw + gv) / math.sqrt(2.0)
    gm = (gw - gv) / math.sqrt(2.0)
    npl = jnp.sqrt(jnp.sum(gp * gp, axis=-1))
    nmi = jnp.sqrt(jnp.sum(gm * gm, axis=-1))
    top = top_eig_2x2(s * npl * npl + t * kappa, s * npl * nmi, s * nmi * nmi - t * kappa)
    if complement:
        top = jnp.maximum(top, jnp.abs(t * kappa))
    if zero:
        top = jnp.maximum(top, 0.0)
    return top


@dataclasses.dataclass(frozen=True)
class UVModel(ScalarToy):
    """The uv model ``f = v . u x / sqrt(n)`` (Kalra & Barkeshli 2023); ``theta = (u, v)``.

    Loss ``l(f - y)``, default the square loss ``(f - y)^2 / 2``.
    Initialisation: ``rho ~ Uniform(init_scale)`` per initialisation (default
    ``rho = 1``), then ``u_i = rho g_i``, ``v_i = rho g'_i`` with iid standard
    normal ``g, g'`` (NTK parameterisation).  Sharpness: module formula with
    ``g = (v x, u x) / sqrt(n)``, ``kappa = x / sqrt(n)``.
    """

    width: int = 100
    x: float = 1.0
    y: float = 1.0
    loss_type: Any = "square"
    init_scale: tuple = (1.0, 1.0)

    name: ClassVar[str] = "uv"

    def __post_init__(self):
        object.__setattr__(self, "width", check_count("width", self.width))
        object.__setattr__(self, "x", check_input("uv-model", self.x))
        object.__setattr__(self, "y", check_finite("y", self.y))
        object.__setattr__(self, "loss_type", get_scalar_loss(self.loss_type))
        object.__setattr__(self, "init_scale", check_box("init_scale", self.init_scale))

    @property
    def dim(self) -> int:
        return 2 * self.width

    @property
    def x_sq(self) -> float:
        """``c = x^2 / n``, the constant of the reduced (p, q) map."""
        return self.x * self.x / self.width

    def _uv(self, theta):
        theta = self.as_theta(theta)
        return theta[..., : self.width], theta[..., self.width:]

    def f(self, theta):
        u, v = self._uv(theta)
        return jnp.sum(u * v, axis=-1) * (self.x / math.sqrt(self.width))

    def grad_f(self, theta):
        u, v = self._uv(theta)
        k = self.x / math.sqrt(self.width)
        return jnp.concatenate([k * v, k * u], axis=-1)

    def sharpness(self, theta):
        u, v = self._uv(theta)
        k = self.x / math.sqrt(self.width)
        p = k * jnp.sum(u * v, axis=-1) - self.y
        s, t = self.loss_fn.hess(p), self.loss_fn.grad(p)
        return bilinear_sharpness(s, t, k * v, k * u, k, complement=self.width >= 2, zero=False)

    def _sample(self, key, n):
        kr, kg = jax.random.split(key)
        rho = jax.random.uniform(kr, (n, 1), jnp.float64, *self.init_scale)
        return rho * jax.random.normal(kg, (n, 2 * self.width), jnp.float64)
