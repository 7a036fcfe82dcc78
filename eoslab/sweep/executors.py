"""Executors: where the batches of a sweep run.  The driver alone writes to the run store.

``InProcessExecutor``  runs the batches one after another in this process.
``RayExecutor``        sends each batch to a Ray worker (one CPU each) of an
                       existing cluster (``address``, e.g. ``"auto"`` or
                       ``"ray://host:10001"``; its nodes need eoslab installed)
                       or of a local cluster it starts with ``num_workers``
                       CPUs, and yields results as batches finish.

Both have ``run(batches)``, an iterator of ``(batch, results)`` in the order
the batches finish, and ``close()``.  A batch that raises inside a worker, or
a worker that dies, gives ``'failed'`` results for its members; it never
stops the sweep.
"""
from __future__ import annotations

import os
import traceback
from typing import Iterable, Iterator

from eoslab.errors import InputError
from eoslab.sweep.batch import Batch, MemberResult, run_batch

# One BLAS / XLA thread per worker: the workers already use the cores.
WORKER_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


def failed_results(batch: Batch, error: str) -> list[MemberResult]:
    return [MemberResult(m.key, m.config, m.seed, "failed", None, error, {}) for m in batch.members]


class InProcessExecutor:
    name = "in-process"

    def run(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, list[MemberResult]]]:
        for b in batches:
            yield b, run_batch(b)

    def close(self) -> None:
        pass


def _run_batch_in_worker(batch: Batch) -> list[MemberResult]:
    for k, v in WORKER_ENV.items():
        os.environ.setdefault(k, v)
    return run_batch(batch)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, num_workers: int | None = None):
        try:
            import ray
        except ImportError:
            raise InputError("the Ray executor needs the ray package; install it with "
                             "`pip install 'eoslab[ray]'` or use --executor local.") from None
        if num_workers is not None and num_workers < 1:
            raise InputError(f"--workers {num_workers} must be at least 1.")
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs = dict(include_dashboard=False, log_to_driver=False,
                          runtime_env={"env_vars": dict(WORKER_ENV)})
            try:
                if address:
                    ray.init(address=address, **kwargs)
                else:
                    ray.init(num_cpus=num_workers or os.cpu_count() or 1, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"the Ray cluster at {address!r}" if address else "a local Ray cluster"
                raise InputError(f"could not start or reach {where} ({e}); check --address "
                                 f"or run without it to start a local one.") from None
            self._started = True
        self.num_workers = int(ray.cluster_resources().get("CPU", 1))

    def run(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, list[MemberResult]]]:
        ray = self._ray
        task = ray.remote(num_cpus=1, max_retries=0)(_run_batch_in_worker)
        pending = {task.remote(b): b for b in batches}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    b = pending.pop(ref)
                    try:
                        results = ray.get(ref)
                    except Exception as e:  # the worker died or the task could not run
                        results = failed_results(b, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=2)}")
                    yield b, results
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def make_executor(name: str, *, address: str | None = None, num_workers: int | None = None):
    """``"local"`` (in-process) or ``"ray"``."""
    if name in ("local", "in-process"):
        if address:
            raise InputError("--address is for the Ray executor; add --executor ray.")
        return InProcessExecutor()
    if name == "ray":
        return RayExecutor(address, num_workers)
    raise InputError(f"unknown executor {name!r}; choose local or ray.")
