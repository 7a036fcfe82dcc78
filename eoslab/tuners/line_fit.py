"""A parabola fitted to a line loss sampled on a grid, and the exact minimiser on that grid.

Given a line loss l sampled at s_1 < ... < s_n (see :mod:`eoslab.tuners.profile`):

* :func:`parabola_fit`: the least-squares parabola l(s) ~ a s^2 + b s + c over
  the grid points with |s| <= ``window`` (all of them by default) and its
  coefficient of determination R^2 = 1 - sum (l_i - lhat_i)^2 / sum (l_i - mean l)^2,
  the measure of "how parabolic the line is" (R^2 = 1 exactly on a quadratic
  loss, where a = 0.5 u'Hu, b = g.u, c = L(theta));
* :func:`line_minimum`: the exact line-search minimiser on the grid: the grid
  point of least loss, refined, when it is interior, by the parabola through it
  and its two neighbours (exact when l is a parabola; it stays between the
  neighbours).

Both are vectorised over leading axes and leave out NaN or inf losses
(divergence far out on the line is a result, not an error).
:func:`parabola_fit_unchecked` and :func:`line_minimum_unchecked` are the same
computations without the input checks, to be called inside ``jit`` on arrays
of matching shape and dtype.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.curvature.operators import is_concrete
from eoslab.errors import InputError


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
        check_fit_window(window, steps)
    dtype = jnp.result_type(steps, losses, jnp.float32)
    s = jnp.broadcast_to(steps, shape).astype(dtype)
    l = jnp.broadcast_to(losses, shape).astype(dtype)
    return _parabola_fit_jit(s, l, window)


def parabola_fit_unchecked(s, l, window) -> ParabolaFit:
    """:func:`parabola_fit` of ``l`` (shape (..., n)) at ``s`` (the same shape and dtype), without input checks."""
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


def line_minimum_unchecked(s, l):
    """:func:`line_minimum` of ``l`` (shape (..., n)) at ``s`` (the same shape and dtype), without input checks."""
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


_parabola_fit_jit = jax.jit(parabola_fit_unchecked)
_line_minimum_jit = jax.jit(line_minimum_unchecked)


def check_fit_window(window, steps) -> None:
    """A fit window must be a positive scalar that holds at least 3 grid points (checked on concrete values only)."""
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

