r"""Trajectory alignment at the edge of stability (Song & Yun, NeurIPS 2023).

Claim of the paper: when GD runs at the edge of stability (EoS), trajectories
from different initialisations, written in suitable coordinates ``(p, q)``,
align on one *bifurcation diagram* that does not depend on the
initialisation; proven for a two-layer linear network and a single-neuron
nonlinear network, each trained on one data point.  This module runs
ensembles of such trajectories (one ``vmap`` over members of a ``lax.scan`` over steps), measures
their distance to the curve and writes the claims table.

Derivation
==========

1-D map.  Take a scalar model ``f(theta)`` and the loss ``L = l(f - y)``
with ``l`` even and convex, ``p = f - y``.  A GD step
``theta' = theta - eta l'(p) grad f`` changes ``f`` by
``-eta l'(p) |grad f|^2 + O(eta^2)``.  With

    q = 2 / (eta |grad_theta f|^2)

the linearised step is the 1-D map (``q`` frozen)

    g_q(p) = p - (2 / q) l'(p).

*Fixed point and flip bifurcation.*  ``p = 0`` is a fixed point with
``g_q'(0) = 1 - 2 l''(0) / q``.  It is stable for ``q > r(0) = l''(0)`` and
``g_q'(0)`` crosses ``-1`` at ``q = r(0)`` (for the losses here ``l''(0) = 1``,
i.e. the sharpness ``l''(0)|grad f|^2 = 2/(eta q)`` crosses ``2/eta``): a
period-doubling (flip) bifurcation; equivalently the derivative of the second
iterate at the fixed point, ``(g_q o g_q)'(0) = g_q'(0)^2``, crosses ``+1``.

*Period-2 orbit.*  ``l'`` is odd, so ``g_q`` is odd and has the symmetric
2-cycle ``p -> -p -> p`` where ``g_q(p) = -p``, i.e. ``2p = (2/q) l'(p)``:

    q = r(p) := l'(p) / p            (log cosh: q = tanh(p) / p).

It exists for ``q < r(0)`` when ``r`` decreases from ``r(0)`` to 0 on
``p > 0``, and it is stable: ``(g o g)'(p) = g'(p) g'(-p) = (1 - 2 p l''(p) / l'(p))^2 < 1``
iff ``0 < p l''/l' < 1``, i.e. ``l'' > 0`` and ``r' < 0`` -- a supercritical
flip.  (The multiplier of the 2-cycle is a square, so it never crosses -1:
no further period doubling along the branch; the cycle can only lose
stability through +1, where ``h' = 0`` -- see the single neuron below.)
The square loss has ``r = 1``: no curve at all (the map is linear and GD
diverges or catapults), so alignment needs a loss with ``r`` decreasing;
:func:`check_alignment` raises :class:`~eoslab.errors.ConfigError` otherwise.

Reparameterisations (the coordinates in which each toy model aligns)
--------------------------------------------------------------------

* ``logcosh2``, ``two_layer_linear``, ``uv``: ``p = f - y``,
  ``q = 2 / (eta |grad f|^2)`` as above; ``|grad f|^2 = x^2 + y^2`` for
  ``L(x, y) = log cosh(xy)``, ``|x|^2 |v|^2 + |U x|^2`` for ``f = v^T U x`` and
  ``x^2 (|u|^2 + |v|^2) / n`` for the uv model.  For the two-layer linear
  network this is, as we recall it, the paper's canonical reparameterisation
  (Song & Yun, Sec. 3: ``p`` the residual, ``q`` the ratio of ``2/eta`` to the
  sharpness at the valley); we could not consult the text while writing this
  and derived it as above, so read it as "the natural one", not a quotation.
* ``single_neuron`` ``f = v sigma(u x)``, square loss, ``y = 0``:
  ``p = u x`` (the pre-activation) and ``q = 2 / (eta x^2 v^2)``.  GD on ``u``
  is then *exactly* ``p' = p - (2/q) sigma(p) sigma'(p)``, the 1-D map with
  ``l'`` replaced by ``h = sigma sigma'``, so the curve is
  ``q = sigma(p) sigma'(p) / p`` (``tanh(p) sech^2(p) / p`` for tanh), with the
  flip at ``q = sigma'(0)^2 = 1``.  This is again our reconstruction of the
  paper's single-neuron coordinates (``q`` is ``2/eta`` over the sharpness
  ``x^2 v^2`` of the valley ``u = 0``).  The 2-cycle is stable only while
  ``h' > 0`` (``|p| < 0.658``, ``q > 0.585`` for tanh).

Exact reduced dynamics
----------------------

For all four toy models GD closes *exactly* on ``(p, q)`` (tested against the
full GD in the tests; :func:`reduced_step`):

* bilinear models (``a = U x``; ``c = |x|^2`` for ``v^T U x``, ``c = x^2/n``
  for uv, ``c = 1, y = 0`` for ``log cosh(xy)``), ``t = l'(p)``, ``f = p + y``,
  ``s = |grad f|^2 = 2/(eta q)``: from ``a' = a - eta t c v`` and
  ``v' = v - eta t a``,

      f' = f - eta t s + eta^2 t^2 c f
      s' = s (1 + eta^2 t^2 c) - 4 eta t c f,

  i.e. ``p' = p - (2/q) t + eta^2 t^2 c f`` and
  ``q' = q / (1 + eta^2 t^2 c - 2 eta^2 q t c f)``;
* single neuron (square loss, ``y = 0``): ``p' = p - (2/q) sigma(p) sigma'(p)``,
  ``v' = v (1 - eta sigma(p)^2)`` so ``q' = q / (1 - eta sigma(p)^2)^2``.

Corrected curve: the slow manifold (why it fits better than ``r(p)``)
--------------------------------------------------------------------

``q`` is not frozen: on the 2-cycle ``|grad f|^2`` shrinks every step, by a
relative ``eta^2 t^2 c`` (bilinear; the ``eta^2 t^2 c f`` term in ``p'`` is the
exact, not linearised, change of ``f``) or ``2 eta sigma^2`` (single neuron).
The trajectories therefore do not sit on ``r(p)`` but on the attracting
invariant curve ``q = Q(p)`` of the exact map (the slow manifold), and they
ride it to ``p = 0`` and the final ``q* = Q(0) > r(0)``.  Write
``Q = r + eps Q1`` and ask that the curve be invariant under one step:
``(p, Q(p)) -> (p1, q1)`` with ``q1 = Q(p1)``, ``p1 = -p + eps delta``.  To
first order (``r' = dr/dp``, ``h = l'`` or ``sigma sigma'``):

* bilinear, ``eps = eta^2``: ``Q1 = E + O`` with the even and odd parts

      E(p) = -(c r h^2 / 2) (1 + r / (p r')),
      O(p) = -c h y (2 r^2 + r' h) / (2 (1 + p r' / r));

* single neuron, ``eps = eta``: ``Q1 = -r^2 sigma(p)^2 / (p r')``.

At ``p -> 0`` (``h = a p + b p^3 + ...``): ``Q(0) = r(0) - eps c a^4 / (4 b)``
(bilinear) and ``r(0) - eps / (2 b)`` (single neuron), e.g.
``Q(0) = 1 + 3 eta^2 c / 4`` for log cosh and ``1 + 3 eta / 8`` for tanh: the
final sharpness is predicted to be ``(2/eta) / Q(0)``, slightly *below*
``2/eta``.  Measured on ``log cosh(xy)`` with ``eta = 1/8``, the trajectory
points sit a median ``0.012 = 3 eta^2 / 4`` above ``r(p)`` and ``2e-4`` from
``Q``.  The expansion needs the drift to be slow against the attraction of
the 2-cycle, ``1 - (1 - 2 p h'/h)^2``; it degrades at large ``|p|`` (small
``q``), where that attraction vanishes, most for ``y != 0`` (the ``O`` term).
Both curves are reported: ``r(p)`` (the paper's diagram, the ``eta -> 0``
limit) and ``Q(p)``; the claims table says which holds.

Measurement
-----------

An *edge point* is a trajectory point at a step ``t > burn_in`` with
``|p| > edge_p`` (still oscillating).  The alignment distance of a point is
``|q - Q(p)|`` (in ``q``).  An initialisation *reaches EoS* when it did not
diverge, crossed the edge (``min_t q_t < r(0)``: the valley sharpness
``2/(eta q)`` exceeded ``2/eta``) and its final sharpness (largest Hessian
eigenvalue, closed form: exact, no eigensolver and no certificate involved)
is within ``sharpness_tol`` of ``2/eta`` at *both* of the last two steps: at
the edge the sharpness oscillates with period 2, and the last step alone
would be one phase of it.  The alignment distances use every step after
``burn_in`` (both phases).

``--quick`` takes ``n_init`` = 128 instead of 2000 (every claim is run); its
titles and ``claims.json`` (``"quick": true``) say so.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.errors import ConfigError
from eoslab.experiments import statistics as st
from eoslab.experiments.base import store_in
from eoslab.experiments.claims import Claim, quick_title, write_claims
from eoslab.train.ensemble import keep_where, scan_members
from eoslab.models.toy import (
    LogCoshProduct,
    SingleNeuron,
    TwoLayerLinear,
    UVModel,
    make_toy,
    require_x64,
)

__all__ = [
    "DEFAULT_CONFIG",
    "Ensemble",
    "bifurcation_q",
    "check_alignment",
    "coordinates",
    "curve_distance",
    "curve_q",
    "flip_point",
    "load_config",
    "map_1d",
    "period_two_orbit",
    "r_curve",
    "reduced_step",
    "reproduce",
    "run_ensemble",
    "run_single",
    "summarise",
]

PAPER = "Song & Yun 2023, Trajectory Alignment: Understanding the Edge of Stability Phenomenon via Bifurcation Theory"

# --------------------------------------------------------------------------
# The recipe (mirrored by configs/alignment.toml; a test checks they agree)
# --------------------------------------------------------------------------

DEFAULT_CONFIG: dict = {
    "seed": 0,
    "n_init": 2000,
    "burn_in": 50,
    "edge_p": 1e-3,
    "curve_tol": 0.02,
    "sharpness_tol": 0.05,
    "min_fraction": 0.99,
    "divergence_limit": 1e8,
    "plot_trajectories": 40,
    "quick": {"n_init": 128},
    "models": {
        "logcosh2": {
            "kind": "logcosh2",
            "etas": [0.125, 0.15, 0.2],
            "steps": 200,
            "options": {"x_box": [-0.5, 1.0], "y_box": [4.0, 7.0], "loss_type": "logcosh"},
        },
        "two_layer_linear": {
            "kind": "two_layer_linear",
            "etas": [0.1, 0.125, 0.15],
            "steps": 300,
            "options": {
                "x": [0.5, 0.5, 0.5, 0.5], "y": 1.0, "width": 32, "loss_type": "logcosh",
                "init_scale": [4.0, 5.5],
            },
        },
        "single_neuron": {
            "kind": "single_neuron",
            "etas": [0.05, 0.06, 0.08],
            "steps": 300,
            "options": {
                "activation": "tanh", "x": 1.0, "y": 0.0, "loss_type": "square",
                "u_box": [-1.0, 1.0], "v_box": [6.5, 9.0],
            },
        },
        "uv": {
            "kind": "uv",
            "etas": [1.5, 2.0, 2.5],
            "steps": 300,
            "options": {"width": 100, "x": 1.0, "y": 1.0, "loss_type": "logcosh", "init_scale": [1.0, 1.0]},
        },
    },
}

_TOP_KEYS = {
    "seed": int, "n_init": int, "burn_in": int, "edge_p": float, "curve_tol": float,
    "sharpness_tol": float, "min_fraction": float, "divergence_limit": float,
    "plot_trajectories": int, "quick": dict, "models": dict,
}
_MODEL_KEYS = {"kind", "etas", "steps", "options"}


def _merge(base: dict, over: Mapping) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict) and k != "options":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(overrides: Mapping | None = None, *, quick: bool = False) -> dict:
    """:data:`DEFAULT_CONFIG` merged with ``overrides`` (then ``quick`` settings), validated."""
    cfg = _merge(DEFAULT_CONFIG, overrides or {})
    unknown = sorted(set(cfg) - set(_TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown alignment config key(s) {unknown}; valid keys are {sorted(_TOP_KEYS)}.")
    for key, typ in _TOP_KEYS.items():
        val = cfg[key]
        ok = isinstance(val, typ) and not isinstance(val, bool)
        if typ is float:
            ok = isinstance(val, (int, float)) and not isinstance(val, bool) and math.isfinite(val)
        if not ok:
            raise ConfigError(f"alignment config {key!r} must be a {typ.__name__}, got {val!r}.")
    if quick:
        bad = sorted(set(cfg["quick"]) - {"n_init", "models"})
        if bad:
            raise ConfigError(f"unknown key(s) {bad} in alignment config 'quick'; use n_init or models.")
        cfg = _merge(cfg, cfg["quick"])
    for key in ("n_init", "plot_trajectories"):
        if cfg[key] < 1:
            raise ConfigError(f"alignment config {key!r} must be >= 1, got {cfg[key]}.")
    if cfg["burn_in"] < 0:
        raise ConfigError(f"alignment config 'burn_in' must be >= 0, got {cfg['burn_in']}.")
    for key in ("edge_p", "curve_tol", "sharpness_tol", "divergence_limit"):
        if cfg[key] <= 0:
            raise ConfigError(f"alignment config {key!r} must be > 0, got {cfg[key]}.")
    if not 0 < cfg["min_fraction"] <= 1:
        raise ConfigError(f"alignment config 'min_fraction' must be in (0, 1], got {cfg['min_fraction']}.")
    if not cfg["models"]:
        raise ConfigError("alignment config 'models' is empty; list at least one toy model.")
    for name, spec in cfg["models"].items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"alignment model {name!r} must be a table with kind, etas, steps, options.")
        bad = sorted(set(spec) - _MODEL_KEYS)
        missing = sorted(_MODEL_KEYS - set(spec) - {"options"})
        if bad or missing:
            raise ConfigError(
                f"alignment model {name!r} has unknown key(s) {bad} or misses {missing}; "
                f"use exactly {sorted(_MODEL_KEYS)}."
            )
        etas = spec["etas"]
        if not isinstance(etas, (list, tuple)) or not etas:
            raise ConfigError(f"alignment model {name!r}: 'etas' must be a non-empty list of step sizes.")
        for eta in etas:
            _check_eta(eta)
        if isinstance(spec["steps"], bool) or not isinstance(spec["steps"], int) or spec["steps"] <= cfg["burn_in"]:
            raise ConfigError(
                f"alignment model {name!r}: 'steps' must be an integer above burn_in = {cfg['burn_in']}, "
                f"got {spec['steps']!r}."
            )
        make_toy(spec["kind"], **dict(spec.get("options", {})))  # validates the options
    return cfg


def _check_eta(eta) -> float:
    if isinstance(eta, bool) or not isinstance(eta, (int, float, np.floating, np.integer)):
        raise ConfigError(f"step size eta must be a number, got {eta!r}.")
    eta = float(eta)
    if not (math.isfinite(eta) and eta > 0):
        raise ConfigError(f"step size eta = {eta} must be positive and finite.")
    return eta


# --------------------------------------------------------------------------
# Coordinates, 1-D map, curves
# --------------------------------------------------------------------------

_BILINEAR = (LogCoshProduct, TwoLayerLinear, UVModel)


def _bilinear_constants(model) -> tuple[float, float]:
    """``(c, y)`` of the reduced bilinear map."""
    if isinstance(model, LogCoshProduct):
        return 1.0, 0.0
    return model.x_sq, model.target


def coordinates(model, theta, eta):
    """``(p, q)``: the alignment coordinates of ``theta`` (module docstring)."""
    theta = model.as_theta(theta)
    if isinstance(model, SingleNeuron):
        u, v = theta[..., 0], theta[..., 1]
        return u * model.x, 2.0 / (eta * model.x**2 * v * v)
    return model.residual(theta), 2.0 / (eta * model.grad_f_sq(theta))


def _h(model, p):
    """``h(p)`` and ``h'(p)``: ``l'`` (bilinear) or ``sigma sigma'`` (single neuron)."""
    if isinstance(model, SingleNeuron):
        s = model.sigma
        f, d1, d2 = s.f(p), s.d1(p), s.d2(p)
        return f * d1, d1 * d1 + f * d2
    return model.loss_fn.grad(p), model.loss_fn.hess(p)


