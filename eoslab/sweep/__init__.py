"""Sweeps: grids of configs and seeds, run as vmapped batches in-process or on Ray, stored in SQLite.

    spec = load_grid("configs/sweeps/phases-digits.toml")
    summary = run_sweep(spec, results_dir="results/phases", executor=make_executor("ray", num_workers=2))

See :mod:`eoslab.sweep.grid` (the TOML format), :mod:`eoslab.sweep.batch`
(one vmapped batch), :mod:`eoslab.sweep.executors` (in-process, Ray) and
:mod:`eoslab.sweep.driver` (resumable, exactly-once storage).
"""
from eoslab.sweep.batch import Batch, Member, MemberResult, run_batch
from eoslab.sweep.driver import SweepSummary, plan_batches, run_sweep, sweep_runs
from eoslab.sweep.executors import InProcessExecutor, RayExecutor, make_executor
from eoslab.sweep.grid import GridSpec, Point, grid_from_dict, load_grid, shape_key

__all__ = [
    "Batch", "GridSpec", "InProcessExecutor", "Member", "MemberResult", "Point", "RayExecutor", "SweepSummary",
    "grid_from_dict", "load_grid", "make_executor", "plan_batches", "run_batch", "run_sweep", "shape_key",
    "sweep_runs",
]
