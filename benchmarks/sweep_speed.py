"""Sweep throughput: a vmapped phase-diagram sweep against one run at a time, and Ray against in-process.

Setting (a phase-diagram sweep in the style of Kalra & Barkeshli 2023): digits,
fc-relu ``--widths`` (default [64, 64], no bias, ``kalra`` init), ``mse-mean``
(1/2 (f - y)^2 averaged over outputs and examples), SGD (``gd`` with
minibatches of ``--sgd-batch``, default 128), ``optimizer.lr_units =
"1/lambda0"`` so a run's lr is c and its step size eta = c / lambda_0, c =
2^x for ``--num-c`` values of x evenly spaced in [``--x-min``, ``--x-max``],
``--seeds`` seeds each, ``--steps`` steps with ``eval_every = 1``, and the
probes of a phase diagram: sharpness (k = 1, warm-started tracker) on the
first ``--sharpness-subset`` training examples at every step and the loss
barrier (``line_points = 5``) at the end.  float32.

Part 1, vmapped sweep against a Python loop, over the *same* runs:

* ``vmapped sweep``: ``run_sweep`` + ``InProcessExecutor`` with
  ``sweep.batch_size`` = all runs, so the whole grid is one vmapped batch;
* ``batch_size = 1``: the same ``run_sweep`` cutting the grid into 1-member
  batches (one compiled 1-member trainer, re-used by every batch through
  ``eoslab.sweep.batch.trainer_for``'s per-process cache);
* ``train() loop``: what a researcher writes without the sweep engine, a
  Python loop calling ``eoslab.train.train(cfg)`` per run (each call builds,
  and so compiles, its own ``Trainer``; one results directory for the loop).

Each figure is end to end (planning, data, compilation, training, probes,
SQLite writes), each measurement in a fresh temporary results directory.
"first call" compiles its trainer; "second call" repeats the same sweep in a
new directory with the trainer already compiled (the steady state of a
process that runs many sweeps or many batches of one shape).  A 2-step
``train()`` of the same model runs first, untimed, so JAX's process-wide
warm-up (backend start, op-by-op kernels) is charged to nobody.  The results
of the three are compared (status, eta = c / lambda_0, final training loss).

Part 2, Ray against in-process: a sweep over ``--ray-widths`` (one shape per
width: fc-relu [w, w]) x the same c values and seeds, cut into
``--ray-batches`` batches per shape, run by ``run_sweep`` on
``RayExecutor(num_workers=--ray-workers)`` (a local cluster) and on
``InProcessExecutor``.  ``ray.init`` (with the executor's own arguments) is
timed separately, so the Ray figures are given with and without it; the
first Ray sweep also pays for starting the worker processes (importing JAX
and eoslab) and for each worker compiling the trainer of every shape it
receives; the second runs on the warm workers.  The in-process executor
starts from an empty trainer cache.  In-process, XLA may use every allowed
core; Ray workers run one XLA/BLAS thread each (``executors.WORKER_ENV``).

Compilations (JAX's backend-compile events) in this process are counted per
measurement, which shows what each one compiles, and ``Trainer.init_carry``
of an already compiled trainer is timed on its own.

Cores: by default every core this process may use (Ray's workers inherit the
affinity); ``--threads N`` pins the process, and so the Ray cluster, to N.
Other jobs on the machine slow both sides of a comparison alike only when
they run throughout: the load average is printed at the start and the end.

    cd /work/main && .venv/bin/python benchmarks/sweep_speed.py [--quick] [--json PATH] [--no-ray] ...
"""
from __future__ import annotations

import os
import sys

from _common import code_version, limit_cores, threads_from_argv

THREADS = threads_from_argv(sys.argv[1:], default=0)
CORES = limit_cores(THREADS) if THREADS > 0 else sorted(os.sched_getaffinity(0))  # before JAX starts
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax import monitoring  # noqa: E402