_P_MIN = 1e-4  # below this |p|, curves are evaluated at +-_P_MIN (they are smooth; error O(_P_MIN^2))


def _safe_p(p):
    p = jnp.asarray(p, jnp.float64)
    return jnp.where(jnp.abs(p) < _P_MIN, jnp.where(p >= 0, _P_MIN, -_P_MIN), p)


def map_1d(model, p, q):
    """The frozen-``q`` 1-D map ``p - (2/q) h(p)``."""
    require_x64()
    p = jnp.asarray(p, jnp.float64)
    return p - (2.0 / q) * _h(model, p)[0]


def r_curve(model, p):
    """The paper's bifurcation curve ``q = r(p) = h(p) / p`` (``h = l'`` or ``sigma sigma'``)."""
    require_x64()
    p = _safe_p(p)
    return _h(model, p)[0] / p


def bifurcation_q(model) -> float:
    """``r(0) = h'(0)``, the ``q`` of the flip bifurcation of the 1-D map."""
    require_x64()
    return float(_h(model, jnp.zeros((), jnp.float64))[1])


def curve_q(model, p, eta, *, order: int = 1):
    """The curve ``q(p)`` on which trajectories align: ``order=0`` is ``r(p)``,
    ``order=1`` the first-order slow manifold ``Q(p)`` (module docstring)."""
    if order not in (0, 1):
        raise ConfigError(f"curve order must be 0 (r(p)) or 1 (slow manifold), got {order!r}.")
    require_x64()
    p = _safe_p(p)
    h, hp = _h(model, p)
    r = h / p
    if order == 0:
        return r
    rp = (p * hp - h) / (p * p)
    if isinstance(model, SingleNeuron):
        sig = model.sigma.f(p)
        return r + eta * (-(r * r) * sig * sig / (p * rp))
    c, y = _bilinear_constants(model)
    even = -(c * r * h * h / 2.0) * (1.0 + r / (p * rp))
    odd = -c * h * y * (2.0 * r * r + rp * h) / (2.0 * (1.0 + p * rp / r))
    return r + eta * eta * (even + odd)


