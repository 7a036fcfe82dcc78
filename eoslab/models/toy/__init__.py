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

Losses: a model's ``loss_type`` field names a scalar loss of
:data:`eoslab.losses.SCALAR_LOSSES` (``square``, ``logcosh``,
``pseudo_huber``) or is a custom :class:`eoslab.losses.ScalarLoss`; the
single neuron's ``activation`` names one of
:data:`eoslab.models.activations.SMOOTH_ACTIVATIONS`.

The model protocol (:mod:`eoslab.models.base`): ``name``, ``dtype``,
``init(key)`` / ``init(key, n)``, ``num_params``, ``param_shapes``; the data
are built in, so ``loss(theta)`` is the scalar ``loss_fn`` of
:mod:`eoslab.curvature`, and ``sharpness(theta)`` its exact top eigenvalue.

Modules: :mod:`~eoslab.models.toy.base` (the shared machinery and checks),
:mod:`~eoslab.models.toy.bilinear` (``LogCoshProduct``, ``TwoLayerLinear``,
``UVModel``), :mod:`~eoslab.models.toy.neuron` (``SingleNeuron``).
"""
from __future__ import annotations

import dataclasses

from eoslab.errors import ConfigError
from eoslab.models.toy.base import require_x64
from eoslab.models.toy.bilinear import LogCoshProduct, TwoLayerLinear, UVModel
from eoslab.models.toy.neuron import SingleNeuron

__all__ = [
    "LogCoshProduct",
    "SingleNeuron",
    "TOY_MODELS",
    "TwoLayerLinear",
    "UVModel",
    "make_toy",
    "require_x64",
]

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
