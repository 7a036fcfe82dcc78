"""Statistics of recorded time series, shared by the reproductions' claims.

A series is a pair ``(steps, values)`` as the run store returns it (steps
sorted, int; values float, possibly NaN).  Every statistic here ignores
non-finite values and returns NaN when nothing is left, so a diverged or
empty series gives NaN rather than an error.

At the edge of stability the quantities the claims are about oscillate with
period 2 (eta_t * lambda_t of a step-size tuner alternates above and below 2
from one step to the next).  A series sampled every n steps then aliases: with
n even it sees one phase only, with n odd it alternates.  The period-2-safe
statistics (:func:`balanced_pairs`, :func:`period2_median`,
:func:`period2_fraction_above`) therefore use only values in pairs of
*consecutive* recorded steps, one value of each phase per pair, and refuse
(NaN) a series that has none; :func:`coverage` says how much of a step range a
series covers.  They are medians and fractions, not means: one phase of an
oscillation can carry rare large spikes (a Polyak step at its cap) that would
dominate a mean of the two phases.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np


def window(steps, values, lo: int | None = None, hi: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The part of a series with ``lo <= step <= hi`` (a bound that is None is open)."""
    steps, values = np.asarray(steps), np.asarray(values, float)
    keep = np.ones(len(steps), bool)
    if lo is not None:
        keep &= steps >= lo
    if hi is not None:
        keep &= steps <= hi
    return steps[keep], values[keep]


def finite(values) -> np.ndarray:
    """The finite values, as float."""
    values = np.asarray(values, float)
    return values[np.isfinite(values)]


def median(values) -> float:
    """Median of the finite values (NaN if none)."""
    v = finite(values)
    return float(np.median(v)) if len(v) else float("nan")


def quartiles(values) -> tuple[float, float]:
    """First and third quartiles (25th and 75th percentiles) of the finite values (NaN if none)."""
    v = finite(values)
    if not len(v):
        return float("nan"), float("nan")
    q25, q75 = np.percentile(v, [25, 75])
    return float(q25), float(q75)


def fraction_above(values, level: float) -> float:
    """Fraction of the finite values strictly above ``level`` (NaN if none)."""
    v = finite(values)
    return float(np.mean(v > level)) if len(v) else float("nan")


def value_at_or_after(steps, values, step: int) -> float:
    """The value at the first recorded step >= ``step`` (NaN if none)."""
    steps = np.asarray(steps)
    hit = np.nonzero(steps >= step)[0]
    return float(np.asarray(values, float)[hit[0]]) if len(hit) else float("nan")


def first_step_at(steps, values, level: float) -> int | None:
    """The first recorded step whose value is >= ``level`` (None if the series never gets there)."""
    hit = np.nonzero(np.asarray(values, float) >= level)[0]
    return int(np.asarray(steps)[hit[0]]) if len(hit) else None


def coverage(steps, lo: int, hi: int) -> float:
    """Fraction of the integer steps ``lo..hi`` at which the series has a value (1: every step)."""
    if hi < lo:
        return float("nan")
    s = np.unique(np.asarray(steps))
    return float(np.count_nonzero((s >= lo) & (s <= hi)) / (hi - lo + 1))


def consecutive_pairs(steps, values) -> tuple[np.ndarray, np.ndarray]:
    """``(v_t, v_{t+1})`` for every t such that steps t and t + 1 both carry a finite value."""
    steps, values = np.asarray(steps), np.asarray(values, float)
    ok = np.isfinite(values)
    steps, values = steps[ok], values[ok]
    nxt = np.nonzero(np.diff(steps) == 1)[0]
    return values[nxt], values[nxt + 1]


def two_step_means(steps, values) -> np.ndarray:
    """(v_t + v_{t+1}) / 2 for every pair of consecutive recorded steps (a smoothing of a per-step series).

    A period-2 oscillation a, b, a, b, ... gives (a + b) / 2 at every t,
    whichever phase a sample starts on; a series sampled every n > 1 steps
    gives nothing (it cannot resolve the oscillation).  A mean: rare large
    values in one phase dominate it (for a level, see :func:`period2_median`).
    """
    a, b = consecutive_pairs(steps, values)
    return (a + b) / 2