def curve_distance(model, p, q, eta, *, order: int = 1):
    """``|q - curve_q(p)|``, the alignment distance in ``q``."""
    return jnp.abs(jnp.asarray(q, jnp.float64) - curve_q(model, p, eta, order=order))


def reduced_step(model, p, q, eta):
    """One *exact* GD step in ``(p, q)`` coordinates (module docstring)."""
    require_x64()
    p, q = jnp.asarray(p, jnp.float64), jnp.asarray(q, jnp.float64)
    if isinstance(model, SingleNeuron):
        _require_single_neuron_setting(model)
        sig = model.sigma.f(p)
        return p - (2.0 / q) * sig * model.sigma.d1(p), q / (1.0 - eta * sig * sig) ** 2
    c, y = _bilinear_constants(model)
    t = model.loss_fn.grad(p)
    f = p + y
    p_new = p - (2.0 / q) * t + eta * eta * t * t * c * f
    q_new = q / (1.0 + eta * eta * t * t * c - 2.0 * eta * eta * q * t * c * f)
    return p_new, q_new


def _require_single_neuron_setting(model) -> None:
    lf = model.loss_fn
    grid = jnp.linspace(-3.0, 3.0, 61)
    is_square = bool(jnp.allclose(lf.grad(grid), grid, rtol=1e-12, atol=1e-12))
    if not is_square or model.y != 0.0:
        raise ConfigError(
            "the single-neuron alignment coordinates need the square loss and y = 0 "
            f"(got loss {lf.name!r}, y = {model.y}); build SingleNeuron(loss_type='square', y=0.0)."
        )


