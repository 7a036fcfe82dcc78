"""Toy models of edge-of-stability dynamics, in float64, with exact curvature.

Four scalar models ``f(theta)`` trained on one data point with a loss
``L(theta) = l(f(theta) - y)``; ``p = f(theta) - y`` is the residual.  Each is
a small frozen dataclass whose parameters ``theta`` are a flat float64 vector
(so an ensemble is one array ``[n, dim]`` and one ``vmap``):

``LogCoshProduct``  ``L(x, y) = l(x y)`` with ``l = log cosh`` (theta = (x, y),
    target 0), the two-parameter model of Song & Yun (2023, Fig. 1; initial
    box x in [-0.5, 1], y in [4, 7], eta = 1/8).
``TwoLayerLinear``  ``f = v^T U x`` with ``U in R^{m x d}``, ``v in R^m`` on one
    data point ``(x, y)`` (theta = (vec(U) row-major, v)); Song & Yun, Sec. 3.
``SingleNeuron``    ``f = v sigma(u x)`` with scalars ``u, v, x`` (theta = (u, v));
    Song & Yun, Sec. 4, with the square loss and ``y = 0``.
``UVModel``         ``f = v . u x / sqrt(n)`` with ``u, v in R^n`` (theta = (u, v)),
    the "uv model" of Kalra & Barkeshli (2023), NTK-scaled, square loss.

Curvature.  With ``s = l''(p)``, ``t = l'(p)`` and ``g = grad f``,

    grad L = t g,        hess L = s g g^T + t hess f.

``sharpness`` (the largest *algebraic* Hessian eigenvalue) is closed form for
every model: ``hess f`` is 2x2 (``LogCoshProduct``, ``SingleNeuron``) or, for the
bilinear models, ``hess f = kappa [[0, I], [I, 0]]`` in suitable coordinates
(eigenvalues ``+-kappa``), so ``hess L`` reduces to the 2x2 matrix

    [[s n+^2 + t kappa, s n+ n-], [s n+ n-, s n-^2 - t kappa]]

on the span of the symmetric / antisymmetric parts ``g+``, ``g-`` of ``g``
(``n+- = |g+-|``), plus the eigenvalues ``+-t kappa`` (and 0) on the
complement.  ``sharpness_dense`` is the top eigenvalue of the dense
``jax.hessian`` (``jnp.linalg.eigh``), which the tests compare against.

float64.  Every public method converts ``theta`` to float64 and raises
:class:`~eoslab.errors.ConfigError` if JAX's x64 mode is off (it is never
switched on at import; use ``jax.config.update("jax_enable_x64", True)`` or
the ``with jax.enable_x64(True):`` context).

Losses (:data:`SCALAR_LOSSES`): ``square`` ``p^2 / 2``, ``logcosh``
``log cosh p``, ``pseudo_huber`` ``sqrt(1 + p^2) - 1``; all even, convex, with
``l''(0) = 1``; chosen by a model's ``loss_type`` field (a name, or a custom
:class:`ScalarLoss`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "SCALAR_LOSSES",
    "Activation",
    "LogCoshProduct",
    "ScalarLoss",
    "SingleNeuron",
    "TOY_MODELS",
    "TwoLayerLinear",
    "UVModel",
    "get_scalar_loss",
    "make_toy",
    "require_x64",
]


def require_x64() -> None:
    """Raise :class:`ConfigError` unless JAX computes in float64."""
    if not jax.config.jax_enable_x64:
        raise ConfigError(
            "toy models compute in float64 but JAX's x64 mode is off; call "
            "jax.config.update('jax_enable_x64', True) or wrap the call in "
            "'with jax.enable_x64(True):'."
        )


# --------------------------------------------------------------------------
# Scalar losses l(p)
# --------------------------------------------------------------------------


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


def _logcosh(p):
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


# --------------------------------------------------------------------------
# Activations of the single neuron: sigma, sigma', sigma''
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Activation:
    """``sigma`` with closed-form first and second derivatives."""

    name: str
    f: Callable
    d1: Callable
    d2: Callable


def _tanh_d1(z):  # sech^2, accurate in the tails (1 - tanh^2 cancels)
    return 1.0 / jnp.cosh(z) ** 2


def _tanh_d2(z):
    return -2.0 * jnp.tanh(z) / jnp.cosh(z) ** 2


_SQRT_PI_2 = math.sqrt(math.pi) / 2.0

# All odd, smooth, sigma(0) = 0, sigma'(0) = 1 and sigma(z) sigma'(z) / z decreasing
# in |z| -- the conditions the single-neuron bifurcation analysis needs.
ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", jnp.tanh, _tanh_d1, _tanh_d2),
    "arctan": Activation(
        "arctan", jnp.arctan, lambda z: 1.0 / (1.0 + z * z), lambda z: -2.0 * z / (1.0 + z * z) ** 2
    ),
    # inverse square root unit z / sqrt(1 + z^2)
    "isru": Activation(
        "isru", lambda z: z / jnp.sqrt(1.0 + z * z), lambda z: (1.0 + z * z) ** -1.5,
        lambda z: -3.0 * z * (1.0 + z * z) ** -2.5,
    ),
    # erf scaled to unit slope at 0: (sqrt(pi) / 2) erf(z)
    "erf": Activation(
        "erf", lambda z: _SQRT_PI_2 * jax.scipy.special.erf(z), lambda z: jnp.exp(-z * z),
        lambda z: -2.0 * z * jnp.exp(-z * z),
    ),
}


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _top_eig_2x2(a, b, d):
    """Largest eigenvalue of the symmetric matrix [[a, b], [b, d]]."""
    return 0.5 * (a + d) + jnp.hypot(0.5 * (a - d), b)


def _check_box(name: str, box) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a pair [low, high] of numbers, got {box!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ConfigError(f"{name} = [{lo}, {hi}] must be finite with low <= high; fix the range.")
    return lo, hi


def _check_finite(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(v):
        raise ConfigError(f"{name} = {v} must be finite.")
    return v


def _check_count(name: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"{name} must be a positive integer, got {n!r}.")
    return int(n)


def _as_key(key):
    if isinstance(key, (int, np.integer)):
        return jax.random.PRNGKey(int(key))
    return key


# --------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------


class _ScalarToy:
    """Shared machinery of the scalar toy models (subclasses are frozen dataclasses).

    Subclasses define ``dim``, ``target``, ``loss_fn``, ``f``, ``grad_f``,
    ``sharpness`` and ``_sample``.
    """

    name: ClassVar[str]

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

    def init(self, key, n: int) -> jnp.ndarray:
        """``n`` initialisations ``[n, dim]`` drawn from the distribution in the class docstring."""
        require_x64()
        n = _check_count("the number of initialisations", n)
        return self._sample(_as_key(key), n)

    # -- objective ----------------------------------------------------------
    def residual(self, theta):
        """``p = f(theta) - y``."""
        return self.f(theta) - self.target

    def loss(self, theta):
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


# --------------------------------------------------------------------------
# The models
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LogCoshProduct(_ScalarToy):
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
        object.__setattr__(self, "x_box", _check_box("x_box", self.x_box))
        object.__setattr__(self, "y_box", _check_box("y_box", self.y_box))
        object.__setattr__(self, "loss_type", get_scalar_loss(self.loss_type))

    @property
    def loss_fn(self) -> ScalarLoss:
        return self.loss_type

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
        return _top_eig_2x2(s * y * y, s * x * y + t, s * x * x)

    def _sample(self, key, n):
        kx, ky = jax.random.split(key)
        x = jax.random.uniform(kx, (n,), jnp.float64, *self.x_box)
        y = jax.random.uniform(ky, (n,), jnp.float64, *self.y_box)
        return jnp.stack([x, y], axis=-1)


@dataclasses.dataclass(frozen=True)
class TwoLayerLinear(_ScalarToy):
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
        object.__setattr__(self, "y", _check_finite("y", self.y))
        object.__setattr__(self, "width", _check_count("width", self.width))
        object.__setattr__(self, "loss_type", get_scalar_loss(self.loss_type))
        object.__setattr__(self, "init_scale", _check_box("init_scale", self.init_scale))

    @property
    def d(self) -> int:
        return len(self.x)

    @property
    def dim(self) -> int:
        return self.width * self.d + self.width

    @property
    def target(self) -> float:
        return self.y

    @property
    def loss_fn(self) -> ScalarLoss:
        return self.loss_type

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
        return _bilinear_sharpness(s, t, c * v, a, c, complement=self.width >= 2, zero=self.d >= 2)

    def _sample(self, key, n):
        kr, ku, kv = jax.random.split(key, 3)
        rho = jax.random.uniform(kr, (n, 1), jnp.float64, *self.init_scale)
        u = jax.random.normal(ku, (n, self.width * self.d), jnp.float64) / math.sqrt(self.width)
        v = jax.random.normal(kv, (n, self.width), jnp.float64) / math.sqrt(self.width)
        return rho * jnp.concatenate([u, v], axis=-1)


def _bilinear_sharpness(s, t, gw, gv, kappa, *, complement: bool, zero: bool):
    """Top eigenvalue of ``s g g^T + t kappa [[0, I], [I, 0]]`` with ``g = (gw, gv)`` (+ zeros).

    ``complement``: the blocks have dimension >= 2, so ``+-t kappa`` are
    eigenvalues too; ``zero``: there are flat directions (eigenvalue 0).
    """
    gp = (gw + gv) / math.sqrt(2.0)
    gm = (gw - gv) / math.sqrt(2.0)
    npl = jnp.sqrt(jnp.sum(gp * gp, axis=-1))
    nmi = jnp.sqrt(jnp.sum(gm * gm, axis=-1))
    top = _top_eig_2x2(s * npl * npl + t * kappa, s * npl * nmi, s * nmi * nmi - t * kappa)
    if complement:
        top = jnp.maximum(top, jnp.abs(t * kappa))
    if zero:
        top = jnp.maximum(top, 0.0)
    return top


@dataclasses.dataclass(frozen=True)
class SingleNeuron(_ScalarToy):
    """Single-neuron network ``f = v sigma(u x)`` on one point ``(x, y)``; ``theta = (u, v)``.

    Initialisation: uniform on the box ``u_box x v_box``.  Default loss: the
    square loss with ``y = 0`` (the setting of the bifurcation analysis).
    Sharpness: top eigenvalue of ``s g g^T + t hess f`` with
    ``g = (v sigma'(z) x, sigma(z))``, ``hess f = [[v sigma''(z) x^2, sigma'(z) x],
    [sigma'(z) x, 0]]``, ``z = u x``.
    """

    activation: str = "tanh"
    x: float = 1.0
    y: float = 0.0
    loss_type: Any = "square"
    u_box: tuple = (-1.0, 1.0)
    v_box: tuple = (3.0, 6.0)

    name: ClassVar[str] = "single_neuron"
    dim: ClassVar[int] = 2

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"unknown single-neuron activation {self.activation!r}; use one of {sorted(ACTIVATIONS)}."
            )
        x = _check_finite("x", self.x)
        if x == 0.0:
            raise ConfigError("the single-neuron input x must be nonzero (x = 0 makes f constant).")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", _check_finite("y", self.y))
        object.__setattr__(self, "loss_type", get_scalar_loss(self.loss_type))
        object.__setattr__(self, "u_box", _check_box("u_box", self.u_box))
        object.__setattr__(self, "v_box", _check_box("v_box", self.v_box))

    @property
    def sigma(self) -> Activation:
        return ACTIVATIONS[self.activation]

    @property
    def target(self) -> float:
        return self.y

    @property
    def loss_fn(self) -> ScalarLoss:
        return self.loss_type

    def f(self, theta):
        theta = self.as_theta(theta)
        return theta[..., 1] * self.sigma.f(theta[..., 0] * self.x)

    def grad_f(self, theta):
        theta = self.as_theta(theta)
        u, v = theta[..., 0], theta[..., 1]
        z = u * self.x
        return jnp.stack([v * self.sigma.d1(z) * self.x, self.sigma.f(z)], axis=-1)

    def sharpness(self, theta):
        theta = self.as_theta(theta)
        u, v = theta[..., 0], theta[..., 1]
        x, sg = self.x, self.sigma
        z = u * x
        p = v * sg.f(z) - self.y
        s, t = self.loss_fn.hess(p), self.loss_fn.grad(p)
        gu, gv = v * sg.d1(z) * x, sg.f(z)
        return _top_eig_2x2(
            s * gu * gu + t * v * sg.d2(z) * x * x, s * gu * gv + t * sg.d1(z) * x, s * gv * gv
        )

    def _sample(self, key, n):
        ku, kv = jax.random.split(key)
        u = jax.random.uniform(ku, (n,), jnp.float64, *self.u_box)
        v = jax.random.uniform(kv, (n,), jnp.float64, *self.v_box)
        return jnp.stack([u, v], axis=-1)


@dataclasses.dataclass(frozen=True)
class UVModel(_ScalarToy):
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
        object.__setattr__(self, "width", _check_count("width", self.width))
        x = _check_finite("x", self.x)
        if x == 0.0:
            raise ConfigError("the uv-model input x must be nonzero (x = 0 makes f constant).")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", _check_finite("y", self.y))
        object.__setattr__(self, "loss_type", get_scalar_loss(self.loss_type))
        object.__setattr__(self, "init_scale", _check_box("init_scale", self.init_scale))

    @property
    def dim(self) -> int:
        return 2 * self.width

    @property
    def target(self) -> float:
        return self.y

    @property
    def loss_fn(self) -> ScalarLoss:
        return self.loss_type

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
        return _bilinear_sharpness(s, t, k * v, k * u, k, complement=self.width >= 2, zero=False)

    def _sample(self, key, n):
        kr, kg = jax.random.split(key)
        rho = jax.random.uniform(kr, (n, 1), jnp.float64, *self.init_scale)
        return rho * jax.random.normal(kg, (n, 2 * self.width), jnp.float64)


TOY_MODELS = {
    LogCoshProduct.name: LogCoshProduct,
    TwoLayerLinear.name: TwoLayerLinear,
    SingleNeuron.name: SingleNeuron,
    UVModel.name: UVModel,
}


def make_toy(kind: str, **kwargs):
    """Build a toy model by name (``logcosh2``, ``two_layer_linear``, ``single_neuron``, ``uv``)."""
    if kind not in TOY_MODELS:
        raise ConfigError(f"unknown toy model {kind!r}; use one of {sorted(TOY_MODELS)}.")
    cls = TOY_MODELS[kind]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown} for toy model {kind!r}; valid options are {sorted(fields)}."
        )
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return cls(**kwargs)
