"""Two run stores side by side: are the same runs' metrics the same, and if not, by how much?

For reproducibility checks across code versions or machines: the runs of
``a`` and ``b`` are paired in the order they were created (the same command
creates them in the same order) and must agree in name, seed and status;
each pair's metrics are compared on the union of their (metric, step) rows.
A value equal in both (NaN equal to NaN, inf to inf) is identical; otherwise
the difference is reported as absolute and relative (to the larger
magnitude).  Rows that exist on one side only are counted, never ignored.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from eoslab.store.runs import RunStore


@dataclasses.dataclass(frozen=True)
class MetricDiff:
    run: int  # position in creation order
    name: str  # run name
    metric: str
    rows: int  # rows on both sides
    differing: int  # rows whose values are not identical
    only_one_side: int  # rows present in one store only
    max_abs: float
    max_rel: float


@dataclasses.dataclass(frozen=True)
class StoreComparison:
    runs: int
    unpaired: list[str]  # runs that have no counterpart, or whose name, seed or status differ
    diffs: list[MetricDiff]  # metrics that are not identical

    @property
    def identical(self) -> bool:
        return not self.unpaired and not self.diffs

    def lines(self) -> list[str]:
        out = [f"{self.runs} runs paired; " + ("identical" if self.identical else
                                              f"{len(self.diffs)} metrics differ, {len(self.unpaired)} runs unpaired")]
        out += [f"  unpaired: {u}" for u in self.unpaired]
        for d in sorted(self.diffs, key=lambda d: -d.max_rel):
            out.append(f"  run {d.run} {d.name} {d.metric}: {d.differing}/{d.rows} rows differ "
                       f"(max abs {d.max_abs:.3g}, max rel {d.max_rel:.3g})"
                       + (f", {d.only_one_side} rows on one side only" if d.only_one_side else ""))
        return out


def _same(x: float, y: float) -> bool:
    return x == y or (math.isnan(x) and math.isnan(y))


def compare_stores(a: RunStore, b: RunStore, metrics=None) -> StoreComparison:
    """Pair the runs of ``a`` and ``b`` by creation order and compare their metrics (all, or ``metrics``)."""
    runs_a, runs_b = a.list_runs(), b.list_runs()
    unpaired, diffs = [], []
    for i, (ra, rb) in enumerate(zip(runs_a, runs_b)):
        if (ra.name, ra.seed, ra.status) != (rb.name, rb.seed, rb.status):
            unpaired.append(f"run {i}: {ra.name} seed {ra.seed} {ra.status} vs {rb.name} seed {rb.seed} {rb.status}")
            continue
        ma, mb = a.get_metrics(ra.id, metrics), b.get_metrics(rb.id, metrics)
        for metric in sorted(set(ma) | set(mb)):
            sa = dict(zip(*(x.tolist() for x in ma.get(metric, (np.zeros(0), np.zeros(0))))))
            sb = dict(zip(*(x.tolist() for x in mb.get(metric, (np.zeros(0), np.zeros(0))))))
            both = sorted(set(sa) & set(sb))
            one = len(set(sa) ^ set(sb))
            bad = [(sa[s], sb[s]) for s in both if not _same(sa[s], sb[s])]
            if bad or one:
                absd = [abs(x - y) for x, y in bad if math.isfinite(x) and math.isfinite(y)]
                reld = [abs(x - y) / max(abs(x), abs(y)) for x, y in bad if math.isfinite(x) and math.isfinite(y)]
                nonfinite = len(bad) - len(absd)
                diffs.append(MetricDiff(i, ra.name, metric, len(both), len(bad), one,
                                        math.inf if nonfinite else max(absd, default=0.0),
                                        math.inf if nonfinite else max(reld, default=0.0)))
    for extra, side in ((runs_a[len(runs_b):], "a"), (runs_b[len(runs_a):], "b")):
        unpaired += [f"run {r.id} of {side} ({r.name}) has no counterpart" for r in extra]
    return StoreComparison(min(len(runs_a), len(runs_b)), unpaired, diffs)