def check_alignment(model) -> None:
    """Raise :class:`ConfigError` unless the derivation applies to ``model``.

    Needs ``h`` odd (``l`` even, or ``sigma`` odd), ``h' > 0`` at 0 and
    ``r(p) = h(p) / p`` strictly decreasing on ``(0, 6]`` (hence ``l`` convex
    near the curve and a supercritical flip), checked on a grid.
    """
    require_x64()
    if not isinstance(model, (*_BILINEAR, SingleNeuron)):
        raise ConfigError(f"{type(model).__name__} is not a toy model; use eoslab.models.toy.")
    grid = jnp.linspace(1e-3, 6.0, 600)
    if isinstance(model, SingleNeuron):
        _require_single_neuron_setting(model)
        what = f"activation {model.activation!r}"
        s = model.sigma
        if not bool(jnp.allclose(s.f(-grid), -s.f(grid), rtol=1e-10, atol=1e-12)):
            raise ConfigError(f"{what} is not odd, so the 1-D map has no symmetric 2-cycle; use an odd activation.")
    else:
        lf = model.loss_fn
        what = f"loss {lf.name!r}"
        even = bool(jnp.allclose(lf(-grid), lf(grid), rtol=1e-10, atol=1e-12))
        convex = bool(jnp.all(lf.hess(jnp.concatenate([-grid, grid])) >= -1e-12))
        if not (even and convex):
            raise ConfigError(
                f"{what} is not even and convex, which the period-2 derivation needs; use logcosh or pseudo_huber."
            )
    h0 = bifurcation_q(model)
    r = r_curve(model, grid)
    if not (h0 > 0 and bool(jnp.all(jnp.diff(r) < 0))):
        raise ConfigError(
            f"{what} has r(p) = h(p)/p {'constant' if bool(jnp.allclose(r, r[0])) else 'not decreasing'}, "
            "so the 1-D map has no stable period-2 curve to align on; use a loss like logcosh."
        )