def balanced_pairs(steps, values) -> np.ndarray:
    """The values of disjoint pairs of consecutive recorded steps (t, t + 1), pooled.

    Pairs are taken greedily from the first step on, so every pair holds one
    value of each phase of a period-2 oscillation: the pool weighs the two
    phases equally even where some steps are missing (a value left out because
    its solve did not converge).  A series sampled every n > 1 steps has no pair
    and gives nothing (it cannot resolve the oscillation).
    """
    steps, values = np.asarray(steps), np.asarray(values, float)
    ok = np.isfinite(values)
    steps, values = steps[ok], values[ok]
    pooled, i = [], 0
    while i + 1 < len(steps):
        if steps[i + 1] == steps[i] + 1:
            pooled += [values[i], values[i + 1]]
            i += 2
        else:
            i += 1
    return np.asarray(pooled, float)


def period2_median(steps, values) -> float:
    """Median of :func:`balanced_pairs`: the level of a period-2 oscillation, both phases weighed equally."""
    return median(balanced_pairs(steps, values))


def period2_fraction_above(steps, values, level: float) -> float:
    """Fraction of :func:`balanced_pairs` strictly above ``level`` (NaN without pairs)."""
    return fraction_above(balanced_pairs(steps, values), level)


def fraction_of_rises(steps, values, rel: float = 1e-3) -> float:
    """Fraction of consecutive steps t -> t + 1 where the value rose by more than ``rel`` relative.

    A measure of non-monotonicity of a per-step series (a loss at the edge of
    stability); ``rel`` sits above float32 rounding.  NaN without consecutive steps.
    """
    a, b = consecutive_pairs(steps, values)
    if not len(a):
        return float("nan")
    return float(np.mean(b > a + rel * np.abs(a)))


class LevelStats(NamedTuple):
    """How a per-step series sits relative to a level (the edge of stability, 2, for eta_t * lambda_t).

    n: values in balanced pairs of consecutive steps (:func:`balanced_pairs`); coverage: fraction of
    the step range recorded; median, q25, q75: median and quartiles of those values; above: the
    fraction of them > level.  All NaN (n = 0) for a series without consecutive steps.
    """
    n: int
    coverage: float
    median: float
    q25: float
    q75: float
    above: float


def level_stats(steps, values, level: float, lo: int | None = None, hi: int | None = None) -> LevelStats:
    """:class:`LevelStats` of the series over ``lo <= step <= hi``."""
    s, v = window(steps, values, lo, hi)
    pooled = balanced_pairs(s, v)
    q25, q75 = quartiles(pooled)
    first = lo if lo is not None else (int(s[0]) if len(s) else 0)
    last = hi if hi is not None else (int(s[-1]) if len(s) else -1)
    return LevelStats(n=len(pooled), coverage=coverage(s, first, last), median=median(pooled), q25=q25, q75=q75,
                      above=fraction_above(pooled, level))


def spread(values: Sequence[float]) -> dict:
    """Median, min, max over the determined values (inf / -inf: beyond a grid), their count n and the missing.

    A nan is an undetermined value (a run missing, or its eigenvalues not
    certified): it is left out and counted in ``missing``, never taken as a
    grid edge.
    """
    v = np.asarray([x for x in values if not np.isnan(x)], float)
    missing = len(values) - len(v)
    if not len(v):
        return dict(median=math.nan, min=math.nan, max=math.nan, n=0, missing=missing)
    return dict(median=float(np.median(v)), min=float(v.min()), max=float(v.max()), n=int(len(v)),
                missing=missing)


def distances_within(d: np.ndarray, tol: float) -> dict:
    """Summary of non-negative distances: count, median, 99th percentile, max and the fraction <= ``tol``."""
    if d.size == 0:
        return {"n_points": 0, "median": float("nan"), "p99": float("nan"), "max": float("nan"),
                "fraction_within_tol": float("nan")}
    return {
        "n_points": int(d.size),
        "median": float(np.median(d)),
        "p99": float(np.percentile(d, 99)),
        "max": float(np.max(d)),
        "fraction_within_tol": float(np.mean(d <= tol)),
    }
