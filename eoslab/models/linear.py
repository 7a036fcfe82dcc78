"""Deep linear network ``deep-linear``: ``f(x) = vec(x) W_1 W_2 ... W_L`` (+ biases if asked).

The dense layers of :class:`eoslab.models.mlp.MLP` without activations, bias
off by default; all initialisations and parameterisations are supported.  The
loss landscape is non-convex although the function class is linear, which
makes it the simplest model with progressive sharpening and edge-of-stability
dynamics (see Song & Yun 2023 for the two-layer case).
"""
from __future__ import annotations

import jax.numpy as jnp

from eoslab.models.init import check_bias_scale
from eoslab.models.mlp import MLP


def build(*, input_shape, num_outputs, widths, bias, init, param, zero_last, dtype,
          bias_scale: float = 1.0, **_):
    check_bias_scale(bias_scale)
    return MLP(
        widths=tuple(widths), num_outputs=num_outputs, activation=None, use_bias=bias,
        init_scheme=init, parameterisation=param, zero_last=zero_last, beta=float(bias_scale), dtype=dtype,
    )


def end_to_end_matrix(model, params) -> jnp.ndarray:
    """The ``[prod(input_shape), num_outputs]`` matrix ``M`` with ``f(x) = vec(x) M + c``.

    Includes the parameterisation's multipliers (so for ``param='standard'`` it
    is the product of the kernels).  Valid for any model that is affine in its
    input.
    """
    d = 1
    for n in model.input_shape:
        d *= n
    eye = jnp.eye(d, dtype=model.dtype).reshape(d, *model.input_shape)
    zero = jnp.zeros((1, *model.input_shape), model.dtype)
    return model.apply(params, eye) - model.apply(params, zero)
