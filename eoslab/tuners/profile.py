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

For a descent direction the interesting side is s > 0; the default grid is
symmetric, s in [-s_max, s_max] with ``num`` (odd: s = 0 is a grid point)
points, so the figure shows the line on both sides of the current point as in
PAL's plots of loss lines.  A step of eta along d (SGD: d = -g) is the
distance eta |d| = eta * ``direction_norm`` on this axis.

Losses that are NaN or inf on part of the line (divergence far out on it) are
a result, not an error: they are left out of the fit and of the minimiser.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.curvature.operators import check_finite, check_same_structure, check_scalar_loss, is_concrete
from eoslab.errors import InputError

PyTree = Any
DEFAULT_NAME = "loss"


class ParabolaFit(NamedTuple):
    """l(s) ~ a s^2 + b s + c (least squares) and its coefficient of determination."""
    a: jax.Array
    b: jax.Array
    c: jax.Array
    r2: jax.Array

    @property
    def argmin(self) -> jax.Array:
        """Vertex -b / (2a) of the fitted parabola (PAL's step); NaN when a <= 0 (no minimum)."""
        return jnp.where(self.a > 0, -self.b / (2 * jnp.where(self.a > 0, self.a, 1.0)), jnp.nan)


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
# Fitting and minimising on a grid (vectorised over leading axes)
# --------------------------------------------------------------------------


def parabola_fit(steps: jax.Array, losses: jax.Array, window=None) -> ParabolaFit:
    """Ordinary least squares l ~ a s^2 + b s + c over the points with |s| <= window.

    ``losses`` has shape (..., n) and ``steps`` broadcasts against it; the fit is
    vectorised over the leading axes.  Points whose loss is NaN or inf are left
    out.  The 3x3 normal equations are solved in the variable t = (s - m) / h
    that maps the fitted points onto [-1, 1] (well conditioned on any grid) and
    mapped back.  R^2 = 1 - SS_res / SS_tot over the fitted points; a constant
    line (SS_tot = 0) is an exact, degenerate parabola and gets R^2 = 1.  With
    fewer than 3 usable (finite, in-window) points the result is NaN.
    """
    steps, losses = jnp.asarray(steps), jnp.asarray(losses)
    if losses.ndim < 1 or losses.shape[-1] < 3:
        raise InputError(f"losses has shape {losses.shape} but a parabola needs at least 3 points along "
                         f"the last axis; measure the line on a longer grid.")
    try:
        shape = jnp.broadcast_shapes(steps.shape, losses.shape)
    except ValueError:
        shape = None
    if shape is None or steps.ndim < 1 or steps.shape[-1] != losses.shape[-1]:
        raise InputError(f"steps of shape {steps.shape} do not match losses of shape {losses.shape}; "
                         f"give one step size per loss along the last axis.")
    if window is not None:
        _check_window(window, steps)
    dtype = jnp.result_type(steps, losses, jnp.float32)
    s = jnp.broadcast_to(steps, shape).astype(dtype)
    l = jnp.broadcast_to(losses, shape).astype(dtype)
    return _parabola_fit_jit(s, l, window)


def _parabola_fit(s, l, window) -> ParabolaFit:
    mask = jnp.isfinite(l)
    if window is not None:
        mask = mask & (jnp.abs(s) <= window)
    w = mask.astype(s.dtype)
    lo = jnp.min(jnp.where(mask, s, jnp.inf), axis=-1, keepdims=True)
    hi = jnp.max(jnp.where(mask, s, -jnp.inf), axis=-1, keepdims=True)
    m, h = 0.5 * (lo + hi), 0.5 * (hi - lo)
    t = jnp.where(mask, (s - m) / h, 0.0)
    mean = jnp.sum(jnp.where(mask, l, 0.0), axis=-1, keepdims=True) / jnp.sum(w, axis=-1, keepdims=True)
    y = jnp.where(mask, l - mean, 0.0)  # centred: the fit and R^2 do not lose digits to a large offset
    t2 = t * t
    # one reduction for all sums: moments sum_i t_i^k (k = 0..4), sum_i y_i t_i^k (k = 0..2), sum_i y_i^2
    sums = jnp.sum(jnp.stack([w, t, t2, t2 * t, t2 * t2, y * t2, y * t, y, y * y], axis=-1), axis=-2)
    mom, rhs, ss_tot = [sums[..., k] for k in range(5)], [sums[..., k] for k in (5, 6, 7)], sums[..., 8]
    # normal equations for the basis (t^2, t, 1): a Hankel matrix of the moments
    rows = [(mom[4], mom[3], mom[2]), (mom[3], mom[2], mom[1]), (mom[2], mom[1], mom[0])]
    big_a, big_b, big_c = _solve3(rows, rhs)
    resid = y - (big_a[..., None] * t2 + big_b[..., None] * t + big_c[..., None])
    ss_res = jnp.sum(jnp.where(mask, resid, 0.0) ** 2, axis=-1)
    r2 = jnp.where(ss_tot > 0, 1.0 - ss_res / jnp.where(ss_tot > 0, ss_tot, 1.0), 1.0)
    m, h, big_c = m[..., 0], h[..., 0], big_c + mean[..., 0]
    a = big_a / h**2
    b = big_b / h - 2.0 * big_a * m / h**2
    c = big_a * m**2 / h**2 - big_b * m / h + big_c
    return ParabolaFit(a, b, c, r2)