def period_two_orbit(model, q, *, iters: int = 200):
    """``p* > 0`` with ``r(p*) = q`` (the symmetric 2-cycle of the 1-D map), by bisection.

    ``q`` must lie in ``(r(p_max), r(0))`` with ``p_max = 50``.
    """
    require_x64()
    q = jnp.asarray(q, jnp.float64)
    lo = jnp.full_like(q, 1e-8)
    hi = jnp.full_like(q, 50.0)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        above = r_curve(model, mid) > q  # r decreasing: the root is to the right
        lo = jnp.where(above, mid, lo)
        hi = jnp.where(above, hi, mid)
    return 0.5 * (lo + hi)


def flip_point(model, *, lo: float = 0.05, hi: float = 20.0, iters: int = 200) -> float:
    """The ``q`` where ``d g_q / dp`` at the fixed point 0 crosses -1, found numerically
    (autodiff + bisection) -- to compare with :func:`bifurcation_q`."""
    require_x64()
    dg0 = jax.jit(jax.grad(lambda p, q: map_1d(model, p, q)))
    zero = jnp.zeros((), jnp.float64)

    def excess(q):  # dg/dp(0) + 1: negative for q < q_flip, positive above
        return float(dg0(zero, jnp.float64(q))) + 1.0

    a, b = lo, hi
    if not (excess(a) < 0 < excess(b)):
        raise ConfigError(f"no flip of the 1-D map in q in [{lo}, {hi}]; widen the bracket.")
    for _ in range(iters):
        m = 0.5 * (a + b)
        if excess(m) < 0:
            a = m
        else:
            b = m
    return 0.5 * (a + b)


# --------------------------------------------------------------------------
# Ensembles of GD trajectories
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """GD trajectories from many initialisations; arrays ``[steps + 1, n]`` (step 0 = init).

    ``diverged_step[i]`` is the first step whose loss was non-finite or above
    the limit (or -1); from it on that trajectory's records are NaN and its
    parameters stay frozen.
    """

    eta: float
    loss: np.ndarray
    sharpness: np.ndarray
    p: np.ndarray
    q: np.ndarray
    diverged_step: np.ndarray
    theta_final: np.ndarray

    @property
    def steps(self) -> int:
        return self.loss.shape[0] - 1

    @property
    def n(self) -> int:
        return self.loss.shape[1]

    @property
    def diverged(self) -> np.ndarray:
        return self.diverged_step >= 0


def _measure(model, theta, eta):
    p, q = coordinates(model, theta, eta)
    return model.loss(theta), model.sharpness(theta), p, q


def _gd_step(model, eta, limit, carry, t):
    """Measure, detect divergence, update: one step of one trajectory ``carry = (theta, alive, div_step)``.

    A trajectory whose loss is non-finite or above ``limit`` is frozen (:func:`keep_where`) from that
    step on, its records NaN and its divergence step recorded.
    """
    theta, alive, div_step = carry
    loss, sharp, p, q = _measure(model, theta, eta)
    bad = ~jnp.isfinite(loss) | (loss > limit) | ~jnp.all(jnp.isfinite(theta))
    div_step = jnp.where(alive & bad, t, div_step)
    alive = alive & ~bad
    theta_new = keep_where(alive, theta - eta * model.grad(theta), theta)
    nan = jnp.float64(jnp.nan)
    rec = keep_where(alive, (loss, sharp, p, q), (nan,) * 4)
    return (theta_new, alive, div_step), rec


@functools.partial(jax.jit, static_argnums=(0, 3))
def _simulate_ensemble(model, theta0, eta, steps, limit):
    """Records ``[members, steps + 1]`` (the last measured after the final step), divergence steps, final theta."""
    step = functools.partial(_gd_step, model, eta, limit)
    n = theta0.shape[0]
    carry = (theta0, jnp.ones((n,), bool), jnp.full((n,), -1, jnp.int32))
    carry, recs = scan_members(step, carry, jnp.arange(steps, dtype=jnp.int32))
    (theta, _, div), last = jax.vmap(step, in_axes=(0, None))(carry, jnp.int32(steps))
    recs = tuple(jnp.concatenate([r, l[:, None]], axis=1) for r, l in zip(recs, last))
    return recs, div, theta


@functools.partial(jax.jit, static_argnums=(0, 3))
def _simulate_single(model, theta0, eta, steps, limit):
    """One trajectory (a plain ``lax.scan``, the reference for the ensemble): records ``[steps + 1]``."""
    step = functools.partial(_gd_step, model, eta, limit)
    carry = (theta0, jnp.array(True), jnp.array(-1, jnp.int32))
    carry, recs = jax.lax.scan(step, carry, jnp.arange(steps, dtype=jnp.int32))
    (theta, _, div), last = step(carry, jnp.int32(steps))
    recs = tuple(jnp.concatenate([r, l[None]], axis=0) for r, l in zip(recs, last))
    return recs, div, theta


