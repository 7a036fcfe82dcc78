"""Initialisations and parameterisations.

A layer with fan-in ``n`` computes ``z = a_w * (x @ W) + a_b * b`` where the
*multipliers* ``a_w, a_b`` are fixed numbers and ``W, b`` are the trained
parameters.  The initialisation (``init=``) fixes the distribution of the
*effective* weights ``a_w W`` and biases ``a_b b`` at initialisation; the
parameterisation (``param=``) fixes how that scale is split between the
multiplier and the stored parameter, which changes the gradient, the Hessian
and hence the learning-rate scaling with width, but not the function at
initialisation (muP's output layer excepted, below).

Initialisations of the effective weights (``n`` = fan-in = product of all
kernel axes but the last, so ``k*k*c_in`` for a ``k x k`` convolution):

* ``pytorch`` -- PyTorch's ``nn.Linear`` / ``nn.Conv2d`` default, used by
  Cohen et al. (2021): weights and biases ``U(-1/sqrt(n), 1/sqrt(n))``, so the
  weight variance is ``1/(3n)``.
* ``he`` -- ``N(0, 2/n)``, biases 0 (He et al., 2015).
* ``lecun`` -- ``N(0, 1/n)``, biases 0 (LeCun et al., 1998).
* ``kalra`` -- Kalra & Barkeshli (2023): ``N(0, 2/n)`` in hidden layers,
  ``N(0, 1/n)`` in the last layer, biases 0.
* ``zero_last=True`` -- the last layer's weights and bias start at 0 (the
  network outputs 0 at initialisation).

Parameterisations (for ``W`` of a layer with fan-in ``n``, fan-out ``m``):

* ``standard`` -- ``a_w = a_b = 1``; ``W`` is drawn from the initialisation.
* ``ntk`` -- the neural-tangent parameterisation of Jacot et al. (2018):
  ``a_w = 1/sqrt(n)`` and ``W = sqrt(n) * W_std``, i.e. ``W`` has variance
  ``sigma^2 = var_init * n`` (unit variance for ``lecun``, ``U(-1, 1)`` for
  ``pytorch``); ``a_b = beta`` (option ``bias_scale``, default 1) and
  ``b = b_std / beta``.  The function at initialisation has exactly the
  standard distribution.
* ``mup`` -- the maximal-update parameterisation in the abc form of Yang & Hu
  (2021, "Tensor Programs IV"), the one that is muP for SGD with a single
  global learning rate (``c = 0``):

  ======== ============================== ============================
  layer    multiplier ``a_w``             variance of stored ``W``
  ======== ============================== ============================
  input    ``sqrt(m)``  (``a = -1/2``)    ``var_init / m`` (``b = 1/2``)
  hidden   ``1``        (``a = 0``)       ``var_init``     (``b = 1/2``)
  output   ``1/sqrt(n)`` (``a = 1/2``)    ``var_init``     (``b = 1/2``)
  ======== ============================== ============================

  So the effective input and hidden weights have the standard fan-in
  variance, and the effective output weights have variance ``var_init / n``,
  i.e. ``1/fan_in^2`` for lecun: we chose the output *multiplier* form.  The
  network output at initialisation is therefore ``1/sqrt(n)`` times the
  standard one (it vanishes with width, as muP requires), while all hidden
  features have the standard scale.  By the abc symmetry this is equivalent
  to Yang et al. (2021, "Tensor Programs V", Table 3) -- no multipliers,
  output variance ``1/n^2`` -- trained with per-layer learning rates (input
  ``x m``, output ``x 1/n``).  Hidden and input biases are treated as input
  weights (``a_b = sqrt(m)``, ``b = b_std / sqrt(m)``); the output bias is
  standard.  A network with no hidden layer has no width, and its single
  layer is standard.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from eoslab.errors import ConfigError

INITS = ("pytorch", "he", "lecun", "kalra")
PARAMETERISATIONS = ("standard", "ntk", "mup")

Initializer = Callable[[jax.Array, tuple, Any], jax.Array]


def check_init(init: str) -> str:
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}; choose one of {', '.join(INITS)}.")
    return init


def check_param(param: str) -> str:
    if param not in PARAMETERISATIONS:
        raise ConfigError(
            f"unknown param {param!r}; choose one of {', '.join(PARAMETERISATIONS)}."
        )
    return param


def check_bias_scale(beta) -> float:
    try:
        ok = float(beta) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"bias_scale (NTK's beta) must be a positive number, got {beta!r}; pass e.g. bias_scale=1.0.")
    return float(beta)


def is_last(position: str) -> bool:
    return position in ("output", "only")


def weight_variance(init: str, fan_in: int, *, last: bool) -> float:
    """Variance of an effective weight entry at initialisation."""
    if init == "pytorch":
        return 1.0 / (3.0 * fan_in)
    if init == "he" or (init == "kalra" and not last):
        return 2.0 / fan_in
    return 1.0 / fan_in  # lecun, and kalra's last layer


def _draw(key, shape, dtype, uniform: bool) -> jax.Array:
    """``U(-1, 1)`` or ``N(0, 1)`` draws of ``shape``.

    Drawn as a flat block of power-of-two length and cut to size: eager
    initialisation of many differently shaped layers then reuses a handful of
    compiled random kernels (compiling one per shape dominates init on CPU).
    """
    n = math.prod(shape)
    block = 1 << max(n - 1, 0).bit_length()
    if uniform:
        flat = jax.random.uniform(key, (block,), dtype, -1.0, 1.0)
    else:
        flat = jax.random.normal(key, (block,), dtype)
    return flat[:n].reshape(shape)


def weight_init(init: str, *, last: bool, zero: bool = False, scale: float = 1.0) -> Initializer:
    """Flax initializer for a kernel whose last axis is the fan-out.

    Draws the standard effective weight and multiplies it by ``scale`` (the
    parameterisation's ratio of stored to effective weight, see :class:`Scaling`).
    """

    def initializer(key, shape, dtype=jnp.float32):
        if zero:
            return jnp.zeros(shape, dtype)
        fan_in = math.prod(shape[:-1])
        if init == "pytorch":
            factor = scale / math.sqrt(fan_in)
        else:
            factor = scale * math.sqrt(weight_variance(init, fan_in, last=last))
        return (factor * _draw(key, shape, dtype, uniform=init == "pytorch")).astype(dtype)

    return initializer


def bias_init(init: str, fan_in: int, *, zero: bool = False, scale: float = 1.0) -> Initializer:
    """Flax initializer for a bias: ``U(+-1/sqrt(fan_in))`` for pytorch, else 0."""

    def initializer(key, shape, dtype=jnp.float32):
        if zero or init != "pytorch":
            return jnp.zeros(shape, dtype)
        return (scale / math.sqrt(fan_in) * _draw(key, shape, dtype, uniform=True)).astype(dtype)

    return initializer


@dataclasses.dataclass(frozen=True)
class Scaling:
    """Multipliers of one layer and the factors applied to the standard draws."""

    weight_mult: float = 1.0
    bias_mult: float = 1.0
    weight_scale: float = 1.0  # stored W = weight_scale * (standard draw)
    bias_scale: float = 1.0  # stored b = bias_scale * (standard draw)


def layer_scaling(param: str, *, fan_in: int, fan_out: int, position: str, beta: float = 1.0) -> Scaling:
    """The :class:`Scaling` of a dense layer under parameterisation ``param``."""
    if param == "ntk":
        root = math.sqrt(fan_in)
        return Scaling(1.0 / root, beta, root, 1.0 / beta)
    if param == "mup" and position == "input":
        root = math.sqrt(fan_out)
        return Scaling(root, root, 1.0 / root, 1.0 / root)
    if param == "mup" and position == "hidden":
        root = math.sqrt(fan_out)
        return Scaling(1.0, root, 1.0, 1.0 / root)
    if param == "mup" and position == "output":
        root = math.sqrt(fan_in)
        # stored W has the standard variance; the multiplier 1/sqrt(n) makes the
        # effective variance var_init / n.
        return Scaling(1.0 / root, 1.0, 1.0, 1.0)
    return Scaling()  # standard, and muP's single layer ('only')


class Dense(nn.Module):
    """Dense layer ``a_w * x @ kernel + a_b * bias`` under an init and parameterisation.

    ``position`` is ``'input'``, ``'hidden'``, ``'output'`` or ``'only'`` (a
    single layer that is both input and output, see :func:`dense_positions`).
    """

    features: int
    use_bias: bool = True
    init_scheme: str = "pytorch"
    parameterisation: str = "standard"
    position: str = "hidden"
    zero: bool = False
    beta: float = 1.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = jnp.asarray(x, self.dtype)
        fan_in = x.shape[-1]
        s = layer_scaling(
            self.parameterisation, fan_in=fan_in, fan_out=self.features,
            position=self.position, beta=self.beta,
        )
        last = is_last(self.position)
        kernel = self.param(
            "kernel",
            weight_init(self.init_scheme, last=last, zero=self.zero, scale=s.weight_scale),
            (fan_in, self.features),
            self.dtype,
        )
        y = x @ kernel
        if s.weight_mult != 1.0:
            y = y * jnp.asarray(s.weight_mult, self.dtype)
        if self.use_bias:
            bias = self.param(
                "bias",
                bias_init(self.init_scheme, fan_in, zero=self.zero, scale=s.bias_scale),
                (self.features,),
                self.dtype,
            )
            y = y + (bias * jnp.asarray(s.bias_mult, self.dtype) if s.bias_mult != 1.0 else bias)
        return y


def dense_positions(num_layers: int) -> list[str]:
    """Position of each of ``num_layers`` stacked dense layers."""
    if num_layers == 1:
        return ["only"]
    return ["input"] + ["hidden"] * (num_layers - 2) + ["output"]


class Conv(nn.Module):
    """``k x k`` convolution (NHWC) in the standard parameterisation, fan-in ``k*k*c_in``."""

    features: int
    kernel_size: int = 3
    strides: int = 1
    use_bias: bool = True
    init_scheme: str = "pytorch"
    last: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = jnp.asarray(x, self.dtype)
        k = self.kernel_size
        shape = (k, k, x.shape[-1], self.features)
        kernel = self.param("kernel", weight_init(self.init_scheme, last=self.last), shape, self.dtype)
        y = jax.lax.conv_general_dilated(
            x, kernel, (self.strides, self.strides), "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        if self.use_bias:
            fan_in = math.prod(shape[:-1])
            y = y + self.param("bias", bias_init(self.init_scheme, fan_in), (self.features,), self.dtype)
        return y