def _det3(rows):
    (a, b, c), (d, e, f), (g, h, i) = rows
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def _solve3(rows, rhs):
    """Solve a 3x3 system (given by rows of arrays) by Cramer's rule: few ops, quick to compile.

    Accurate here because the matrix is the Gram matrix of (t^2, t, 1) on [-1, 1]
    (condition number of order 10 for any grid spread over the interval).
    """
    full = _det3(rows)
    return tuple(_det3([tuple(rhs[r] if k == j else rows[r][k] for k in range(3)) for r in range(3)]) / full
                 for j in range(3))


def line_minimum(steps: jax.Array, losses: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Exact line-search minimiser on a grid: (argmin, min_loss), vectorised over leading axes.

    The grid point s_i of least loss; when it is interior (and its neighbours
    are finite), the parabola through (s_{i-1}, l_{i-1}), (s_i, l_i),
    (s_{i+1}, l_{i+1}) refines it: with h1 = s_i - s_{i-1}, h2 = s_{i+1} - s_i,
    d1 = l_{i-1} - l_i > 0, d2 = l_{i+1} - l_i >= 0,

        l(s_i + x) = l_i + B x + A x^2,  A = (h1 d2 + h2 d1) / (h1 h2 (h1 + h2)),
                                         B = (h1^2 d2 - h2^2 d1) / (h1 h2 (h1 + h2)),

    and the minimiser is s_i - B / (2A) in [s_{i-1}, s_{i+1}] with loss
    l_i - B^2 / (4A) <= l_i.  Exact when the line loss is a parabola (any grid).
    A minimum at either end of the grid is not refined: widen the grid.
    NaN/inf losses are skipped; with no finite loss, argmin is NaN and min_loss inf.
    """
    steps, losses = jnp.asarray(steps), jnp.asarray(losses)
    if losses.ndim < 1 or losses.shape[-1] < 3 or steps.shape[-1:] != losses.shape[-1:]:
        raise InputError(f"steps of shape {steps.shape} and losses of shape {losses.shape} must share a "
                         f"last axis of at least 3 points; give one step size per loss.")
    dtype = jnp.result_type(steps, losses, jnp.float32)
    shape = jnp.broadcast_shapes(steps.shape, losses.shape)
    return _line_minimum_jit(jnp.broadcast_to(steps, shape).astype(dtype),
                             jnp.broadcast_to(losses, shape).astype(dtype))


def _line_minimum(s, l):
    # the refined minimiser and its loss around every interior point, then pick the one at argmin
    l = jnp.where(jnp.isfinite(l), l, jnp.inf)
    s0, s1, s2 = s[..., :-2], s[..., 1:-1], s[..., 2:]
    l0, l1, l2 = l[..., :-2], l[..., 1:-1], l[..., 2:]
    h1, h2, d1, d2 = s1 - s0, s2 - s1, l0 - l1, l2 - l1
    den = h1 * h2 * (h1 + h2)
    curv = (h1 * d2 + h2 * d1) / den
    slope = (h1**2 * d2 - h2**2 * d1) / den
    refine = jnp.isfinite(l0) & jnp.isfinite(l1) & jnp.isfinite(l2) & (curv > 0)
    safe_curv, safe_slope = jnp.where(refine, curv, 1.0), jnp.where(refine, slope, 0.0)
    inner_s = jnp.where(refine, s1 - safe_slope / (2 * safe_curv), s1)
    inner_l = jnp.where(refine, l1 - safe_slope**2 / (4 * safe_curv), l1)
    cand_s = jnp.concatenate([s[..., :1], inner_s, s[..., -1:]], axis=-1)
    cand_l = jnp.concatenate([l[..., :1], inner_l, l[..., -1:]], axis=-1)
    pick = jnp.arange(l.shape[-1]) == jnp.argmin(l, axis=-1)[..., None]
    argmin = jnp.sum(jnp.where(pick, cand_s, 0.0), axis=-1)
    min_loss = jnp.sum(jnp.where(pick, cand_l, 0.0), axis=-1)
    return jnp.where(jnp.isfinite(min_loss), argmin, jnp.nan), min_loss


_parabola_fit_jit = jax.jit(_parabola_fit)
_line_minimum_jit = jax.jit(_line_minimum)


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
        _check_window(fit_window, steps)
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
    fit = _parabola_fit(s, stacked, window)
    argmin, min_loss = _line_minimum(jnp.broadcast_to(s, stacked.shape), stacked)
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


def _check_window(window, steps) -> None:
    if not (is_concrete(window) and is_concrete(steps)):
        return
    w = np.asarray(window)
    if w.ndim != 0 or not (w > 0):
        raise InputError(f"fit_window={window} must be a positive scalar distance; pass e.g. fit_window=0.5.")
    inside = np.abs(np.asarray(steps)) <= w
    fewest = int(np.min(np.sum(inside, axis=-1))) if inside.ndim else int(inside)
    if fewest < 3:
        raise InputError(f"fit_window={float(w):g} holds only {fewest} grid point(s) but a parabola needs at "
                         f"least 3; widen the window or refine the grid.")


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
# Figure
# --------------------------------------------------------------------------


def unstack_profiles(profile: LineProfile) -> list[LineProfile]:
    """Split a vmapped profile (leading batch axis on every leaf) into single profiles."""
    if profile.steps.ndim == 1:
        return [profile]
    if profile.steps.ndim != 2:
        raise InputError(f"profile steps have shape {profile.steps.shape}; pass single profiles or one "
                         f"vmapped over a single batch axis.")
    return [jax.tree_util.tree_map(lambda x, k=k: x[k], profile) for k in range(profile.steps.shape[0])]


def plot_line_profiles(profiles: LineProfile | Sequence[LineProfile], *, taken: Sequence[float | None] | None = None,
                       labels: Sequence[str] | None = None, names: Sequence[str] | None = None,
                       ax=None, path: str | Path | None = None, num_points: int = 200):
    """Loss against step size for several profiles (e.g. at several training steps); returns the Figure.

    One panel per loss name (``names``, default all); per profile, one colour:
    the measured line (solid, 1 - R^2 in the legend), the fitted parabola over its
    fit window (dashed), a marker at the exact line minimiser, and a dotted
    vertical line at the step actually taken (``taken[k]``, in the units of
    ``steps``; ``None`` to skip).  ``profiles`` may be a vmapped profile.
    ``ax``: an axes, or one per name, to draw into.  ``path``: also write the
    figure there (PNG unless the suffix names another format).
    """
    profs = []
    for p in ([profiles] if isinstance(profiles, LineProfile) else list(profiles)):
        profs.extend(unstack_profiles(p))
    if not profs:
        raise InputError("profiles is empty; pass at least one LineProfile.")
    names = list(profs[0].names if names is None else names)
    for k, p in enumerate(profs):
        missing = [n for n in names if n not in p.losses]
        if missing:
            raise InputError(f"profile {k} has no loss named {missing[0]!r} (it has {list(p.names)}); "
                             f"pass names= present in every profile.")
    taken = [None] * len(profs) if taken is None else list(taken)
    labels = [f"profile {k}" for k in range(len(profs))] if labels is None else list(labels)
    if len(taken) != len(profs) or len(labels) != len(profs):
        raise InputError(f"got {len(profs)} profiles, {len(taken)} taken steps and {len(labels)} labels; "
                         f"give one taken step (or None) and one label per profile.")

    if ax is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.0 * len(names), 3.8), layout="constrained")
        FigureCanvasAgg(fig)
        axes = list(np.atleast_1d(fig.subplots(1, len(names), squeeze=False)[0]))
    else:
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) != len(names):
            raise InputError(f"got {len(axes)} axes for {len(names)} loss names; pass one axes per name "
                             f"(or names= to choose which to plot).")
        fig = axes[0].figure

    normalised = all(float(p.unit_length) == 1.0 for p in profs)
    for axis, name in zip(axes, names):
        for k, (p, label) in enumerate(zip(profs, labels)):
            colour = f"C{k % 10}"
            s, l = np.asarray(p.steps), np.asarray(p.losses[name])
            fit = p.fit[name]
            axis.plot(s, l, "-", color=colour, lw=1.2, label=f"{label} (1-R²={1.0 - float(fit.r2):.1e})")
            w = float(p.fit_window)
            lo, hi = max(float(s[0]), -w), min(float(s[-1]), w)
            grid = np.linspace(lo, hi, num_points)
            axis.plot(grid, float(fit.a) * grid**2 + float(fit.b) * grid + float(fit.c), "--", color=colour, lw=1.0)
            axis.plot([float(p.argmin[name])], [float(p.min_loss[name])], "o", color=colour, ms=5)
            if taken[k] is not None:
                axis.axvline(float(taken[k]), color=colour, ls=":", lw=1.0)
        axis.set_xlabel("step s (distance along d/|d|)" if normalised else "step s (multiples of d)")
        axis.set_ylabel(f"{name} loss")
        axis.set_title(f"{name} loss along the line (dashed: parabola fit, o: line minimum, "
                       f"dotted: step taken)", fontsize=8)
        axis.legend(fontsize=7)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=130)
    return fig