def _check_run_inputs(model, theta0, eta, steps, limit):
    require_x64()
    eta = _check_eta(eta)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}.")
    limit = float(limit)
    if not limit > 0:
        raise ConfigError(f"divergence_limit must be positive, got {limit}.")
    theta0 = model.check_params(theta0)
    _, q = coordinates(model, theta0, eta)
    bad = ~np.isfinite(np.asarray(q)) | (np.asarray(q) <= 0)
    if np.any(bad):
        raise ConfigError(
            f"{int(np.sum(bad))} initialisation(s) lie outside the {model.name} domain: "
            "grad f = 0 there (q = 2 / (eta |grad f|^2) is infinite); move them off that set."
        )
    return theta0, eta, int(steps), limit


def run_ensemble(model, theta0, eta, steps: int, *, divergence_limit: float = 1e8) -> Ensemble:
    """GD from every row of ``theta0`` ``[n, dim]`` at once (:func:`eoslab.train.ensemble.scan_members`).

    Records loss, sharpness (closed form), ``p`` and ``q`` at steps
    ``0..steps``.  Divergence is recorded, never raised.
    """
    theta0, eta, steps, limit = _check_run_inputs(model, theta0, eta, steps, divergence_limit)
    if theta0.ndim != 2:
        raise ConfigError(f"theta0 must be [n, {model.dim}] for an ensemble, got shape {list(theta0.shape)}.")
    recs, div, theta = _simulate_ensemble(model, theta0, jnp.float64(eta), steps, jnp.float64(limit))
    loss, sharp, p, q = (np.ascontiguousarray(np.asarray(r).T) for r in recs)  # [steps + 1, n]
    return Ensemble(eta, loss, sharp, p, q, np.asarray(div), np.asarray(theta))


def run_single(model, theta0, eta, steps: int, *, divergence_limit: float = 1e8) -> Ensemble:
    """GD from one initialisation ``[dim]`` (a jitted scan, no ``vmap``); arrays ``[steps + 1, 1]``."""
    theta0, eta, steps, limit = _check_run_inputs(model, theta0, eta, steps, divergence_limit)
    if theta0.ndim != 1:
        raise ConfigError(f"theta0 must be [{model.dim}] for a single run, got shape {list(theta0.shape)}.")
    recs, div, theta = _simulate_single(model, theta0, jnp.float64(eta), steps, jnp.float64(limit))
    loss, sharp, p, q = (np.asarray(r)[:, None] for r in recs)
    return Ensemble(eta, loss, sharp, p, q, np.asarray(div)[None], np.asarray(theta)[None])


# --------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------


def final_within(sharpness: np.ndarray, eta: float, tol: float) -> np.ndarray:
    """Per initialisation: eta * lambda / 2 within ``tol`` of 1 at *both* of the last two steps.

    At the edge the sharpness oscillates with period 2; the last step alone
    is one phase of it (an aliased sample), so both phases must be at the edge.
    ``sharpness`` is ``[steps + 1, n]`` (closed form: exact).
    """
    last = np.asarray(sharpness[-2:], float) * eta / 2.0
    dev = np.max(np.abs(last - 1.0), axis=0)
    return np.isfinite(dev) & (dev <= tol)


def final_sharpness_ratio(sharpness: np.ndarray, eta: float, tol: float) -> dict:
    """eta * lambda / 2 over the last two steps: median of the per-initialisation two-step mean, min and max over
    both phases, and the fraction of initialisations at the edge in both phases (:func:`final_within`)."""
    last = np.asarray(sharpness[-2:], float) * eta / 2.0
    mean = last.mean(axis=0)
    fin_mean, fin = mean[np.isfinite(mean)], last[np.isfinite(last)]
    nan = float("nan")
    return {"median": float(np.median(fin_mean)) if fin_mean.size else nan,
            "min": float(np.min(fin)) if fin.size else nan,
            "max": float(np.max(fin)) if fin.size else nan,
            "fraction_within_tol": float(np.mean(final_within(sharpness, eta, tol)))}