from eoslab.store import RunStore  # noqa: E402
from eoslab.sweep import InProcessExecutor, grid_from_dict, plan_batches, run_sweep, sweep_runs  # noqa: E402
from eoslab.sweep import batch as sweep_batch  # noqa: E402
from eoslab.sweep.executors import WORKER_ENV  # noqa: E402
from eoslab.train import config_from_dict  # noqa: E402
from eoslab.train.loop import train  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")  # ray.init starts its processes


@dataclasses.dataclass(frozen=True)
class Config:
    num_c: int = 16  # c = 2^x, x evenly spaced in [x_min, x_max]
    x_min: float = -1.0
    x_max: float = 6.0
    seeds: int = 4
    steps: int = 20
    widths: tuple[int, ...] = (64, 64)
    sgd_batch: int = 128
    sharpness_subset: int = 256
    line_points: int = 5
    train_loop_runs: int = 16  # runs of the train() loop (0: all; otherwise an evenly spaced subset)
    rounds: int = 2  # interleaved rounds of the compiled (second-call) sweeps of part 1, fastest kept
    ray_widths: tuple[int, ...] = (64, 128)
    ray_batches: int = 2  # batches per shape
    ray_workers: int = 2
    ray: bool = True

    @staticmethod
    def quick() -> "Config":
        return Config(num_c=8, seeds=2, train_loop_runs=4, rounds=1)

    @property
    def cs(self) -> list[float]:
        xs = np.linspace(self.x_min, self.x_max, self.num_c) if self.num_c > 1 else np.asarray([self.x_min])
        return [float(f"{2.0 ** x:.12g}") for x in xs]

    @property
    def runs(self) -> int:
        return self.num_c * self.seeds


def base_config(cfg: Config, widths=None) -> dict:
    return {
        "name": "bench-sweep",
        "data": {"name": "digits"},
        "model": {"name": "fc-relu", "widths": list(widths or cfg.widths), "bias": False, "init": "kalra"},
        "loss": {"name": "mse-mean"},
        "optimizer": {"name": "gd", "lr": 1.0, "lr_units": "1/lambda0", "batch_size": cfg.sgd_batch},
        "train": {"steps": cfg.steps, "eval_every": 1},
        "probes": {"sharpness_k": 1, "sharpness_subset": cfg.sharpness_subset, "line_points": cfg.line_points},
    }


def phase_spec(cfg: Config, name: str, batch_size: int):
    return grid_from_dict({"sweep": {"name": name, "seeds": cfg.seeds, "batch_size": batch_size},
                           "base": base_config(cfg), "grid": {"optimizer.lr": cfg.cs}})


def ray_spec(cfg: Config, name: str):
    per_shape = cfg.runs
    return grid_from_dict({"sweep": {"name": name, "seeds": cfg.seeds,
                                     "batch_size": math.ceil(per_shape / cfg.ray_batches)},
                           "base": base_config(cfg, widths=(cfg.ray_widths[0],) * 2),
                           "grid": {"model.width": list(cfg.ray_widths), "optimizer.lr": cfg.cs}})


# ---- measuring -------------------------------------------------------------
_EVENTS: list[tuple[str, float]] = []
monitoring.register_event_duration_secs_listener(lambda name, secs, **kw: _EVENTS.append((name, secs)))


@dataclasses.dataclass
class Timing:
    seconds: float
    runs: int
    compiles: int  # backend compilations in this process
    compile_s: float  # their backend-compile time (tracing and lowering not included)

    @property
    def runs_per_s(self) -> float:
        return self.runs / self.seconds


@contextlib.contextmanager
def timed(runs: int, out: list):
    start = len(_EVENTS)
    t0 = time.perf_counter()
    yield
    dt = time.perf_counter() - t0
    comp = [s for n, s in _EVENTS[start:] if n == "/jax/core/compile/backend_compile_duration"]
    out.append(Timing(dt, runs, len(comp), float(sum(comp))))


