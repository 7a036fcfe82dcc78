"""The :class:`Model` wrapper, the registry of model names and :func:`make_model`.

A model is a flax.linen module plus its input shape and output count.  Its
parameters are a plain nested dict (no ``batch_stats`` or other mutable
collections), and ``apply(params, x)`` is a pure function of both, so the
curvature code can differentiate ``loss_fn(params)`` twice and ensembles can
``vmap`` over params.

The toy models (:mod:`eoslab.models.toy`: scalar models trained on one
built-in data point, float64) follow this protocol where it fits: ``name``,
``dtype``, ``init(key)`` (a key or an integer seed; ``init(key, n)`` gives
``n`` initialisations ``[n, dim]``), ``num_params`` and ``param_shapes``.
Their data being part of the model, they give ``loss(params)`` in place of
``apply(params, x)`` -- a scalar ``loss_fn`` that :mod:`eoslab.curvature`
takes as it is -- and their exact, closed-form ``sharpness(params)``.

Names are ``<family>-<activation>`` for ``fc`` and ``cnn`` (activations
``tanh, relu, elu, gelu, softplus, hardtanh``), plus ``resnet``,
``resnet-bn`` and ``deep-linear``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from eoslab.errors import ConfigError, InputError
from eoslab.models import cnn, linear, mlp, resnet
from eoslab.models.activations import ACTIVATIONS
from eoslab.models.init import check_init, check_param


@dataclasses.dataclass(frozen=True)
class Model:
    """A flax module with its input shape (no batch axis) and number of outputs.

    ``apply`` is jit-compiled once per distinct module (and inlined when called
    under another transformation); ``init`` runs eagerly.
    """

    name: str
    module: nn.Module
    input_shape: tuple
    num_outputs: int
    dtype: Any = np.dtype("float32")

    def init(self, key) -> dict:
        """Fresh parameters (a plain nested dict) from a PRNG key or an integer seed."""
        x = jnp.zeros((1, *self.input_shape), self.dtype)
        return dict(self.module.init(as_key(key), x)["params"])

    def apply(self, params, x) -> jnp.ndarray:
        """Outputs ``[N, num_outputs]`` for inputs ``x`` of shape ``[N, *input_shape]``."""
        x = jnp.asarray(x)
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise InputError(
                f"model {self.name} expects inputs of shape [N, {', '.join(map(str, self.input_shape))}] "
                f"but got {list(x.shape)}; reshape the data or rebuild the model with its input_shape."
            )
        return _apply(self.module, params, x)

    def num_params(self, params) -> int:
        """Total number of scalar parameters (``params`` may be shapes from ``jax.eval_shape``)."""
        return int(sum(math.prod(np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(params)))

    def param_shapes(self) -> dict:
        """The params pytree as ``jax.ShapeDtypeStruct`` leaves, without computing anything."""
        return jax.eval_shape(self.init, jax.random.PRNGKey(0))


def as_key(key):
    """A PRNG key from a key or an integer seed (every model's ``init`` takes either)."""
    if isinstance(key, (int, np.integer)):
        return jax.random.PRNGKey(int(key))
    return key


@functools.partial(jax.jit, static_argnums=0)
def _apply(module, params, x):
    # jit-compiled per distinct module (flax modules hash by their fields);
    # inlined when the caller is itself traced.
    return module.apply({"params": params}, x)


@dataclasses.dataclass(frozen=True)
class Family:
    """How to build the modules of one registered name."""

    build: Callable[..., nn.Module]
    options: tuple[str, ...] = ()  # extra keyword options it accepts
    default_widths: tuple[int, ...] | None = None  # None: does not take widths
    default_bias: bool = True
    params: tuple[str, ...] = ("standard",)  # supported parameterisations


def _registry() -> dict[str, Family]:
    families = {}
    dense_params = ("standard", "ntk", "mup")
    for act in ACTIVATIONS:
        families[f"fc-{act}"] = Family(
            functools.partial(mlp.build, activation=act), ("bias_scale",), (200, 200), True, dense_params
        )
    for act in ACTIVATIONS:
        families[f"cnn-{act}"] = Family(functools.partial(cnn.build, activation=act), ("pool", "channels"))
    families["resnet"] = Family(functools.partial(resnet.build, norm=False), ("width", "blocks", "activation"))
    families["resnet-bn"] = Family(functools.partial(resnet.build, norm=True), ("width", "blocks", "activation"))
    families["deep-linear"] = Family(linear.build, ("bias_scale",), (200, 200), False, dense_params)
    return families


_FAMILIES = _registry()


def available_models() -> list[str]:
    """All registered model names."""
    return list(_FAMILIES)


def _positive_ints(value, what: str, example: str, *, allow_empty: bool) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value)
        ok = all(int(v) == v and v >= 1 for v in value) and (allow_empty or out)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{what} must be a sequence of positive integers, got {value!r}; pass e.g. {example}.")
    return out


