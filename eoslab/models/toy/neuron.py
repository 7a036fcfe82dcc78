"""The single-neuron toy model ``f = v sigma(u x)`` (Song & Yun 2023, Sec. 4)."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from eoslab.errors import ConfigError
from eoslab.losses import get_scalar_loss
from eoslab.models.activations import SMOOTH_ACTIVATIONS, Activation
from eoslab.models.toy.base import ScalarToy, check_box, check_finite, check_input, top_eig_2x2


@dataclasses.dataclass(frozen=True)
class SingleNeuron(ScalarToy):
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
        if self.activation not in SMOOTH_ACTIVATIONS:
            raise ConfigError(
                f"unknown single-neuron activation {self.activation!r}; use one of {sorted(SMOOTH_ACTIVATIONS)}."
            )
        object.__setattr__(self, "x", check_input("single-neuron", self.x))
        object.__setattr__(self, "y", check_finite("y", self.y))
        object.__setattr__(self, "loss_type", get_scalar_loss(self.loss_type))
        object.__setattr__(self, "u_box", check_box("u_box", self.u_box))
        object.__setattr__(self, "v_box", check_box("v_box", self.v_box))

    @property
    def sigma(self) -> Activation:
        return SMOOTH_ACTIVATIONS[self.activation]

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
        return top_eig_2x2(
            s * gu * gu + t * v * sg.d2(z) * x * x, s * gu * gv + t * sg.d1(z) * x, s * gv * gv
        )

    def _sample(self, key, n):
        ku, kv = jax.random.split(key)
        u = jax.random.uniform(ku, (n,), jnp.float64, *self.u_box)
        v = jax.random.uniform(kv, (n,), jnp.float64, *self.v_box)
        return jnp.stack([u, v], axis=-1)
