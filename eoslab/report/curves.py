"""The interactive curves of a report: one chart per quantity, every run a series, downsampled.

:data:`CHARTS` says which stored metric each chart draws (the first of its
``metrics`` that a run stores: ``loss`` every step, else ``train_loss`` at
evaluations, else an alignment ensemble's ``median_loss``) and which
reference line goes with it (a run's stability threshold, dashed, on the
curvature it is a threshold of; 1 on the edge ratio).  :func:`build_curves`
returns a :class:`Curves` whose ``data`` is the JSON that ``curves.js`` draws.

A diverged run is drawn up to its divergence step: the trainer freezes the
member there, and the values stored after it repeat the frozen state (they
would squash every axis to the blow-up).

Long series are downsampled by :func:`downsample`: at most ``max_points``
points per series (:data:`MAX_POINTS`, less when many runs share a chart, so
that a chart holds about :data:`CHART_POINTS`), keeping the first and last
point, every evaluation step, and the smallest and largest value (and the
first non-finite one, so gaps stay) of equal ranges of the other steps, which
keeps the oscillations at the edge of stability visible.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

MAX_POINTS = 2000  # most points of one series
MIN_POINTS = 200  # a series may always keep this many, however many runs share its chart
CHART_POINTS = 100_000  # about the most points of one chart (all its series together)
SIGNIFICANT = 5  # significant digits of the values written to the page
EVAL_METRICS = ("train_loss", "threshold")  # metrics stored only at evaluation steps: their steps are kept


@dataclasses.dataclass(frozen=True)
class Chart:
    """One chart: its ``key``, title, the metrics it draws (first one a run stores), a log y-axis, the
    reference series drawn dashed for each run (``"threshold"``: the run's threshold where it is on this
    chart's curvature; or a metric name) and a horizontal line (``hline``)."""
    key: str
    title: str
    metrics: tuple[str, ...]
    log: bool = False
    reference: str | None = None
    hline: float | None = None


CHARTS = (
    Chart("loss", "Loss", ("loss", "train_loss", "median_loss"), log=True),
    Chart("sharpness", "Sharpness λ₁(H) (dashed: threshold)", ("sharpness", "median_sharpness"),
          reference="threshold"),
    Chart("effective_sharpness", "Effective sharpness λ₁(P⁻¹H) (dashed: threshold)", ("effective_sharpness",),
          reference="effective_threshold"),
    Chart("edge_ratio", "Edge ratio λ₁(P⁻¹H) / threshold (1: edge of stability)",
          ("edge_ratio", "median_sharpness_ratio"), hline=1.0),
)

# every metric the report reads from the store (charts, references, evaluation steps, step sizes)
METRICS = tuple(dict.fromkeys(
    [m for c in CHARTS for m in c.metrics] + ["threshold", "effective_threshold", *EVAL_METRICS, "eta", "lr"]))


@dataclasses.dataclass(frozen=True)
class Curves:
    """The charts' JSON (``data``) and what was downsampled: ``downsampled`` of ``series`` series were
    longer than their cap (``cap``: the largest cap used)."""
    data: dict
    series: int
    downsampled: int
    cap: int


def build_curves(records: Sequence, metrics: Mapping[int, dict], labels: Mapping[int, str]) -> Curves:
    """The charts of the stored runs ``records`` (``RunRecord``), with ``metrics[id]``:
    ``{name: (steps, values)}`` and ``labels[id]`` the legend entry of each run."""
    raw = {r.id: _threshold_on_raw(r.config) for r in records if "threshold" in metrics[r.id]}
    charts, n_series, n_down, cap_used = [], 0, 0, 0
    for chart in CHARTS:
        present = [r for r in records if any(m in metrics[r.id] for m in chart.metrics)]
        if not present:
            continue
        cap = int(min(MAX_POINTS, max(MIN_POINTS, CHART_POINTS // len(present))))
        series, used = [], []
        for rec in present:
            m = metrics[rec.id]
            name = next(n for n in chart.metrics if n in m)
            used.append(name)
            keep = _eval_steps(m)
            until = rec.diverged_step if rec.status == "diverged" else None
            steps, values, cut = downsample(*_until(m[name], until), keep=keep, max_points=cap)
            n_series += 1
            n_down += cut
            cap_used = max(cap_used, cap) if cut else cap_used
            entry = {"run": rec.id, "metric": name, "x": steps, "y": values}
            if until is not None:
                entry["diverged"] = until
            ref = _reference(chart, rec.id, m, raw)
            if ref is not None:
                entry["ref"] = dict(zip(("x", "y"), downsample(*_until(ref, until), keep=keep, max_points=cap)[:2]))
            series.append(entry)
        charts.append({"key": chart.key, "title": chart.title, "log": chart.log, "hline": chart.hline,
                       "metrics": list(dict.fromkeys(used)), "series": series})
    runs = [{"id": r.id, "label": labels[r.id]} for r in records]
    return Curves(data={"runs": runs, "charts": charts}, series=n_series, downsampled=n_down, cap=cap_used)


def downsample(steps, values, *, keep=(), max_points: int = MAX_POINTS) -> tuple[list, list, bool]:
    """``(steps, values, cut)`` of a series as JSON lists, at most about ``max_points`` long.

    A longer series keeps its first and last points, the steps in ``keep`` (evaluation steps) when they
    are at most half of ``max_points``, and in each of equal ranges of the remaining index the smallest and
    largest value and the first non-finite one.  Non-finite values become None (a gap in the curve);
    values are rounded to :data:`SIGNIFICANT` digits.  ``cut`` says whether points were dropped.
    """
    steps = np.asarray(steps, np.int64)
    values = np.asarray(values, np.float64)
    n = len(steps)
    if n <= max_points:
        return steps.tolist(), _rounded(values), False
    chosen = np.zeros(n, bool)
    chosen[[0, -1]] = True
    wanted = np.isin(steps, np.asarray(list(keep), np.int64))
    if wanted.sum() <= max_points // 2:
        chosen |= wanted
    buckets = max(1, (max_points - int(chosen.sum())) // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    finite = np.isfinite(values)
    for a, b in zip(edges[:-1], edges[1:]):
        if b <= a:
            continue
        part, ok = values[a:b], finite[a:b]
        if ok.any():
            idx = np.flatnonzero(ok)
            chosen[a + idx[np.argmin(part[idx])]] = True
            chosen[a + idx[np.argmax(part[idx])]] = True
        if not ok.all():
            chosen[a + int(np.argmin(ok))] = True
    return steps[chosen].tolist(), _rounded(values[chosen]), True


def _until(series, step: int | None):
    """A series up to ``step`` included (all of it for None): a diverged member is frozen at its divergence
    step, and what is stored after it repeats the frozen state."""
    steps, values = (np.asarray(a) for a in series)
    if step is None:
        return steps, values
    keep = steps <= step
    return steps[keep], values[keep]


def _rounded(values: np.ndarray) -> list:
    return [float(f"{v:.{SIGNIFICANT}g}") if math.isfinite(v) else None for v in values.tolist()]


def _eval_steps(metrics: dict) -> set[int]:
    """The run's evaluation steps: the steps of its evaluation-only metrics."""
    out: set[int] = set()
    for name in EVAL_METRICS:
        if name in metrics:
            out.update(np.asarray(metrics[name][0]).tolist())
    return out


def _reference(chart: Chart, run_id: int, m: dict, raw: Mapping[int, bool]):
    """The run's dashed reference series on ``chart``, or None.

    ``threshold`` is the raw-sharpness threshold for the SGD family and the effective one for adaptive
    rules and tuners (see :mod:`eoslab.train.loop`): it goes on the sharpness chart for the former and on
    the effective-sharpness chart (as ``effective_threshold``, or ``threshold`` where that is not stored)
    for the latter.
    """
    if chart.reference == "threshold":
        return m["threshold"] if raw.get(run_id) else None
    if chart.reference == "effective_threshold":
        if "effective_threshold" in m:
            return m["effective_threshold"]
        return m["threshold"] if run_id in raw and not raw[run_id] else None
    return m.get(chart.reference) if chart.reference else None


def _threshold_on_raw(config: dict) -> bool:
    """Whether a run's stored ``threshold`` is on the raw sharpness: its rule is not adaptive and not a tuner
    (a rule this eoslab does not know is taken as one of the SGD family)."""
    opt = config.get("optimizer") if isinstance(config, dict) else None
    name = opt.get("name") if isinstance(opt, dict) else None
    if name is None:
        return True
    from eoslab.rules import RULES  # imports JAX: only for stores with thresholds
    rule = RULES.get(name)
    return rule is None or not (rule.adaptive or rule.tuner)
