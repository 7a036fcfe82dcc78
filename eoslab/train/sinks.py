"""Where the training loop writes metrics: the run store, or memory.

The host loop (:func:`eoslab.train.loop.run_loop`) hands every member's
rows ``{metric: (steps, values)}`` to one sink, chunk by chunk and
evaluation by evaluation.  A step written twice keeps its last value (a
resumed run rewrites the steps after its checkpoint).

* :class:`StoreSink`: each member is a run of the SQLite run store
  (:class:`~eoslab.store.RunStore`), as :func:`eoslab.train.train` uses it;
* :class:`MemorySink`: per-member series in memory, as a sweep's batch
  collects them before its driver stores the results.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

Rows = dict[str, tuple[np.ndarray, np.ndarray]]


class Sink(Protocol):
    def write(self, rows: list[Rows]) -> None:
        """One dict of rows per member."""


class StoreSink:
    """Members' rows into their runs of a run store."""

    def __init__(self, store, run_ids: list[int]):
        self.store, self.run_ids = store, list(run_ids)

    def write(self, rows: list[Rows]) -> None:
        for rid, r in zip(self.run_ids, rows):
            self.store.log_metrics(rid, r)


class MemorySink:
    """Members' rows in memory; :meth:`metrics` gives each member's series in step order."""

    def __init__(self, members: int):
        self._series: list[dict[str, dict[int, float]]] = [{} for _ in range(members)]

    def write(self, rows: list[Rows]) -> None:
        for series, r in zip(self._series, rows):
            for name, (steps, values) in r.items():
                series.setdefault(name, {}).update(zip(np.asarray(steps, np.int64).tolist(),
                                                       np.asarray(values, np.float64).tolist()))

    def metrics(self, member: int) -> Rows:
        out = {}
        for name, by_step in self._series[member].items():
            steps = np.asarray(sorted(by_step), np.int64)
            out[name] = (steps, np.asarray([by_step[s] for s in steps.tolist()], np.float64))
        return out
