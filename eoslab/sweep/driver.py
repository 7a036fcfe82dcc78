"""The sweep driver: plan the batches of what is missing, run them on an executor, store each as it finishes.

Resumable and exactly-once.  A point is *done* when the store holds a
finished run (completed, diverged or failed) of its config hash and seed in
the sweep's group (``sweep:NAME``).  The driver runs only the points that are
not done, and writes every finished batch in one transaction
(:meth:`RunStore.add_finished_runs`), which also skips a point stored
meanwhile.  So a sweep killed at any moment (``kill -9`` included) and
started again loses nothing that was written, repeats nothing, and never
leaves a half-written batch.  ``retry_failed`` deletes the failed runs of
the sweep first, so their points run again; ``force`` deletes all of the
sweep's runs first, so every point runs again.

Bad input (an unknown key, an empty range, a missing data file) raises
before the store is opened: nothing is written.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

from eoslab.store import RunStore
from eoslab.sweep.batch import Batch, Member
from eoslab.sweep.executors import InProcessExecutor
from eoslab.sweep.grid import GridSpec, Point
from eoslab.train.loop import progress_bar


@dataclasses.dataclass
class SweepSummary:
    name: str
    total: int  # points in the grid
    already_done: int  # finished before this call
    ran: int  # finished by this call
    completed: int
    diverged: int
    failed: int
    batches: int
    seconds: float
    executor: str

    def line(self) -> str:
        return (f"sweep {self.name}: {self.total} runs, {self.already_done} already stored, {self.ran} run now "
                f"in {self.batches} batches ({self.completed} completed, {self.diverged} diverged, "
                f"{self.failed} failed) in {self.seconds:.1f} s on the {self.executor} executor")


def plan_batches(points: list[Point], batch_size: int) -> list[Batch]:
    """Group points by shape (grid order kept) and cut each group into near-equal batches of <= batch_size.

    Every batch of a group is padded to the group's largest batch, so a
    group compiles once.
    """
    groups: dict[str, list[Point]] = {}
    for p in points:
        groups.setdefault(p.shape, []).append(p)
    batches = []
    for shape, pts in groups.items():
        n_batches = math.ceil(len(pts) / batch_size)
        size = math.ceil(len(pts) / n_batches)
        for i in range(n_batches):
            chunk = pts[i * len(pts) // n_batches:(i + 1) * len(pts) // n_batches]  # sizes differ by <= 1
            members = tuple(Member(p.key, p.lr, p.seed, p.config.to_dict()) for p in chunk)
            batches.append(Batch(shape, chunk[0].config.to_dict(), members, pad_to=size))
    return batches


def check_data(points: list[Point]) -> None:
    """Load each distinct dataset of the sweep once: a missing or corrupt file raises before anything runs."""
    from eoslab.train.objective import load_data
    seen = set()
    for p in points:
        if p.config.data not in seen:
            seen.add(p.config.data)
            load_data(p.config.data)


def run_sweep(spec: GridSpec, *, results_dir: str | Path = "results", store: RunStore | None = None,
              executor=None, progress: bool = True, retry_failed: bool = False, force: bool = False
              ) -> SweepSummary:
    """Run every point of ``spec`` that the store does not hold yet; see the module docstring."""
    t0 = time.perf_counter()
    points = spec.points()  # validates every point: bad input raises here, before anything is written
    check_data(points)
    executor = executor or InProcessExecutor()
    own_store = store is None
    store = store or RunStore.in_dir(results_dir)
    try:
        if retry_failed or force:
            for r in store.list_runs(status=None if force else "failed", group=spec.group):
                store.delete_run(r.id)
        done = store.finished_keys(spec.group)
        todo = [p for p in points if (p.key, p.seed) not in done]
        batches = plan_batches(todo, spec.batch_size)
        counts = dict(completed=0, diverged=0, failed=0)
        bar = progress_bar(len(points), len(points) - len(todo), progress, unit="run", desc="sweep")
        try:
            for _batch, results in executor.run(batches):
                store.add_finished_runs([dict(config=r.config, name=spec.name, seed=r.seed, group=spec.group,
                                              status=r.status, diverged_step=r.diverged_step, error=r.error,
                                              metrics=r.metrics) for r in results])
                for r in results:
                    counts[r.status] += 1
                bar.update(len(results))
                bar.set_postfix(counts, refresh=False)
        finally:
            bar.close()
        return SweepSummary(spec.name, len(points), len(points) - len(todo), sum(counts.values()),
                            counts["completed"], counts["diverged"], counts["failed"], len(batches),
                            time.perf_counter() - t0, executor.name)
    finally:
        if own_store:
            store.close()


def sweep_runs(store: RunStore, name: str, *, metrics: list[str] | None = None) -> list[tuple]:
    """``[(RunRecord, {metric: (steps, values)})]`` of the finished runs of sweep ``name``, by id."""
    return [(r, store.get_metrics(r.id, metrics)) for r in store.list_runs(group=f"sweep:{name}")
            if r.status != "running"]
