"""Critical values of the early-training phase diagram: the rules, and their reading off the stored sweeps.

c_loss, c_sharp, c_barrier (and c_barrier_10, c_barrier_100) and c_max of
one (depth, width, seed) over a grid of c; definitions and the treatment of
missing runs and uncertified eigenvalues in :mod:`eoslab.experiments.phases`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from eoslab.experiments.claims import combine
from eoslab.experiments.statistics import spread

PAPER = "Kalra & Barkeshli 2023"
EARLY_STEPS = 10  # the window of c_loss and c_sharp


def first_c(cs: np.ndarray, hit: np.ndarray, known: np.ndarray | None = None) -> float:
    """The smallest c (of a sorted grid) with ``hit``; inf if none.

    ``known[i]`` False marks a missing run (not run, or failed): it could have
    been a hit, so a first hit above it, or no hit at all, is undetermined (nan).
    """
    known = np.ones(len(cs), bool) if known is None else np.asarray(known, bool)
    for c, h, k in zip(np.asarray(cs, float), np.asarray(hit, bool), known):
        if not k:
            return math.nan
        if h:
            return float(c)
    return math.inf


def last_stable_c(cs: np.ndarray, diverged: np.ndarray, known: np.ndarray | None = None) -> float:
    """c_max: the grid value just below the smallest diverging c.

    The largest c if none diverges, -inf if the smallest c diverges (c_max below
    the grid); nan if a missing run (``known`` False) comes before the first
    divergence (it might have diverged).
    """
    cs = np.asarray(cs, float)
    known = np.ones(len(cs), bool) if known is None else np.asarray(known, bool)
    for i, (d, k) in enumerate(zip(np.asarray(diverged, bool), known)):
        if not k:
            return math.nan
        if d:
            return float(cs[i - 1]) if i > 0 else -math.inf
    return float(cs[-1])


def loss_rises(losses: np.ndarray, window: int = EARLY_STEPS) -> bool:
    """The loss rises above its initial value within ``window`` steps (a NaN / inf loss counts as rising)."""
    early = losses[1:window + 1]
    return bool(np.any(~np.isfinite(early)) or np.any(early > losses[0]))


def sharpness_rises(sharpness: np.ndarray, window: int = EARLY_STEPS) -> bool:
    """The sharpness rises above lambda_0 within ``window`` steps (NaN / inf counts as rising); exact series."""
    early = sharpness[1:window + 1]
    return bool(np.any(~np.isfinite(early)) or np.any(early > sharpness[0]))


def certified_sharpness_rises(steps: np.ndarray, values: np.ndarray, window: int = EARLY_STEPS) -> bool | None:
    """c_sharp's test on a certified series (only converged eigenvalues; steps may be missing).

    True when a certified value at a step in 1..window exceeds the certified
    lambda_0; False when lambda_0 and every step of the window are certified and
    none exceeds it; None (undetermined) otherwise: an uncertified value could
    have been the rise.
    """
    at = dict(zip(np.asarray(steps).tolist(), np.asarray(values, float).tolist()))
    if 0 not in at:
        return None
    inside = [at[t] for t in range(1, window + 1) if t in at]
    if any(v > at[0] for v in inside):
        return True
    return False if len(inside) == window else None


def line_barrier(line_max_loss: float, initial_loss: float) -> bool | None:
    """A loss barrier on the segment theta_0 -> theta_T: its highest loss above L(theta_0) (None if unmeasured).

    ``line_max_loss`` is the trainer's probe (the highest training loss at
    s = 1/n, ..., 1 on the segment; a NaN loss there counts as inf).
    """
    if not np.isfinite(initial_loss) or np.isnan(line_max_loss):
        return None
    return bool(line_max_loss > initial_loss)


@dataclasses.dataclass(frozen=True)
class Critical:
    """Critical values of one (model, seed) over a grid of c (nan: undetermined, a run missing)."""
    c_loss: float
    c_sharp: float
    c_barrier: float  # segment theta_0 -> theta_1
    c_max: float
    c_barrier_10: float = math.nan  # segment theta_0 -> theta_10, a diverged run counting as a barrier
    c_barrier_100: float = math.nan  # segment theta_0 -> theta_100, likewise


def _depth_width(cfg: dict) -> tuple[int, int]:
    widths = cfg["model"]["widths"]
    return len(widths) + 1, int(widths[0])


EMPTY = (np.zeros(0, np.int64), np.zeros(0))
KNOWN = ("completed", "diverged")  # a run with another status (failed) or none (not run) is missing


def _first_value(m: dict, name: str) -> float:
    v = m.get(name, EMPTY)[1]
    return float(v[0]) if len(v) else math.nan


def _row(table: dict, rec) -> dict:
    key = _depth_width(rec.config)
    c = float(rec.config["optimizer"]["lr"])
    return table.setdefault(key, {}).setdefault(rec.seed, {}).setdefault(c, {})


def grid_points(spec) -> list[tuple[int, int, int, float]]:
    """The ``(depth, width, seed, c)`` of every point of a sweep spec: the grid the critical values are read on."""
    return [(*_depth_width(p.config.to_dict()), p.seed, p.lr) for p in spec.points()]


def collect(runs_first: list, runs_early: list, runs_late: list,
            expected: Sequence[tuple[int, int, int, float]] = ()) -> dict:
    """Per (d, w): the grid of c, per-seed critical values, the early trajectories and the eigenvalue accuracy.

    Each ``runs_*`` is a list of ``(RunRecord, metrics)`` (:func:`eoslab.sweep.sweep_runs`);
    ``expected`` the grid's points (:func:`grid_points`), so that a point no
    sweep stored is on the grid too.  A run that is missing or failed is
    *missing*: the critical values it could decide are undetermined (nan),
    never read as a divergence.  c_sharp uses only certified eigenvalues
    (:func:`eoslab.experiments.claims.certified_series`).
    """
    from eoslab.experiments.claims import certified_series
    table: dict = {}
    for d, w, seed, c in expected:
        table.setdefault((d, w), {}).setdefault(seed, {}).setdefault(float(c), {})
    for rec, m in runs_first:
        r = _row(table, rec)
        r["first_status"] = rec.status
        r["first_barrier"] = line_barrier(_first_value(m, "line_max_loss"), _first_value(m, "train_loss"))
    for rec, m in runs_early:
        r = _row(table, rec)
        r["early_status"] = rec.status
        r["early_loss"] = m.get("train_loss", EMPTY)[1]
        r["early_sharpness"] = m.get("sharpness", EMPTY)[1]
        r["eta"] = _first_value(m, "eta")
        steps, lam, acc = certified_series(m, "sharpness")
        r["sharp_accuracy"] = acc
        r["sharp_rise"] = True if rec.status == "diverged" else certified_sharpness_rises(steps, lam)
        r["early_barrier"] = line_barrier(_first_value(m, "line_max_loss"), _first_value(m, "train_loss"))
    for rec, m in runs_late:
        r = _row(table, rec)
        r["late_status"] = rec.status
        r["late_barrier"] = line_barrier(_first_value(m, "line_max_loss"), _first_value(m, "train_loss"))
    out = {}
    for key, seeds in sorted(table.items()):
        per_seed = {seed: critical_values(by_c) for seed, by_c in sorted(seeds.items())}
        accs = [r["sharp_accuracy"] for by_c in seeds.values() for r in by_c.values() if "sharp_accuracy" in r]
        out[key] = dict(per_seed=per_seed, runs=seeds, accuracy=combine(accs))
    return out


def critical_values(by_c: dict) -> Critical:
    """The critical values of one (d, w, seed) from its rows ``{c: row}`` (see :func:`collect`)."""
    cs = np.asarray(sorted(by_c))
    rows = [by_c[c] for c in cs]
    status = lambda r, sweep: r.get(f"{sweep}_status")  # noqa: E731
    early_known = np.array([status(r, "early") in KNOWN for r in rows])
    late_known = np.array([status(r, "late") in KNOWN for r in rows])
    late_div = np.array([status(r, "late") == "diverged" for r in rows])
    early_div = np.array([status(r, "early") == "diverged" for r in rows])
    loss_hit = np.array([bool(k) and loss_rises(r.get("early_loss", EMPTY[1])) for r, k in zip(rows, early_known)])
    sharp = [r.get("sharp_rise") if k else None for r, k in zip(rows, early_known)]
    first = [r.get("first_barrier") if status(r, "first") in KNOWN else None for r in rows]
    b10 = [r.get("early_barrier") if k else None for r, k in zip(rows, early_known)]
    b100 = [r.get("late_barrier") if k else None for r, k in zip(rows, late_known)]
    tri = lambda v: (np.array([x is True for x in v]), np.array([x is not None for x in v]))  # noqa: E731
    s_hit, s_known = tri(sharp)
    f_hit, f_known = tri(first)
    e_hit, e_known = tri(b10)
    l_hit, l_known = tri(b100)
    return Critical(first_c(cs, loss_hit, early_known), first_c(cs, s_hit, s_known),
                    first_c(cs, f_hit, f_known), last_stable_c(cs, late_div, late_known),
                    first_c(cs, e_hit | early_div, e_known | early_div),
                    first_c(cs, l_hit | late_div, l_known | late_div))


CRITICAL = ("c_loss", "c_sharp", "c_barrier", "c_max", "c_barrier_10", "c_barrier_100")


def summarise(collected: dict) -> list[dict]:
    """Per (d, w): the spread of each critical value over seeds (with n), and the order over common seeds.

    ``cs``: the grid of c the critical values were read on (the phase
    diagram's cells); ``per_seed``: each seed's :class:`Critical`.

    ``order``: medians of c_loss, c_sharp and c_max over the seeds where all
    three are determined (so the three medians are over the same seeds), with
    that count ``order_n`` and the seeds where the order holds, ``ordered_seeds``.
    """
    rows = []
    for (d, w), entry in collected.items():
        crit = list(entry["per_seed"].values())
        row = dict(depth=d, width=w, ratio=d / w, seeds=len(crit), accuracy=entry.get("accuracy"), per_seed=crit,
                   cs=sorted({float(c) for by_c in entry.get("runs", {}).values() for c in by_c}))
        for name in CRITICAL:
            row[name] = spread([getattr(c, name) for c in crit])
        common = [c for c in crit if not any(np.isnan((c.c_loss, c.c_sharp, c.c_max)))]
        row["order"] = {n: float(np.median([getattr(c, n) for c in common])) if common else math.nan
                        for n in ("c_loss", "c_sharp", "c_max")}
        row["order_n"] = len(common)
        row["ordered_seeds"] = sum(c.c_loss <= c.c_sharp <= c.c_max for c in common)
        rows.append(row)
    return rows


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(spearmanr(x, y).statistic)
