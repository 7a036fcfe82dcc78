"""Fully connected networks ``fc-<activation>``.

``f(x) = W_L phi(... phi(W_1 vec(x) + b_1) ...) + b_L``: any number of hidden
layers (``widths``, possibly empty), the activation ``phi`` after each hidden
layer and a linear head.  Inputs are flattened inside the model.  All
initialisations and the standard / NTK / muP parameterisations of
:mod:`eoslab.models.init` are supported.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from eoslab.models.activations import ACTIVATIONS
from eoslab.models.init import Dense, check_bias_scale, dense_positions, is_last


class MLP(nn.Module):
    """Dense layers of sizes ``(*widths, num_outputs)``; ``activation=None`` is linear."""

    widths: tuple[int, ...]
    num_outputs: int
    activation: str | None = "relu"
    use_bias: bool = True
    init_scheme: str = "pytorch"
    parameterisation: str = "standard"
    zero_last: bool = False
    beta: float = 1.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = jnp.asarray(x, self.dtype).reshape(x.shape[0], -1)
        sizes = (*self.widths, self.num_outputs)
        for i, (size, position) in enumerate(zip(sizes, dense_positions(len(sizes)))):
            last = is_last(position)
            x = Dense(
                size, use_bias=self.use_bias, init_scheme=self.init_scheme,
                parameterisation=self.parameterisation, position=position,
                zero=self.zero_last and last, beta=self.beta, dtype=self.dtype,
                name=f"dense_{i}",
            )(x)
            if not last and self.activation is not None:
                x = ACTIVATIONS[self.activation](x)
        return x


def build(*, activation, input_shape, num_outputs, widths, bias, init, param, zero_last, dtype,
          bias_scale: float = 1.0, **_):
    check_bias_scale(bias_scale)
    return MLP(
        widths=tuple(widths), num_outputs=num_outputs, activation=activation, use_bias=bias,
        init_scheme=init, parameterisation=param, zero_last=zero_last, beta=float(bias_scale), dtype=dtype,
    )