def _check_dtype(dtype) -> np.dtype:
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype("float32"), np.dtype("float64")):
        raise ConfigError(f"unsupported model dtype {dtype!r}; use float32 (default) or float64.")
    if dt == np.dtype("float64") and not jax.config.jax_enable_x64:
        raise ConfigError(
            "float64 models need 64-bit JAX; call jax.config.update('jax_enable_x64', True) before building the model."
        )
    return dt


def make_model(
    name: str,
    *,
    input_shape: Sequence[int],
    num_outputs: int,
    widths: Sequence[int] | None = None,
    bias: bool | None = None,
    init: str = "pytorch",
    param: str = "standard",
    zero_last: bool = False,
    dtype=jnp.float32,
    **options,
) -> Model:
    """Build the registered model ``name``.

    Args:
      name: one of :func:`available_models`.
      input_shape: shape of one example (no batch axis); images are NHWC.
      num_outputs: width of the linear head.
      widths: hidden widths of ``fc-*`` and ``deep-linear`` (default
        ``(200, 200)``; ``()`` for none); not accepted by cnn / resnet.
      bias: biases on or off (default on, off for ``deep-linear``).
      init: ``pytorch``, ``he``, ``lecun`` or ``kalra`` (see :mod:`eoslab.models.init`).
      param: ``standard``, ``ntk`` or ``mup`` (the last two for fc and deep-linear).
      zero_last: start the last layer's weights and bias at 0.
      dtype: float32, or float64 with ``jax_enable_x64`` on.
      **options: family options: ``bias_scale`` (NTK's beta; fc, deep-linear),
        ``pool`` ('max' / 'avg') and ``channels`` (cnn), ``width``,
        ``blocks`` and ``activation`` (resnet).
    """
    if name not in _FAMILIES:
        raise ConfigError(
            f"unknown model {name!r}; choose one of {', '.join(_FAMILIES)} "
            "(fc and cnn names are <family>-<activation>)."
        )
    family = _FAMILIES[name]
    input_shape = _positive_ints(input_shape, "input_shape", "input_shape=(8, 8, 1)", allow_empty=False)
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, (int, np.integer)) or num_outputs < 1:
        raise ConfigError(f"num_outputs must be a positive integer, got {num_outputs!r}; pass e.g. num_outputs=10.")
    if family.default_widths is None and widths is not None:
        raise ConfigError(
            f"{name} does not take widths; drop widths (use the options "
            f"{', '.join(family.options)} to size it)."
        )
    if widths is None:
        widths = family.default_widths or ()
    widths = _positive_ints(widths, "widths", "widths=(200, 200)", allow_empty=True)
    if bias is None:
        bias = family.default_bias
    if not isinstance(bias, (bool, np.bool_)) or not isinstance(zero_last, (bool, np.bool_)):
        raise ConfigError(f"bias and zero_last must be true or false, got {bias!r} and {zero_last!r}; pass booleans.")
    check_init(init)
    check_param(param)
    if param not in family.params:
        raise ConfigError(
            f"param={param!r} is not supported by {name}; use param='standard' "
            "(ntk and mup exist for fc-* and deep-linear)."
        )
    unknown = sorted(set(options) - set(family.options))
    if unknown:
        accepted = ", ".join(family.options) or "none"
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} for {name}; accepted options: {accepted}.")
    if "bias_scale" in options and param != "ntk":
        raise ConfigError(f"bias_scale is NTK's bias multiplier beta but param={param!r}; drop it or use param='ntk'.")
    dt = _check_dtype(dtype)
    module = family.build(
        input_shape=input_shape, num_outputs=int(num_outputs), widths=widths, bias=bool(bias),
        init=init, param=param, zero_last=bool(zero_last), dtype=dt, name=name, **options,
    )
    return Model(name=name, module=module, input_shape=input_shape, num_outputs=int(num_outputs), dtype=dt)
