"""The convolutional network of Cohen et al. (2021), ``cnn-<activation>``.

Two ``3 x 3`` convolutions of 32 channels with ``'SAME'`` padding, each
followed by the activation and ``2 x 2`` pooling (max by default, or average),
then flatten and a linear head:

    x -> [conv3x3(32) -> phi -> pool2x2] x 2 -> flatten -> dense(num_outputs)

Inputs are NHWC images; a 2-D ``input_shape`` ``(height, width)`` is read as
one channel.  Standard parameterisation only.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from eoslab.errors import ConfigError
from eoslab.models.init import Conv, Dense
from eoslab.models.activations import ACTIVATIONS

POOLS = ("max", "avg")


def as_images(x, dtype):
    """Inputs as NHWC images in ``dtype`` (a channel axis of 1 added to [n, h, w] inputs)."""
    x = jnp.asarray(x, dtype)
    return x[..., None] if x.ndim == 3 else x


class CNN(nn.Module):
    num_outputs: int
    activation: str = "relu"
    channels: tuple[int, ...] = (32, 32)
    pool: str = "max"
    use_bias: bool = True
    init_scheme: str = "pytorch"
    zero_last: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = as_images(x, self.dtype)
        pool = nn.max_pool if self.pool == "max" else nn.avg_pool
        for i, c in enumerate(self.channels):
            x = Conv(c, 3, use_bias=self.use_bias, init_scheme=self.init_scheme, dtype=self.dtype, name=f"conv_{i}")(x)
            x = pool(ACTIVATIONS[self.activation](x), (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        return Dense(
            self.num_outputs, use_bias=self.use_bias, init_scheme=self.init_scheme, position="output",
            zero=self.zero_last, dtype=self.dtype, name="head",
        )(x)


def image_shape(name: str, input_shape: tuple) -> tuple:
    """``(height, width, channels)`` from an image ``input_shape``, or ConfigError."""
    if len(input_shape) == 2:
        return (*input_shape, 1)
    if len(input_shape) != 3:
        raise ConfigError(
            f"{name} needs image inputs but input_shape is {tuple(input_shape)}; "
            "pass input_shape=(height, width, channels) or (height, width)."
        )
    return tuple(input_shape)


def build(*, activation, input_shape, num_outputs, bias, init, zero_last, dtype, name,
          pool: str = "max", channels=(32, 32), **_):
    if pool not in POOLS:
        raise ConfigError(f"unknown pool {pool!r} for {name}; choose one of {', '.join(POOLS)}.")
    channels = tuple(int(c) for c in channels)
    if not channels or min(channels) < 1:
        raise ConfigError(f"channels must be a non-empty list of positive integers, got {channels}; pass e.g. channels=(32, 32).")
    h, w, _c = image_shape(name, input_shape)
    if min(h, w) < 2 ** len(channels):
        raise ConfigError(
            f"{name} pools {len(channels)} times by 2 but the images are {h}x{w}; "
            f"use images of at least {2 ** len(channels)}x{2 ** len(channels)} or fewer channels entries."
        )
    return CNN(
        num_outputs=num_outputs, activation=activation, channels=channels, pool=pool,
        use_bias=bias, init_scheme=init, zero_last=zero_last, dtype=dtype,
    )
