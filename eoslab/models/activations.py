"""Activation functions: those of the networks, and the smooth odd ones with closed-form derivatives.

:data:`ACTIVATIONS` are the nonlinearities of the ``fc-*``, ``cnn-*`` and
``resnet`` families (name -> elementwise function).

:data:`SMOOTH_ACTIVATIONS` are the activations ``sigma`` of the single-neuron
toy model (:class:`eoslab.models.toy.SingleNeuron`), each an
:class:`Activation` with ``sigma``, ``sigma'`` and ``sigma''`` in closed form
(the exact sharpness and the alignment curves need them).  All are odd and
smooth with ``sigma(0) = 0``, ``sigma'(0) = 1`` and ``sigma(z) sigma'(z) / z``
decreasing in ``|z|`` -- the conditions of the single-neuron bifurcation
analysis (Song & Yun 2023, Sec. 4).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["ACTIVATIONS", "SMOOTH_ACTIVATIONS", "Activation"]

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "elu": jax.nn.elu,
    # exact (erf) GELU, as PyTorch's nn.GELU default
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "softplus": jax.nn.softplus,
    "hardtanh": jax.nn.hard_tanh,
}


@dataclasses.dataclass(frozen=True)
class Activation:
    """``sigma`` (``f``) with closed-form first and second derivatives ``d1``, ``d2``."""

    name: str
    f: Callable
    d1: Callable
    d2: Callable


def _tanh_d1(z):  # sech^2, accurate in the tails (1 - tanh^2 cancels)
    return 1.0 / jnp.cosh(z) ** 2


def _tanh_d2(z):
    return -2.0 * jnp.tanh(z) / jnp.cosh(z) ** 2


_SQRT_PI_2 = math.sqrt(math.pi) / 2.0

SMOOTH_ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", ACTIVATIONS["tanh"], _tanh_d1, _tanh_d2),
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
