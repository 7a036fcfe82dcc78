"""A small residual network, ``resnet`` and ``resnet-bn``.

A ``3 x 3`` convolutional stem of ``width`` channels, then three stages of
``blocks`` basic residual blocks with ``width, 2 width, 4 width`` channels
(stride 2 at the first block of stages 2 and 3), global average pooling and a
linear head.  A basic block is

    y = phi(x + N(conv3x3(phi(N(conv3x3_s(x))))))    (He et al., 2016)

with a ``1 x 1`` strided convolution (and ``N``) on the shortcut when the shape
changes; ``N`` is batch norm for ``resnet-bn`` and the identity for ``resnet``.

Batch norm, by design, always uses the statistics of the batch passed to
``apply`` (training mode) and keeps no running averages: the model is then a
deterministic function of ``(params, x)``, so full-batch losses, gradients and
Hessians are well defined and the params pytree has no ``batch_stats``.  The
price: predictions depend on the other examples of the batch (evaluate test
data in batches, as in training).  Convolutions followed by batch norm have no
bias (its shift plays that role); ``bias`` then only controls the head's.
Standard parameterisation only.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from eoslab.errors import ConfigError
from eoslab.models.cnn import as_images, image_shape
from eoslab.models.init import Conv, Dense
from eoslab.models.activations import ACTIVATIONS


class BatchNorm(nn.Module):
    """``scale * (x - mean) / sqrt(var + eps) + shift`` over the batch and spatial axes."""

    eps: float = 1e-5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        axes = tuple(range(x.ndim - 1))
        mean = x.mean(axes)
        var = jnp.square(x - mean).mean(axes)
        y = (x - mean) * jax.lax.rsqrt(var + self.eps)
        scale = self.param("scale", nn.initializers.ones, (c,), self.dtype)
        shift = self.param("shift", nn.initializers.zeros, (c,), self.dtype)
        return y * scale + shift


class Block(nn.Module):
    features: int
    strides: int = 1
    norm: bool = False
    activation: str = "relu"
    use_bias: bool = True
    init_scheme: str = "pytorch"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        bias = self.use_bias and not self.norm
        norm = (lambda n: BatchNorm(dtype=self.dtype, name=n)) if self.norm else (lambda n: (lambda z: z))

        def conv(k, s, n):
            return Conv(self.features, k, s, use_bias=bias, init_scheme=self.init_scheme, dtype=self.dtype, name=n)

        y = act(norm("bn_0")(conv(3, self.strides, "conv_0")(x)))
        y = norm("bn_1")(conv(3, 1, "conv_1")(y))
        if self.strides != 1 or x.shape[-1] != self.features:
            x = norm("bn_shortcut")(conv(1, self.strides, "conv_shortcut")(x))
        return act(x + y)


class ResNet(nn.Module):
    num_outputs: int
    width: int = 16
    blocks: int = 1
    norm: bool = False
    activation: str = "relu"
    use_bias: bool = True
    init_scheme: str = "pytorch"
    zero_last: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = as_images(x, self.dtype)
        x = Conv(self.width, 3, use_bias=self.use_bias and not self.norm, init_scheme=self.init_scheme,
                 dtype=self.dtype, name="stem")(x)
        if self.norm:
            x = BatchNorm(dtype=self.dtype, name="stem_bn")(x)
        x = ACTIVATIONS[self.activation](x)
        for stage in range(3):
            for b in range(self.blocks):
                x = Block(
                    self.width * 2**stage, strides=2 if (stage > 0 and b == 0) else 1,
                    norm=self.norm, activation=self.activation, use_bias=self.use_bias,
                    init_scheme=self.init_scheme, dtype=self.dtype, name=f"stage{stage}_block{b}",
                )(x)
        x = x.mean(axis=(1, 2))
        return Dense(
            self.num_outputs, use_bias=self.use_bias, init_scheme=self.init_scheme, position="output",
            zero=self.zero_last, dtype=self.dtype, name="head",
        )(x)


def build(*, norm, input_shape, num_outputs, bias, init, zero_last, dtype, name,
          width: int = 16, blocks: int = 1, activation: str = "relu", **_):
    image_shape(name, input_shape)
    if activation not in ACTIVATIONS:
        raise ConfigError(
            f"unknown activation {activation!r} for {name}; choose one of {', '.join(ACTIVATIONS)}."
        )
    for key, value in (("width", width), ("blocks", blocks)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} option {key} must be a positive integer, got {value!r}; pass e.g. {key}=1.")
    return ResNet(
        num_outputs=num_outputs, width=int(width), blocks=int(blocks), norm=norm, activation=activation,
        use_bias=bias, init_scheme=init, zero_last=zero_last, dtype=dtype,
    )