@contextlib.contextmanager
def fresh_dir():
    d = tempfile.mkdtemp(prefix="eoslab-sweep-bench-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _key(config: dict, seed) -> tuple:
    return (tuple(config["model"]["widths"]), round(float(config["optimizer"]["lr"]), 9), int(seed))


def _summary(status: str, metrics: dict) -> dict:
    last = lambda name: float(metrics[name][1][-1]) if name in metrics and len(metrics[name][1]) else float("nan")
    first = lambda name: float(metrics[name][1][0]) if name in metrics and len(metrics[name][1]) else float("nan")
    return dict(status=status, eta=first("lr"), train_loss=last("train_loss"))


def sweep_results(results_dir: str, name: str) -> dict:
    with RunStore.in_dir(results_dir) as store:
        return {_key(r.config, r.seed): _summary(r.status, m)
                for r, m in sweep_runs(store, name, metrics=["lr", "train_loss"])}


def run_timed_sweep(spec, results_dir: str, executor, out: list) -> dict:
    with timed(spec.size, out):
        s = run_sweep(spec, results_dir=results_dir, executor=executor, progress=False)
    if s.failed:
        with RunStore.in_dir(results_dir) as store:
            errs = {r.error for r in store.list_runs(status="failed", group=spec.group)}
        raise RuntimeError(f"{s.failed} runs of sweep {spec.name} failed: {sorted(errs)[:2]}")
    return sweep_results(results_dir, spec.name)


def compare(ref: dict, other: dict) -> dict:
    """Status agreement and the largest relative differences of eta and the final training loss."""
    common = sorted(set(ref) & set(other))
    same_status = sum(ref[k]["status"] == other[k]["status"] for k in common)
    rel = lambda a, b: abs(a - b) / max(abs(a), 1e-30)
    ok = [k for k in common if ref[k]["status"] == other[k]["status"] == "completed"]
    return dict(compared=len(common), same_status=same_status,
                max_rel_eta=max((rel(ref[k]["eta"], other[k]["eta"]) for k in common), default=float("nan")),
                max_rel_loss=max((rel(ref[k]["train_loss"], other[k]["train_loss"]) for k in ok),
                                 default=float("nan")),
                completed=len(ok))


def per_step(tr, values, seeds, steps: int, rounds: int, init_timing: list | None = None) -> dict:
    """ms per step of a compiled trainer (chunk of 1 step, then the probes), fastest of ``rounds``; HVPs per probe."""
    with timed(0, init_timing if init_timing is not None else []):
        c = jax.block_until_ready(tr.init_carry(values, seeds))
    c, _ = tr.run_chunk(c, 0, 1)
    _, c = tr.evaluate(c, 1)
    best_chunk, best_eval, hvps = float("inf"), float("inf"), []
    for _ in range(rounds):
        cc, tc, te = c, 0.0, 0.0
        for s in range(1, 1 + steps):
            t0 = time.perf_counter()
            cc, _ = tr.run_chunk(cc, s, 1)
            jax.block_until_ready(cc)
            t1 = time.perf_counter()
            ev, cc = tr.evaluate(cc, s + 1)
            jax.block_until_ready(cc)
            tc, te = tc + t1 - t0, te + time.perf_counter() - t1
            hvps.append(np.asarray(ev["sharpness_hvps"]))
        best_chunk, best_eval = min(best_chunk, tc / steps), min(best_eval, te / steps)
    h = np.stack(hvps)  # (rounds * steps, members)
    return dict(chunk_ms=1e3 * best_chunk, eval_ms=1e3 * best_eval, members=len(values), steps=steps, rounds=rounds,
                hvps_mean=float(h.mean()), hvps_max_mean=float(h.max(axis=1).mean()), carry=cc)


def vmap_overhead(tr, carry, reps: int = 10) -> dict:
    """ms of the probes' pieces on all members (vmapped) and on member 0 alone, fastest of 3 x ``reps``."""
    from eoslab.curvature import hvp
    prob = tr.problem
    one = jax.tree_util.tree_map(lambda a: a[0], carry.params)
    pieces = {"evaluate (losses, accuracies)": prob.evaluate,
              "one HVP of the sharpness loss": lambda p: hvp(prob.sharpness_loss, p, p)}
    out = {}
    for label, f in pieces.items():
        ms = []
        for fn, arg in ((jax.jit(jax.vmap(f)), carry.params), (jax.jit(f), one)):
            jax.block_until_ready(fn(arg))
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                for _ in range(reps):
                    jax.block_until_ready(fn(arg))
                best = min(best, (time.perf_counter() - t0) / reps)
            ms.append(1e3 * best)
        out[label] = dict(vmapped_ms=ms[0], single_ms=ms[1])
    return out


def measure_vmap_vs_loop(cfg: Config) -> dict:
    spec_all = phase_spec(cfg, "bench-vmapped", batch_size=cfg.runs)
    spec_one = phase_spec(cfg, "bench-one-at-a-time", batch_size=1)
    points = spec_all.points()
    # process warm-up, charged to nobody: a 2-step run of the same model (its own Trainer, not cached)
    with fresh_dir() as d:
        warm = config_from_dict({**base_config(cfg), "train": {"steps": 2, "eval_every": 1}})
        train(warm, results_dir=d, progress=False)
    sweep_batch._CACHE.clear()
    t: dict[str, list[Timing]] = {k: [] for k in ("vmapped", "batch1", "vmapped_2", "batch1_2", "train_loop",
                                                  "init_carry")}
    res = {}
    # first calls: each compiles its trainer (an n-member one, a 1-member one)
    with fresh_dir() as d:
        res["vmapped"] = run_timed_sweep(spec_all, d, InProcessExecutor(), t["vmapped"])
    with fresh_dir() as d:
        res["batch1"] = run_timed_sweep(spec_one, d, InProcessExecutor(), t["batch1"])
    # later calls re-use the cached trainers; interleaved rounds, the fastest is kept
    for _ in range(cfg.rounds):
        with fresh_dir() as d:
            run_timed_sweep(spec_all, d, InProcessExecutor(), t["vmapped_2"])
        with fresh_dir() as d:
            run_timed_sweep(spec_one, d, InProcessExecutor(), t["batch1_2"])
    for k in ("vmapped_2", "batch1_2"):
        t[k] = [min(t[k], key=lambda x: x.seconds)]
    # the train() loop: every call builds (and compiles) its own Trainer
    n_loop = cfg.train_loop_runs or len(points)
    idx = np.unique(np.linspace(0, len(points) - 1, min(n_loop, len(points))).round().astype(int))
    loop_points = [points[i] for i in idx]
    res["train_loop"] = {}
    with fresh_dir() as d, timed(len(loop_points), t["train_loop"]):
        for p in loop_points:
            r = train(p.config, results_dir=d, progress=False)
            res["train_loop"][_key(p.config.to_dict(), p.seed)] = _summary(r.status[0], r.metrics[0])
    # where the time goes: init_carry of the compiled n-member trainer, and a step of each trainer
    tr = sweep_batch.trainer_for(points[0].config, cfg.runs)
    lrs, seeds = [p.lr for p in points], [p.seed for p in points]
    steps = max(1, min(5, cfg.steps - 1))
    tr1 = sweep_batch.trainer_for(points[0].config, 1)
    singles = [per_step(tr1, [lrs[i]], [seeds[i]], steps, 2)
               for i in np.unique(np.linspace(0, len(points) - 1, min(3, len(points))).round().astype(int))]
    single = {k: float(np.mean([s[k] for s in singles])) for k in singles[0] if k != "carry"}
    step_vmapped = per_step(tr, lrs, seeds, steps, 2, init_timing=t["init_carry"])
    pieces = vmap_overhead(tr, step_vmapped.pop("carry"))
    return dict(timings=t, loop_runs=len(loop_points), step_vmapped=step_vmapped, pieces=pieces,
                step_single=single, step_single_members=len(singles),
                agreement={"batch_size = 1": compare(res["vmapped"], res["batch1"]),
                           "train() loop": compare(res["vmapped"], res["train_loop"])},
                diverged=sum(v["status"] == "diverged" for v in res["vmapped"].values()))


def measure_ray(cfg: Config) -> dict:
    import ray
    from eoslab.sweep import RayExecutor
    spec = ray_spec(cfg, "bench-executors")
    n_batches = len(plan_batches(spec.points(), spec.batch_size))
    t: dict[str, list[Timing]] = {"in-process": [], "ray": [], "ray_init": []}
    workers: list = []
    res = {}
    sweep_batch._CACHE.clear()  # in-process starts cold, as a fresh Ray worker does
    for _ in range(2):
        with fresh_dir() as d:
            res["in-process"] = run_timed_sweep(spec, d, InProcessExecutor(), t["in-process"])
    if ray.is_initialized():
        ray.shutdown()
    with timed(0, t["ray_init"]):  # the executor's own ray.init arguments
        ray.init(num_cpus=cfg.ray_workers, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": dict(WORKER_ENV)})
    try:
        ex = RayExecutor(num_workers=cfg.ray_workers)  # finds the cluster started above
        for _ in range(2):
            with fresh_dir() as d:
                res["ray"] = run_timed_sweep(spec, d, ex, t["ray"])
            workers.append(worker_caches(ray, cfg.ray_workers))
        ex.close()
    finally:
        ray.shutdown()
    shape_widths = {p.shape[:8]: list(p.config.model.widths) for p in spec.points()}
    return dict(timings=t, runs=spec.size, batches=n_batches, shapes=len(cfg.ray_widths), workers=workers,
                shape_widths=shape_widths,
                agreement=compare(res["in-process"], res["ray"]))


def _cached_trainers(hold_s: float):
    import time as _time
    from eoslab.sweep import batch as _b
    _time.sleep(hold_s)  # hold the worker so the next probe lands on another one
    return os.getpid(), sorted({k[0][:8] for k in _b._CACHE})


def worker_caches(ray, n: int) -> list:
    """(pid, shapes whose trainer the worker built) of each Ray worker: what each one compiled."""
    probe = ray.remote(num_cpus=1)(_cached_trainers)
    found = dict(ray.get([probe.remote(2.0) for _ in range(n)]))
    return sorted(found.items())


# ---- printing ----------------------------------------------------------------
def _row(label: str, tm: Timing, ref: Timing | None = None) -> str:
    ratio = f"{ref.seconds / tm.seconds * tm.runs / ref.runs:>8.2f}" if ref else f"{'':>8}"
    return (f"{label:<44} {tm.runs:>5d} {tm.seconds:>9.2f} {tm.runs_per_s:>8.2f} {ratio} "
            f"{tm.compiles:>8d} {tm.compile_s:>10.2f}")


def _header(ratio_label: str) -> str:
    return (f"{'':<44} {'runs':>5} {'seconds':>9} {'runs/s':>8} {ratio_label:>8} {'compiles':>8} "
            f"{'compile s':>10}")


def print_part1(r: dict, cfg: Config) -> dict:
    t = r["timings"]
    v1, v2, b1, b2, loop = (t[k][0] for k in ("vmapped", "vmapped_2", "batch1", "batch1_2", "train_loop"))
    print(f"\n== 1. vmapped sweep vs one run at a time: {cfg.runs} runs ({cfg.num_c} c x {cfg.seeds} seeds, "
          f"{r['diverged']} diverged), {cfg.steps} steps each; x loop = runs/s over the train() loop's")
    print(_header("x loop"))
    print(_row("vmapped sweep (1 batch), first call", v1, loop))
    print(_row("vmapped sweep (1 batch), second call*", v2, loop))
    print(_row("run_sweep batch_size=1, first call", b1, loop))
    print(_row("run_sweep batch_size=1, second call*", b2, loop))
    sub = "" if r["loop_runs"] == cfg.runs else f" ({r['loop_runs']} of the runs)"
    print(_row(f"train() loop{sub}", loop, loop))
    print("* trainer compiled by the first call"
          + (f"; fastest of {cfg.rounds} interleaved rounds" if cfg.rounds > 1 else ""))
    ic = t["init_carry"][0]
    sv, s1 = r["step_vmapped"], r["step_single"]
    n = sv["members"]
    print(f"Trainer.init_carry of the compiled {n}-member trainer alone: {ic.seconds:.2f} s, {ic.compiles} "
          f"compilations ({ic.compile_s:.2f} s): {ic.seconds / v2.seconds:.0%} of the vmapped second call")
    print(f"one step, compiled (fastest of {sv['rounds']} x {sv['steps']} steps): {n}-member batch: chunk "
          f"{sv['chunk_ms']:.1f} ms + probes {sv['eval_ms']:.1f} ms = "
          f"{(sv['chunk_ms'] + sv['eval_ms']) / n:.2f} ms per member "
          f"(sharpness HVPs: mean {sv['hvps_mean']:.1f}, max over members {sv['hvps_max_mean']:.1f}); "
          f"1-member trainer (mean of {r['step_single_members']} members): chunk {s1['chunk_ms']:.2f} ms + "
          f"probes {s1['eval_ms']:.2f} ms = {s1['chunk_ms'] + s1['eval_ms']:.2f} ms "
          f"({s1['hvps_mean']:.1f} HVPs)")
    print(f"pieces of the probes, all {n} members vmapped vs member 0 alone (jit, fastest of 3 x 10): " + "; ".join(
        f"{k}: {v['vmapped_ms']:.2f} ms = {v['vmapped_ms'] / n:.3f} ms per member vs {v['single_ms']:.3f} ms "
        f"({v['vmapped_ms'] / n / v['single_ms']:.2f}x)" for k, v in r["pieces"].items()))
    ratios = {
        "vmapped / train() loop, end to end (first call)": v1.runs_per_s / loop.runs_per_s,
        "vmapped second call / train() loop": v2.runs_per_s / loop.runs_per_s,
        "batch_size=1 first call / train() loop": b1.runs_per_s / loop.runs_per_s,
        "vmapped / batch_size=1, first calls": v1.runs_per_s / b1.runs_per_s,
        "vmapped / batch_size=1, second calls (compiled)": v2.runs_per_s / b2.runs_per_s,
        "step per member: 1-member / vmapped (compiled)": (s1["chunk_ms"] + s1["eval_ms"])
        / ((sv["chunk_ms"] + sv["eval_ms"]) / n),
    }
    print("ratios (runs/s, > 1: the first is faster):")
    for k, v in ratios.items():
        print(f"  {k:<52} {v:6.2f}x" + ("   (target >= 10x)" if k.startswith("vmapped / train()") else ""))
    for label, a in r["agreement"].items():
        print(f"agreement with the vmapped sweep, {label}: {a['same_status']}/{a['compared']} same status, "
              f"eta = c/lambda_0 within {a['max_rel_eta']:.1e}, final train loss within {a['max_rel_loss']:.1e} "
              f"(relative, {a['completed']} completed runs)")
    return ratios


def print_part2(r: dict, cfg: Config) -> dict:
    t = r["timings"]
    i1, i2 = t["in-process"]
    y1, y2 = t["ray"]
    init = t["ray_init"][0]
    y1_total = Timing(y1.seconds + init.seconds, y1.runs, y1.compiles, y1.compile_s)
    print(f"\n== 2. Ray ({cfg.ray_workers} local workers) vs in-process: {r['runs']} runs, {r['shapes']} shapes "
          f"(fc-relu [w, w], w in {list(cfg.ray_widths)}) in {r['batches']} batches; x in-pr. = runs/s over the "
          f"in-process call's")
    print(_header("x in-pr."))
    print(_row("in-process, first call (compiles)", i1))
    print(_row("in-process, second call", i2))
    print(f"{'ray.init':<44} {'':>5} {init.seconds:>9.2f}")
    print(_row("ray, first call incl. ray.init", y1_total, i1))
    print(_row("ray, first call excl. ray.init", y1, i1))
    print(_row("ray, second call (warm workers)", y2, i2))
    print("(compiles: counted in this process only)")
    for call, found in zip(("first", "second"), r["workers"]):
        print(f"compiled trainers held by each Ray worker after the {call} call: " + "; ".join(
            f"pid {pid}: widths {[r['shape_widths'].get(k, k) for k in shapes]}" for pid, shapes in found))
    ratios = {
        "first calls, incl. ray.init": i1.seconds / y1_total.seconds,
        "first calls, excl. ray.init": i1.seconds / y1.seconds,
        "second calls (compiled in-process, warm Ray workers)": i2.seconds / y2.seconds,
    }
    print("Ray speed-up = in-process wall time / Ray wall time (> 1: Ray faster):")
    for k, v in ratios.items():
        print(f"  {k:<58} {v:6.2f}x")
    a = r["agreement"]
    print(f"agreement: {a['same_status']}/{a['compared']} same status, eta within {a['max_rel_eta']:.1e}, final "
          f"train loss within {a['max_rel_loss']:.1e}")
    return ratios


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(",") if x.strip())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 c values x 2 seeds (about 3 minutes)")
    ap.add_argument("--num-c", type=int)
    ap.add_argument("--x-min", type=float)
    ap.add_argument("--x-max", type=float)
    ap.add_argument("--seeds", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--widths", type=_ints, help="hidden widths of part 1, e.g. 64,64")
    ap.add_argument("--sgd-batch", type=int)
    ap.add_argument("--sharpness-subset", type=int)
    ap.add_argument("--train-loop-runs", type=int, help="runs of the train() loop (default all)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds of part 1's compiled sweeps (default 2)")
    ap.add_argument("--ray-widths", type=_ints, help="one shape per width in part 2, e.g. 64,128")
    ap.add_argument("--ray-batches", type=int, help="batches per shape in part 2")
    ap.add_argument("--ray-workers", type=int)
    ap.add_argument("--no-ray", action="store_true", help="skip part 2")
    ap.add_argument("--threads", type=int, default=0, help="pin to this many cores (default: all allowed)")
    ap.add_argument("--json", type=str)
    args = ap.parse_args(argv)
    cfg = Config.quick() if args.quick else Config()
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
            if getattr(args, f.name, None) is not None}
    cfg = dataclasses.replace(cfg, **over, ray=not args.no_ray)
    print(f"eoslab {code_version()} | jax {jax.__version__} | {platform.processor() or platform.machine()} "
          f"| {len(CORES)} core(s) | load average {os.getloadavg()[0]:.1f}")
    print(f"digits, fc-relu {list(cfg.widths)} (no bias, kalra init), mse-mean, gd with minibatches of "
          f"{cfg.sgd_batch}, lr_units 1/lambda0, c = 2^x for {cfg.num_c} x in [{cfg.x_min:g}, {cfg.x_max:g}] "
          f"(c = {', '.join(f'{c:.3g}' for c in cfg.cs)}), {cfg.seeds} seeds, {cfg.steps} steps, eval_every 1, "
          f"sharpness k=1 on {cfg.sharpness_subset} examples every step, line_points {cfg.line_points}; float32")
    t0 = time.perf_counter()
    out = {"config": dataclasses.asdict(cfg), "threads": len(CORES), "version": code_version()}
    r1 = measure_vmap_vs_loop(cfg)
    out["part1"] = {"ratios": print_part1(r1, cfg), "timings": {k: [dataclasses.asdict(x) for x in v]
                                                                for k, v in r1["timings"].items()},
                    "agreement": r1["agreement"], "step_vmapped": r1["step_vmapped"],
                    "step_single": r1["step_single"], "probe_pieces": r1["pieces"]}
    if cfg.ray:
        r2 = measure_ray(cfg)
        out["part2"] = {"ratios": print_part2(r2, cfg), "timings": {k: [dataclasses.asdict(x) for x in v]
                                                                    for k, v in r2["timings"].items()},
                        "agreement": r2["agreement"], "batches": r2["batches"], "workers": r2["workers"]}
    print(f"\nTotal {time.perf_counter() - t0:.0f} s; load average at the end {os.getloadavg()[0]:.1f} "
          f"(other jobs on the machine slow every figure).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