def summarise(model, ens: Ensemble, *, burn_in: int, edge_p: float, curve_tol: float,
              sharpness_tol: float) -> dict:
    """Alignment distances, final sharpness and EoS fraction of one ensemble (see module docstring)."""
    eta = ens.eta
    steps = np.arange(ens.steps + 1)[:, None]
    p, q = ens.p, ens.q
    edge = (steps > burn_in) & np.isfinite(p) & np.isfinite(q) & (np.abs(p) > edge_p)
    pts_p, pts_q = p[edge], q[edge]
    out: dict[str, Any] = {"eta": eta, "n_init": ens.n, "n_diverged": int(ens.diverged.sum())}
    for order, key in ((1, "slow_manifold"), (0, "r_curve")):
        d_all = np.full(p.shape, np.nan)
        d_all[edge] = np.asarray(curve_distance(model, pts_p, pts_q, eta, order=order))
        stats = st.distances_within(d_all[edge], curve_tol)
        stats["p99_abs_p"] = float(np.percentile(np.abs(pts_p), 99)) if pts_p.size else float("nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # inits without edge points: all-NaN columns
            per_init = np.nanmedian(np.where(edge, d_all, np.nan), axis=0)
        has = np.isfinite(per_init)
        stats["per_init_median"] = float(np.median(per_init[has])) if has.any() else float("nan")
        stats["per_init_max"] = float(np.max(per_init[has])) if has.any() else float("nan")
        stats["n_init_with_edge_points"] = int(has.sum())
        out[key] = stats
    out["final_sharpness_ratio"] = {**final_sharpness_ratio(ens.sharpness, eta, sharpness_tol),
                                    "predicted": float(1.0 / curve_q(model, 0.0, eta, order=1))}
    within = final_within(ens.sharpness, eta, sharpness_tol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        crossed = np.nanmin(q, axis=0) < bifurcation_q(model)
    eos = ~ens.diverged & crossed & within
    out["eos_fraction"] = float(np.mean(eos))
    out["crossed_edge_fraction"] = float(np.mean(crossed))
    return out


def _per_step_metrics(model, ens: Ensemble, edge_p: float) -> dict:
    steps = np.arange(ens.steps + 1)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        dist = np.asarray(curve_distance(model, np.nan_to_num(ens.p), ens.q, ens.eta, order=1))
        dist = np.where(np.isfinite(ens.p), dist, np.nan)
        metrics = {
            "median_loss": np.nanmedian(ens.loss, axis=1),
            "median_sharpness": np.nanmedian(ens.sharpness, axis=1),
            "median_sharpness_ratio": np.nanmedian(ens.sharpness, axis=1) * ens.eta / 2.0,
            "median_abs_p": np.nanmedian(np.abs(ens.p), axis=1),
            "median_q": np.nanmedian(ens.q, axis=1),
            "median_curve_distance": np.nanmedian(dist, axis=1),
            "fraction_at_edge": np.mean(np.abs(np.nan_to_num(ens.p)) > edge_p, axis=1),
            "fraction_diverged": np.mean(~np.isfinite(ens.loss), axis=1),
        }
    return {k: (steps, v) for k, v in metrics.items()}


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------


def _figure(name: str, model, results: list, cfg: dict, out: Path, quick: bool = False) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(results)
    fig = Figure(figsize=(4.2 * k, 7.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, k, squeeze=False)
    m = cfg["plot_trajectories"]
    for j, (ens, summ) in enumerate(results):
        eta = ens.eta
        idx = np.arange(min(m, ens.n))
        colours = [f"C{i % 10}" for i in idx]
        ax = axes[0, j]
        for i, col in zip(idx, colours):
            ax.plot(ens.p[:, i], ens.q[:, i], ".", ms=1.5, color=col, alpha=0.6, rasterized=True)
        finite = np.isfinite(ens.p[:, idx])
        pmax = float(np.percentile(np.abs(ens.p[:, idx][finite]), 99)) if finite.any() else 1.0
        pmax = max(pmax, 0.5)
        grid = np.linspace(-pmax, pmax, 801)
        ax.plot(grid, np.asarray(curve_q(model, grid, eta, order=0)), "k--", lw=1.0, label="r(p) (paper)")
        ax.plot(grid, np.asarray(curve_q(model, grid, eta, order=1)), "k-", lw=1.0, label="Q(p) (slow manifold)")
        qv = ens.q[:, idx][np.isfinite(ens.q[:, idx])]
        if qv.size:
            ax.set_ylim(max(0.0, float(np.percentile(qv, 0.5)) - 0.05), float(np.percentile(qv, 99.5)) + 0.05)
        ax.set_xlim(-pmax, pmax)
        sm, rc = summ["slow_manifold"], summ["r_curve"]
        ax.set_title(
            f"{name}, eta={eta:g}\n|q-Q(p)|: median {sm['median']:.1e}, p99 {sm['p99']:.1e}\n"
            f"|q-r(p)|: median {rc['median']:.1e}, p99 {rc['p99']:.1e}", fontsize=8,
        )
        ax.set_xlabel("p")
        ax.set_ylabel("q = 2 / (eta |grad f|^2)" if not isinstance(model, SingleNeuron) else "q = 2 / (eta x^2 v^2)")
        ax.legend(fontsize=7, loc="lower right")
        ax = axes[1, j]
        t = np.arange(ens.steps + 1)
        for i, col in zip(idx, colours):
            ax.plot(t, ens.sharpness[:, i], lw=0.6, color=col, alpha=0.6, rasterized=True)
        ax.axhline(2.0 / eta, color="k", ls="--", lw=1.0, label="2/eta")
        fs = summ["final_sharpness_ratio"]
        ax.set_title(
            f"final sharpness / (2/eta): median {fs['median']:.4f}\n"
            f"within {cfg['sharpness_tol']:.0%}: {fs['fraction_within_tol']:.1%}; EoS: {summ['eos_fraction']:.1%}",
            fontsize=8,
        )
        ax.set_xlabel("step")
        ax.set_ylabel(f"sharpness ({model.loss_fn.name} loss)")
        ax.set_ylim(0, 2.0 * 2.0 / eta)
        ax.legend(fontsize=7)
    fig.suptitle(quick_title(f"trajectory alignment: {name}, {results[0][0].n} initialisations", quick),
                 fontsize=9)
    paths = []
    for ext in ("png", "pdf"):
        path = out / f"alignment_{name}.{ext}"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------
# Reproduction
# --------------------------------------------------------------------------


def _claims_for(name: str, model, summ: dict, cfg: dict) -> list[Claim]:
    eta = summ["eta"]
    tol, frac = cfg["curve_tol"], cfg["min_fraction"]
    where = f"{name}, eta={eta:g}, {summ['n_init']} inits"
    edge_def = f"points after step {cfg['burn_in']} with |p| > {cfg['edge_p']:g}"
    claims = []
    for key, label in (("r_curve", "the paper's bifurcation curve q = r(p)"),
                       ("slow_manifold", "the slow-manifold curve q = Q(p) (first-order correction of r(p))")):
        s = summ[key]
        holds = bool(s["n_points"] > 0 and s["fraction_within_tol"] >= frac)
        claims.append(Claim(
            claim=f"At EoS, GD trajectories from different initialisations align on {label} [{where}].",
            quantity=f"|q - curve(p)| over {edge_def}: pooled median/p99/max, fraction <= {tol:g}; "
                     "per-initialisation median distance: median and max over initialisations; "
                     "n_points and p99 of |p| of the edge points (the stretch of curve covered)",
            value={k: s[k] for k in ("median", "p99", "max", "fraction_within_tol", "per_init_median",
                                      "per_init_max", "n_points", "p99_abs_p")},
            holds=holds,
            paper=PAPER,
            detail=f"holds if >= {frac:.0%} of edge points lie within {tol:g} in q",
        ))
    fs = summ["final_sharpness_ratio"]
    claims.append(Claim(
        claim=f"Sharpness ends at the edge of stability 2/eta [{where}].",
        quantity="final sharpness * eta / 2 (largest Hessian eigenvalue, closed form: exact) over the last two "
                 "steps (both phases of a period-2 oscillation): median of the two-step mean, min and max over "
                 f"both, fraction of initialisations within {cfg['sharpness_tol']:.0%} in both; predicted 1/Q(0)",
        value=fs,
        holds=bool(fs["fraction_within_tol"] >= frac),
        paper=PAPER,
        detail=f"holds if >= {frac:.0%} of initialisations end within {cfg['sharpness_tol']:.0%} of 2/eta at both "
               "of the last two steps",
    ))
    claims.append(Claim(
        claim=f"GD from these initialisations reaches EoS [{where}].",
        quantity="fraction of initialisations that did not diverge, crossed the edge (min q < r(0)) and end "
                 f"with sharpness within {cfg['sharpness_tol']:.0%} of 2/eta at both of the last two steps",
        value={"eos_fraction": summ["eos_fraction"], "crossed_edge_fraction": summ["crossed_edge_fraction"],
               "n_diverged": summ["n_diverged"]},
        holds=bool(summ["eos_fraction"] >= frac),
        paper=PAPER,
        detail=f"holds if >= {frac:.0%}",
    ))
    return claims


def reproduce(out_dir, *, quick: bool = False, progress: bool = True, store=None,
              config: Mapping | None = None) -> list[Claim]:
    """Run the alignment recipe; write figures, ``claims.md`` and ``claims.json`` into ``out_dir``.

    For each toy model and step size of the config (:data:`DEFAULT_CONFIG`,
    overridden by ``config``; ``quick`` uses its ``quick`` settings), GD runs
    from ``n_init`` initialisations, and one run per (model, eta) in ``store``
    (a :class:`eoslab.store.RunStore`; default the store in ``out_dir``)
    records per-step summary metrics.  Computes in float64 (x64 is switched on inside this call
    only).  It has no progress output (``progress`` is accepted for the common signature).
    """
    del progress
    cfg = load_config(config, quick=quick)
    out = Path(out_dir)
    with jax.enable_x64(True):
        for name, spec in cfg["models"].items():
            model = make_toy(spec["kind"], **dict(spec.get("options", {})))
            check_alignment(model)
        out.mkdir(parents=True, exist_ok=True)
        claims: list[Claim] = []
        with store_in(out, store) as store:
            for mi, (name, spec) in enumerate(cfg["models"].items()):
                model = make_toy(spec["kind"], **dict(spec.get("options", {})))
                theta0 = model.init(jax.random.fold_in(jax.random.PRNGKey(cfg["seed"]), mi), cfg["n_init"])
                model_results = []
                for eta in spec["etas"]:
                    eta = float(eta)
                    run_cfg = {"experiment": "alignment", "model": name, "kind": spec["kind"],
                               "options": spec.get("options", {}), "eta": eta, "steps": spec["steps"],
                               "n_init": cfg["n_init"], "burn_in": cfg["burn_in"], "quick": quick}
                    run_id = store.start_run(run_cfg, name=f"alignment/{name}/eta={eta:g}",
                                             seed=cfg["seed"], group="alignment")
                    try:
                        t0 = time.perf_counter()
                        ens = run_ensemble(model, theta0, eta, spec["steps"],
                                           divergence_limit=cfg["divergence_limit"])
                        summ = summarise(model, ens, burn_in=cfg["burn_in"], edge_p=cfg["edge_p"],
                                         curve_tol=cfg["curve_tol"], sharpness_tol=cfg["sharpness_tol"])
                        summ["seconds"] = time.perf_counter() - t0
                    except Exception as exc:
                        store.finish_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
                        raise
                    store.log_metrics(run_id, _per_step_metrics(model, ens, cfg["edge_p"]))
                    store.finish_run(run_id, "completed")
                    model_results.append((ens, summ))
                    claims.extend(_claims_for(name, model, summ, cfg))
                _figure(name, model, model_results, cfg, out, quick)
    write_claims(out, claims, "Trajectory alignment (Song & Yun 2023)", quick=quick)
    return claims
