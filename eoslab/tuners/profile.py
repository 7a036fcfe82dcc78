"""Line-loss profiles: the loss along an update direction and how parabolic it is.

At parameters theta and an update direction d (a params-shaped pytree), the
*line loss* is

    l(s) = L(theta + s u),    u = d / |d|   (``normalise=True``, the default)
                              u = d         (``normalise=False``),

so with the default the step size s is the Euclidean distance travelled in
parameter space, as PAL measures it (Mutschler & Zell 2020, "Parabolic
Approximation Line Search for DNNs", NeurIPS; their l_t(s) = L(theta_t - s
g_t / |g_t|)).  Their empirical analysis samples l on a grid of s around the
current point and finds it locally close to a parabola; PAL's step rule rests on
that.  A profile measures it: l on a grid s_1 < ... < s_n (all grid points in
one ``jax.vmap``), then

* the least-squares parabola l(s) ~ a s^2 + b s + c over the grid points with
  |s| <= ``fit_window`` (all of them by default) and its coefficient of
  determination R^2 = 1 - sum (l_i - lhat_i)^2 / sum (l_i - mean l)^2, the
  measure of "how parabolic the line is" (R^2 = 1 exactly on a quadratic loss,
  where a = 0.5 u'Hu, b = g.u, c = L(theta));
* the exact line-search minimiser on the grid: the grid point of least loss,
  refined, when it is interior, by the parabola through it and its two
  neighbours (exact when l is a parabola; it stays between the neighbours).

(Both are :mod:`eoslab.tuners.line_fit`'s, applied to every loss at once.)

For a descent direction the interesting side is s > 0; the default grid is
symmetric, s in [-s_max, s_max] with ``num`` (odd: s = 0 is a grid point)
points, so the figure (:func:`eoslab.tuners.profile_plot.plot_line_profiles`)
shows the line on both sides of the current point as in PAL's plots of loss
lines.  A step of eta along d (SGD: d = -g) is the
distance eta |d| = eta * ``direction_norm`` on this axis.

Losses that are NaN or inf on part of the line (divergence far out on it) are
a result, not an error: they are left out of the fit and of the minimiser.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.curvature.operators import check_finite, check_same_structure, check_scalar_loss, is_concrete
from eoslab.errors import InputError
from eoslab.tuners.line_fit import ParabolaFit, check_fit_window, line_minimum_unchecked, parabola_fit_unchecked

PyTree = Any
DEFAULT_NAME = "loss"


class LineProfile(NamedTuple):
    """A measured line loss.  Every per-loss field is a dict keyed by loss name.

    A pytree of arrays (the names are dict keys, i.e. static structure), so it
    passes through ``jit`` and ``vmap``; a vmapped profile has a leading batch
    axis on every leaf (see :func:`unstack_profiles`).
    """
    steps: jax.Array  # (n,) grid of step sizes s, strictly increasing
    losses: dict  # name -> (n,) l(s_i); NaN/inf where the loss diverged
    fit: dict  # name -> ParabolaFit over the fit window
    argmin: dict  # name -> exact line-search minimiser (grid point, parabola-refined); NaN if no finite loss
    min_loss: dict  # name -> loss at argmin (interpolated when refined; never above the least measured loss)
    fit_window: jax.Array  # the |s| <= fit_window used for the fit (inf: the whole grid)
    direction_norm: jax.Array  # |d|, Euclidean norm of the direction over all leaves
    unit_length: jax.Array  # parameter-space length of one unit of s: 1 if normalised, else |d|

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.losses)

    @property
    def r2(self) -> dict:
        """name -> R^2 of the parabolic fit (1: exactly parabolic along the grid)."""
        return {k: f.r2 for k, f in self.fit.items()}



# --------------------------------------------------------------------------
# Measuring the line
# --------------------------------------------------------------------------


def line_losses(loss_fns: Mapping[str, Callable] | Callable, params: PyTree, direction: PyTree,
                steps: jax.Array, *, normalise: bool = True, batch_size: int | None = None) -> dict:
    """name -> (n,) losses l(s) = L(params + s u) on the grid ``steps`` (one ``vmap`` over s).

    ``u = direction / |direction|`` when ``normalise`` (s is a distance), else
    ``u = direction``.  ``batch_size`` evaluates the grid in chunks of that
    many points (``jax.lax.map``) to bound memory on large models.
    """
    named = _named_loss_fns(loss_fns)
    steps = _check_inputs(named, params, direction, steps, batch_size)
    return _line_losses(named, params, direction, steps, normalise, batch_size)[0]


def line_profile(loss_fns: Mapping[str, Callable] | Callable, params: PyTree, direction: PyTree,
                 steps: jax.Array | None = None, *, num: int = 41, s_max=1.0, fit_window=None,
                 normalise: bool = True, batch_size: int | None = None) -> LineProfile:
    """Profile the loss along ``direction`` from ``params`` (see the module docstring).

    ``loss_fns``: one scalar ``loss_fn(params)`` (named ``"loss"``) or a dict
    ``{"batch": ..., "full": ...}`` evaluated at the same grid points in one
    call.  ``steps``: the grid of step sizes (strictly increasing, at least 3
    points); by default :func:`default_steps` ``(num, s_max)``, i.e.
    ``linspace(-s_max, s_max, num)``.  ``fit_window``: fit the parabola on
    |s| <= fit_window only (the local shape PAL relies on).  ``batch_size``:
    see :func:`line_losses`.  jit- and vmap-compatible (checks that need
    values are skipped on tracers); the loss functions are static.
    """
    named = _named_loss_fns(loss_fns)
    if steps is None:
        if not isinstance(num, (int, np.integer)) or num < 3:
            raise InputError(f"num={num} grid points are too few for a parabola; pass an integer num >= 3.")
        if is_concrete(s_max) and not (np.isfinite(float(s_max)) and float(s_max) > 0):
            raise InputError(f"s_max={s_max} must be a finite positive step size; pass e.g. s_max=1.0.")
        steps = default_steps(int(num), s_max, _float_dtype(params))
    steps = _check_inputs(named, params, direction, steps, batch_size)
    if fit_window is not None:
        check_fit_window(fit_window, steps)
    losses, norm, unit = _line_losses(named, params, direction, steps, normalise, batch_size)
    window = jnp.asarray(jnp.inf if fit_window is None else fit_window, steps.dtype)
    return _summarise(steps, losses, window, norm, unit)


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _line_losses(named, params, direction, steps, normalise, batch_size):
    """Losses on the grid (compiled once per loss function), |d| and the length of one unit of s."""
    norm = jnp.sqrt(sum(jnp.sum(jnp.abs(x) ** 2) for x in jax.tree_util.tree_leaves(direction)))
    u = jax.tree_util.tree_map(lambda v: v / norm, direction) if normalise else direction

    def at(s):
        p = jax.tree_util.tree_map(lambda w, v: w + (s * v).astype(jnp.result_type(w)), params, u)
        return {name: fn(p) for name, fn in named}

    if batch_size is None:
        losses = jax.vmap(at)(steps)
    else:
        losses = jax.lax.map(at, steps, batch_size=batch_size)
    return losses, norm, (jnp.ones_like(norm) if normalise else norm)


@jax.jit
def _summarise(steps, losses, window, norm, unit) -> LineProfile:
    """Fit and minimiser of every loss at once (compiled once per grid size and set of names)."""
    names = list(losses)
    stacked = jnp.stack([losses[k] for k in names])
    s = steps.astype(stacked.dtype)
    fit = parabola_fit_unchecked(s, stacked, window)
    argmin, min_loss = line_minimum_unchecked(jnp.broadcast_to(s, stacked.shape), stacked)
    fits = {k: ParabolaFit(*(x[i] for x in fit)) for i, k in enumerate(names)}
    return LineProfile(steps, losses, fits, {k: argmin[i] for i, k in enumerate(names)},
                       {k: min_loss[i] for i, k in enumerate(names)}, window, norm, unit)



# --------------------------------------------------------------------------
# Input checks (one sentence naming the problem and the fix)
# --------------------------------------------------------------------------


def _named_loss_fns(loss_fns) -> tuple[tuple[str, Callable], ...]:
    if callable(loss_fns):
        return ((DEFAULT_NAME, loss_fns),)
    if not isinstance(loss_fns, Mapping) or not loss_fns:
        raise InputError(f"loss_fns must be a loss function or a non-empty dict of them, not "
                         f"{type(loss_fns).__name__}; pass e.g. {{'batch': batch_loss, 'full': full_loss}}.")
    for name, fn in loss_fns.items():
        if not isinstance(name, str) or not callable(fn):
            raise InputError(f"loss_fns entry {name!r} must map a string name to a callable loss_fn(params); "
                             f"fix that entry.")
    return tuple((name, loss_fns[name]) for name in sorted(loss_fns))


def default_steps(num: int = 41, s_max=1.0, dtype=None) -> jax.Array:
    """The default grid: ``num`` equally spaced s in [-s_max, s_max], exactly symmetric.

    Built as s_max * (2k - (num - 1)) / (num - 1), so that s_k = -s_{num-1-k}
    and, for odd ``num``, the middle point is exactly s = 0 (the current loss).
    """
    k = jnp.arange(num, dtype=dtype or jnp.result_type(float))
    return s_max * ((2 * k - (num - 1)) / (num - 1))


def _float_dtype(params):
    leaves = [x for x in jax.tree_util.tree_leaves(params) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.result_type(*leaves) if leaves else jnp.result_type(float)


def _check_steps(steps) -> jax.Array:
    steps = jnp.asarray(steps)
    if steps.ndim != 1:
        raise InputError(f"steps must be a 1-D grid of step sizes but has shape {steps.shape}; pass a vector "
                         f"such as jnp.linspace(-1, 1, 41).")
    if steps.shape[0] < 3:
        raise InputError(f"steps has {steps.shape[0]} grid points but a parabola needs at least 3; pass a "
                         f"longer grid (or num >= 3).")
    if not jnp.issubdtype(steps.dtype, jnp.floating):
        steps = steps.astype(jnp.result_type(float))
    if is_concrete(steps):
        values = np.asarray(steps)
        if not np.all(np.isfinite(values)):
            raise InputError("steps contains NaN or inf; pass a finite grid of step sizes.")
        if not np.all(np.diff(values) > 0):
            raise InputError("steps must be strictly increasing; sort the grid and drop repeated points.")
    return steps


def _check_inputs(named, params, direction, steps, batch_size) -> jax.Array:
    steps = _check_steps(steps)
    check_same_structure(params, direction, "direction")
    check_finite(params, "params")
    for name, fn in named:
        try:
            check_scalar_loss(fn, params)
        except InputError as e:
            raise InputError(f"loss_fns[{name!r}]: {e}") from None
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise InputError(f"batch_size={batch_size} must be a positive integer (or None for one vmap).")
    leaves = jax.tree_util.tree_leaves(direction)
    if leaves and all(is_concrete(x) for x in leaves):
        norm = float(np.sqrt(sum(float(np.sum(np.abs(np.asarray(x)) ** 2)) for x in leaves)))
        if not np.isfinite(norm):
            raise InputError("direction contains NaN or inf; pass a finite update direction.")
        if norm == 0.0:
            raise InputError("direction is zero, so it has no line to measure (and cannot be normalised); "
                             "pass a non-zero update direction.")
    return steps


# --------------------------------------------------------------------------
# Vmapped profiles
# --------------------------------------------------------------------------


def unstack_profiles(profile: LineProfile) -> list[LineProfile]:
    """Split a vmapped profile (leading batch axis on every leaf) into single profiles."""
    if profile.steps.ndim == 1:
        return [profile]
    if profile.steps.ndim != 2:
        raise InputError(f"profile steps have shape {profile.steps.shape}; pass single profiles or one "
                         f"vmapped over a single batch axis.")
    return [jax.tree_util.tree_map(lambda x, k=k: x[k], profile) for k in range(profile.steps.shape[0])]
