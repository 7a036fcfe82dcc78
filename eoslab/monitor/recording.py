"""Where a monitor's measurements go: the live events, the run store, TensorBoard (shared by the JAX and PyTorch monitors).

:class:`Recorder` takes one measurement at a time (plain floats), runs the
event detector on its certified values (:mod:`eoslab.monitor.events`),
prints each event once, and writes the measurement and its events as metric
rows of one run of the run store (``event_<name>`` rows) and as TensorBoard
scalars (``eoslab/<metric>``, ``events/<name>``), when asked.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from eoslab.monitor.events import EventDetector, EventRules


class Recorded:
    """Base of the monitors: their :class:`Recorder` (``self._rec``), its detector, ``close`` and ``with``."""
    _rec: "Recorder"

    @property
    def detector(self) -> EventDetector:
        return self._rec.detector

    def close(self, status: str = "completed") -> None:
        """Finish the stored run (``completed``, or ``diverged`` when the divergence event fired)."""
        self._rec.close(status)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close("failed" if exc[0] is not None else "completed")


class Recorder:
    """Events, store and TensorBoard for one monitored run (see the module docstring)."""

    def __init__(self, *, store=None, tensorboard=None, name: str = "monitor", seed: int = 0,
                 events: EventRules | None = None, verbose: bool = True, describe: Callable[[], dict] = dict):
        self.detector = EventDetector(events)
        self.verbose, self.name, self.seed, self.describe = verbose, name, seed, describe
        self._store_arg, self._tensorboard = store, tensorboard
        self._store = self._run_id = self._tb = None
        self._own_store = False

    def record(self, step: int, out: dict) -> dict:
        """Run the events on ``out`` (adds ``out["events"]``, their messages), print and write them."""
        ok = out.get("converged", False)
        fired = self.detector.update(step, out["loss"], out.get("sharpness", math.nan) if ok else math.nan,
                                     out.get("edge_ratio", math.nan) if ok else math.nan)
        out["events"] = [e.message for e in fired]
        if self.verbose:
            for e in fired:
                print(f"[eoslab] {e.message}", file=sys.stderr)
        scalars = {k: v for k, v in out.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self._tensorboard is not None:
            from eoslab.monitor.tensorboard import ScalarWriter
            self._tb = self._tb or ScalarWriter(self._tensorboard)
            self._tb.write(step, {**{f"eoslab/{k}": v for k, v in scalars.items()},
                                  **{f"events/{e.name}": 1.0 for e in fired}})
        if self._store_arg is not None:
            from eoslab.store import RunStore
            if self._store is None:
                self._own_store = not isinstance(self._store_arg, RunStore)
                self._store = RunStore.in_dir(Path(self._store_arg)) if self._own_store else self._store_arg
                self._run_id = self._store.start_run(self.describe(), name=self.name, seed=self.seed)
            rows = {k: (np.asarray([step]), np.asarray([v], np.float64)) for k, v in scalars.items() if k != "error"}
            rows["sharpness_converged"] = (np.asarray([step]), np.asarray([float(ok)]))
            for e in fired:
                rows[f"event_{e.name}"] = (np.asarray([step]), np.asarray([1.0]))
            self._store.log_metrics(self._run_id, rows)
        return out

    def close(self, status: str = "completed") -> None:
        """Finish the stored run (``completed``, or ``diverged`` when the divergence event fired)."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._store is not None:
            div = next((e.step for e in self.detector.events if e.name == "divergence"), None)
            self._store.finish_run(self._run_id, "diverged" if div is not None else status, diverged_step=div)
            if self._own_store:
                self._store.close()
            self._store = None
