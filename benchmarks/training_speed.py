"""Training speed: full-batch GD with no sharpness, sharpness every 100 steps, and every step (tracker).

Measured side by side in one run, with eoslab's ``Trainer`` (the compiled
chunks and probes ``eoslab run`` uses), on fc-tanh [200, 200] (55,210
parameters), digits (1,500 training examples, full batch), MSE (1/2 sum over
outputs, mean over examples), GD with eta = 0.1, the setting of Cohen et al.'s
edge-of-stability demo (2/eta = 20; the sharpness reaches it near step 1300):

(a) plain GD, no curvature probes (``probes.sharpness_k = 0``);
(b) GD + the sharpness every 100 steps (warm-started tracker at each evaluation);
(c) GD + the sharpness at every step: the warm-started ``SharpnessTracker``
    inside the compiled scan (``probes.every_step = true``).

Each mode runs the loop of ``eoslab.train.loop.run_loop`` without the run store:
an evaluation at step 0, then chunks of 100 GD steps (one compiled
``lax.scan``), each followed by an evaluation (train/test loss and accuracy,
and the sharpness where probed), the outputs copied to the host after every
chunk.  Wall time includes ``init_carry`` (its cold sharpness solve) and every
evaluation; compilation is excluded (each trainer first runs one chunk; that
warm-up time is reported separately).  The modes run interleaved, ``rounds``
times, and the fastest round of each is kept (other jobs share the cores).

Accuracy: at every 100th step the tracked sharpness of (c) -- the update of
the evaluation at step t (warm-started from step t-1) and the value recorded
for step t in the next chunk -- and that of (b) are compared with a cold
``top_eigenpairs(tol=1e-6)`` solve at the very same parameters (each mode's
own iterate, taken from its carry; full-batch GD is deterministic, and the
script also reports how far the trajectories of (a) and (c) drift apart).

Also: every-step tracker settings (tol, max_hvps) other than the defaults, run
over the last steps from the same state; an ensemble of 3 step sizes vmapped
in one Trainer against 3 separate runs; and micro-timings of one gradient, one
linearisation, one Hessian-vector product (HVP) and one fused gradient+HVP,
which explain the cost of (c).

Cores: the process is pinned to ``--threads`` cores (default 1) with
``sched_setaffinity`` before JAX starts (JAX has no thread-count setting; XLA
sizes its pool from the cores it may use), and BLAS runs one thread
(``OPENBLAS_NUM_THREADS=1``, as the eoslab CLI sets it), so the numbers are
per core and hold up better when other jobs share the machine.

    cd /work/main && .venv/bin/python benchmarks/training_speed.py [--quick] [--json PATH] [--threads N]
"""
from __future__ import annotations

import os
import sys

from _common import benchmark_parser, code_version, hvp_chain, limit_cores, threads_from_argv, write_json




THREADS = threads_from_argv(sys.argv[1:])
CORES = limit_cores(THREADS)  # before JAX, PyTorch and BLAS start their threads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the eoslab CLI: small LAPACK calls in the eigensolver

import dataclasses  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jax.flatten_util import ravel_pytree  # noqa: E402

from eoslab.curvature import top_eigenpairs, value_grad_hvp  # noqa: E402
from eoslab.train import Trainer, config_from_dict  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Config:
    widths: tuple[int, ...] = (200, 200)
    eta: float = 0.1
    steps: int = 1500  # sharpness reaches 2/eta = 20 near step 1300
    eval_every: int = 100
    seed: int = 0
    k: int = 1
    tol: float = 1e-3  # eoslab's probes.tol default
    max_hvps: int = 20  # eoslab's probes.max_hvps default
    rounds: int = 2  # interleaved timed rounds of (a), (b), (c); the fastest of each is kept
    cold_tol: float = 1e-6
    cold_max_hvps: int = 150
    variants: tuple[tuple[float, int], ...] = ((1e-4, 20), (1e-3, 10), (1e-2, 20))  # (tol, max_hvps) of (c)
    variant_from: int = 1000  # the variants run from (c)'s state at this step to the end
    ensemble_etas: tuple[float, ...] = (0.1, 0.2, 0.3)  # as configs/eos.toml
    ensemble_steps: int = 500
    micro_repeats: int = 40
    ratio_target: float = 2.5  # every-step tracking at <= 2.5x the wall time of plain GD
    accuracy_target: float = 0.01  # within 1% of a cold solve

    @staticmethod
    def quick() -> "Config":
        return Config(steps=500, rounds=1, variant_from=300, ensemble_steps=200, micro_repeats=15,
                      variants=((1e-4, 20), (1e-3, 10)))


def run_config(cfg: Config, *, lrs: tuple[float, ...], k: int, every_step: bool = False,
               tol: float | None = None, max_hvps: int | None = None, steps: int | None = None):
    return config_from_dict({
        "name": "bench-training-speed", "seed": cfg.seed,
        "data": {"name": "digits"},
        "model": {"name": "fc-tanh", "widths": list(cfg.widths)},
        "loss": {"name": "mse"},
        "optimizer": {"name": "gd", "lr": list(lrs)},
        "train": {"steps": steps or cfg.steps, "eval_every": cfg.eval_every},
        "probes": {"sharpness_k": k, "every_step": every_step, "tol": cfg.tol if tol is None else tol,
                   "max_hvps": cfg.max_hvps if max_hvps is None else max_hvps},
    })



# ----------------------------------------------------------------------------- the training loop


@dataclasses.dataclass
class LoopOutput:
    """What one pass of the loop produced (host copies), and its wall time."""
    seconds: float
    start: int
    steps: int
    chunk_seconds: list[float]  # per chunk: run_chunk + evaluate + host copies
    eval_steps: list[int]
    params: dict[int, Any]  # eval step -> stacked params (member axis first), host copy
    carries: dict[int, Any]  # eval step -> carry (device), only at the steps asked for
    evals: list[dict]  # per eval step: host outputs of trainer.evaluate
    chunks: list[dict]  # per chunk: host outputs of trainer.run_chunk

    def step_series(self, key: str) -> np.ndarray:
        """(members, steps, ...) of a per-step output of the chunks."""
        return np.concatenate([c[key] for c in self.chunks], axis=1)

    def eval_series(self, key: str) -> np.ndarray:
        """(evals, members, ...) of an evaluation output."""
        return np.stack([e[key] for e in self.evals])


def run_loop(trainer: Trainer, steps: int, *, carry=None, start: int = 0, keep_carries=()) -> LoopOutput:
    """eoslab.train.loop.run_loop without the store: evaluate at ``start``, then chunks + evaluations.

    Without ``carry`` the timed region begins with ``init_carry()`` (including
    its cold sharpness solve), as a run does.
    """
    every = trainer.cfg.train.eval_every
    params, carries, evals, chunks, chunk_seconds, eval_steps = {}, {}, [], [], [], []
    t0 = time.perf_counter()

    def evaluate(carry, t):
        """The evaluation at step t, as a run records it; keeps the parameters (and the carry if asked)."""
        ev, carry = trainer.evaluate(carry)
        evals.append(jax.device_get(ev))
        params[t] = jax.device_get(carry.params)
        eval_steps.append(t)
        if t in keep_carries:
            carries[t] = carry
        return carry

    if carry is None:
        carry = trainer.init_carry()
    carry = evaluate(carry, start)
    t = start
    while t < steps and bool(jnp.any(carry.active)):
        c0 = time.perf_counter()
        length = min(every - t % every, steps - t)
        carry, outs = trainer.run_chunk(carry, t, length)
        chunks.append(jax.device_get(outs))
        t += length
        carry = evaluate(carry, t)
        chunk_seconds.append(time.perf_counter() - c0)
    seconds = time.perf_counter() - t0
    return LoopOutput(seconds, start, t - start, chunk_seconds, eval_steps, params, carries, evals, chunks)


def init_hvps(trainer: Trainer) -> int:
    """HVPs of the cold solve in ``init_carry`` (the trainer does not record them; same call, same key)."""
    prob, cfg = trainer.problem, trainer.cfg
    tracker = trainer.probe("sharpness").step_tracker
    res, _ = tracker.init(prob.sharpness_loss, prob.model.init(jax.random.PRNGKey(cfg.seed)),
                          key=jax.random.PRNGKey(cfg.seed + 1))
    return int(res.num_hvps)


def member(tree, i: int = 0):
    return jax.tree_util.tree_map(lambda a: a[i], tree)


def flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(a, np.float64)) for a in jax.tree_util.tree_leaves(tree)])


# ----------------------------------------------------------------------------- measurements


@dataclasses.dataclass
class Mode:
    key: str
    label: str
    trainer: Trainer
    warmup_seconds: float = math.nan
    times: list[float] = dataclasses.field(default_factory=list)
    out: LoopOutput | None = None


def build_modes(cfg: Config) -> list[Mode]:
    eta = (cfg.eta,)
    return [
        Mode("a", "(a) plain GD, no probes", Trainer(run_config(cfg, lrs=eta, k=0))),
        Mode("b", f"(b) GD + sharpness every {cfg.eval_every} steps", Trainer(run_config(cfg, lrs=eta, k=cfg.k))),
        Mode("c", "(c) GD + sharpness every step (tracker)",
             Trainer(run_config(cfg, lrs=eta, k=cfg.k, every_step=True))),
    ]


def warm_up(trainer: Trainer) -> float:
    """Compile init, chunk and evaluation by running one chunk; returns its wall time."""
    t0 = time.perf_counter()
    run_loop(trainer, trainer.cfg.train.eval_every)
    return time.perf_counter() - t0


def time_modes(cfg: Config, modes: list[Mode], log) -> None:
    for m in modes:
        m.warmup_seconds = warm_up(m.trainer)
        log(f"warm-up {m.key}: {m.warmup_seconds:.1f} s")
    for r in range(cfg.rounds):
        for m in modes:
            out = run_loop(m.trainer, cfg.steps, keep_carries=(cfg.variant_from,))
            m.times.append(out.seconds)
            if m.out is None or out.seconds <= min(m.times):
                m.out = out
            log(f"round {r + 1} {m.key}: {out.seconds:.2f} s")


def mode_hvps(m: Mode, cfg: Config) -> dict:
    """Sharpness HVPs of a timed run of (b) or (c): init cold solve + evaluations + per-step updates."""
    out = m.out
    ev = out.eval_series("sharpness_hvps")[:, 0].astype(int)
    init = init_hvps(m.trainer)
    res = dict(init=init, evals=int(ev.sum()), eval_median=float(np.median(ev)), eval_max=int(ev.max()),
               evals_at_budget=int(np.sum(ev >= cfg.max_hvps)), n_evals=len(ev), updates=1 + len(ev))
    total = init + int(ev.sum())
    if m.trainer.cfg.probes.every_step:
        st = out.step_series("sharpness_hvps")[0].astype(int)
        res.update(step_mean=float(st.mean()), step_median=float(np.median(st)), step_max=int(st.max()),
                   steps_at_budget=int(np.sum(st >= cfg.max_hvps)), updates=1 + len(ev) + len(st))
        total += int(st.sum())
    res["total"] = total
    res["per_step"] = total / out.steps
    res["linearisations_per_step"] = res["updates"] / out.steps
    return res


def cold_values(trainer: Trainer, params_by_step: dict[int, Any], cfg: Config) -> dict[int, dict]:
    """Cold top_eigenpairs (random start, tol=cfg.cold_tol) at member 0's params at each step."""
    loss = trainer.problem.sharpness_loss
    out = {}
    for t, stacked in params_by_step.items():
        res = top_eigenpairs(loss, member(stacked), cfg.k, tol=cfg.cold_tol, max_hvps=cfg.cold_max_hvps,
                             key=jax.random.PRNGKey(10_000 + t))
        lam = float(res.eigenvalues[0])
        out[t] = dict(value=lam, rel_residual=float(res.residuals[0]) / abs(lam), hvps=int(res.num_hvps),
                      converged=bool(res.converged))
    return out


def accuracy(modes: dict[str, Mode], cfg: Config, log) -> dict:
    b, c = modes["b"].out, modes["c"].out
    cold_b = cold_values(modes["b"].trainer, b.params, cfg)
    log("cold solves at (b)'s iterates done")
    cold_c = cold_values(modes["c"].trainer, c.params, cfg)
    log("cold solves at (c)'s iterates done")
    b_eval = b.eval_series("sharpness")[:, 0]
    b_res = b.eval_series("sharpness_residual")[:, 0]
    b_hv = b.eval_series("sharpness_hvps")[:, 0]
    c_eval = c.eval_series("sharpness")[:, 0]
    c_hv = c.eval_series("sharpness_hvps")[:, 0]
    c_step = c.step_series("sharpness")[0, :]  # value recorded for step s (at theta_s), s = 0..steps-1
    c_step_hv = c.step_series("sharpness_hvps")[0]
    a_params = modes["a"].out.params
    points = []
    for i, t in enumerate(c.eval_steps):
        lam = cold_c[t]["value"]
        p = dict(t=t, cold=lam, cold_rel_residual=cold_c[t]["rel_residual"], cold_hvps=cold_c[t]["hvps"],
                 cold_converged=cold_c[t]["converged"],
                 c_eval=float(c_eval[i]), c_eval_rel=abs(float(c_eval[i]) - lam) / abs(lam), c_eval_hvps=int(c_hv[i]),
                 c_step=None, c_step_rel=None, c_step_hvps=None)
        if t < len(c_step):
            p.update(c_step=float(c_step[t]), c_step_rel=abs(float(c_step[t]) - lam) / abs(lam),
                     c_step_hvps=int(c_step_hv[t]))
        if t in cold_b:
            j = b.eval_steps.index(t)
            lb = cold_b[t]["value"]
            p.update(cold_b=lb, b=float(b_eval[j]), b_rel=abs(float(b_eval[j]) - lb) / abs(lb), b_hvps=int(b_hv[j]),
                     b_rel_residual=float(b_res[j]) / abs(float(b_eval[j])))
        if t in a_params:
            pa, pc = flat(a_params[t]), flat(c.params[t])
            p["drift_a_c"] = float(np.linalg.norm(pa - pc) / np.linalg.norm(pa))
        points.append(p)
    c_rel = [p["c_eval_rel"] for p in points] + [p["c_step_rel"] for p in points if p["c_step_rel"] is not None]
    b_rel = [p["b_rel"] for p in points if "b_rel" in p]
    # every-step series: how much the tracked value moves between consecutive steps (near EoS it oscillates)
    return dict(points=points, c_max=max(c_rel), c_median=statistics.median(c_rel), b_max=max(b_rel),
                b_median=statistics.median(b_rel), n_points=len(points),
                c_not_converged_steps=int(np.sum(c.step_series("sharpness_converged")[0] == 0)),
                cold_max_rel_residual=max(v["rel_residual"] for v in cold_c.values()))


def variants(cfg: Config, modes: dict[str, Mode], acc: dict, log) -> list[dict]:
    """Every-step tracking with other (tol, max_hvps), from (c)'s state at ``variant_from`` to the end.

    Times are those of the chunks and evaluations after ``variant_from`` (the
    default's are read off (c)'s timed run); accuracy is checked as for (c), at
    the evaluation steps after ``variant_from``.
    """
    c = modes["c"]
    start = cfg.variant_from
    if start not in c.out.carries:
        return []
    i0 = c.out.eval_steps.index(start)
    hv = c.out.step_series("sharpness_hvps")[0, start:]
    rels = [r for p in acc["points"] if p["t"] > start
            for r in (p["c_eval_rel"], p["c_step_rel"]) if r is not None]
    rows = [dict(tol=cfg.tol, max_hvps=cfg.max_hvps, default=True, seconds=sum(c.out.chunk_seconds[i0:]),
                 hvps_mean=float(hv.mean()), hvps_max=int(hv.max()), at_budget=int(np.sum(hv >= cfg.max_hvps)),
                 rel_max=max(rels), rel_median=statistics.median(rels))]
    for tol, max_hvps in cfg.variants:
        trainer = Trainer(run_config(cfg, lrs=(cfg.eta,), k=cfg.k, every_step=True, tol=tol, max_hvps=max_hvps))
        run_loop(trainer, start + cfg.eval_every, carry=c.out.carries[start], start=start)  # compile
        out = run_loop(trainer, cfg.steps, carry=c.out.carries[start], start=start)
        hv = out.step_series("sharpness_hvps")[0]
        cold = cold_values(trainer, {t: out.params[t] for t in out.eval_steps if t > start}, cfg)
        evs = out.eval_series("sharpness")[:, 0]
        steps_v = out.step_series("sharpness")[0, :]  # index s - start
        rels = []
        for i, t in enumerate(out.eval_steps):
            if t in cold:
                lam = cold[t]["value"]
                rels.append(abs(float(evs[i]) - lam) / abs(lam))
                if t - start < len(steps_v):
                    rels.append(abs(float(steps_v[t - start]) - lam) / abs(lam))
        rows.append(dict(tol=tol, max_hvps=max_hvps, default=False, seconds=sum(out.chunk_seconds),
                         hvps_mean=float(hv.mean()), hvps_max=int(hv.max()), at_budget=int(np.sum(hv >= max_hvps)),
                         rel_max=max(rels), rel_median=statistics.median(rels)))
        log(f"variant tol={tol:g} max_hvps={max_hvps}: {rows[-1]['seconds']:.1f} s")
    return rows


def ensemble(cfg: Config, log) -> dict:
    """Sharpness every 100 steps for 3 step sizes: one vmapped Trainer against 3 separate Trainers.

    Setup = building the Trainer (data, model) + compiling + the warm-up chunk.
    """
    etas, steps = cfg.ensemble_etas, cfg.ensemble_steps

    def setup(lrs):
        t0 = time.perf_counter()
        tr = Trainer(run_config(cfg, lrs=lrs, k=cfg.k, steps=steps))
        warm_up(tr)
        return tr, time.perf_counter() - t0

    joint, joint_setup = setup(etas)
    out = run_loop(joint, steps)
    log(f"ensemble vmapped: {out.seconds:.1f} s")
    hv = out.eval_series("sharpness_hvps")  # (evals, members)
    sep_seconds, sep_setup, sep_hv = [], [], []
    for eta in etas:
        tr, s = setup((eta,))
        o = run_loop(tr, steps)
        sep_seconds.append(o.seconds)
        sep_setup.append(s)
        sep_hv.append(o.eval_series("sharpness_hvps")[:, 0])
        log(f"ensemble separate eta={eta}: {o.seconds:.1f} s")
    return dict(etas=list(etas), steps=steps, vmapped_seconds=out.seconds, separate_seconds=sep_seconds,
                separate_total=sum(sep_seconds), ratio=out.seconds / sum(sep_seconds),
                vmapped_setup_seconds=joint_setup, separate_setup_seconds=sum(sep_setup),
                hvps_per_member=[int(x) for x in hv.sum(axis=0)],
                hvps_max_over_members_per_eval=int(hv.max(axis=1).sum()),
                separate_hvps=[int(x.sum()) for x in sep_hv],
                evals_at_budget=[int(x) for x in np.sum(hv >= cfg.max_hvps, axis=0)])


def micro_timings(cfg: Config, modes: dict[str, Mode], n_steps: int = 10) -> dict:
    """Median wall ms of one gradient, linearisation, HVP and fused gradient+HVP, and of one step of the
    compiled chunks of (a) and (c), all jitted and interleaved (so they share the machine's load), at
    step ``variant_from`` of the timed runs."""
    t0 = cfg.variant_from
    prob = modes["c"].trainer.problem
    params = jax.tree_util.tree_map(jnp.asarray, member(modes["c"].out.params[t0]))
    loss = prob.sharpness_loss
    flat0, unravel = ravel_pytree(params)
    v = jax.random.normal(jax.random.PRNGKey(0), flat0.shape, flat0.dtype)

    fns = {
        "gradient": (jax.jit(jax.value_and_grad(prob.train_loss)), (params,), 1),
        "linearisation": (jax.jit(lambda p: jax.linearize(jax.grad(loss), p)[0]), (params,), 1),
        "lin_1hvp": (jax.jit(lambda p, v: hvp_chain(loss, p, v, 1)), (params, v), 1),
        "lin_11hvp": (jax.jit(lambda p, v: hvp_chain(loss, p, v, 11)), (params, v), 1),
        "fused_grad_hvp": (jax.jit(lambda p, w: value_grad_hvp(loss, p, w)), (params, unravel(v)), 1),
    }
    for key in ("a", "c"):
        carry = modes[key].out.carries[t0]
        fns[f"chunk_step_{key}"] = (lambda carry=carry, tr=modes[key].trainer: tr.run_chunk(carry, t0, n_steps),
                                    (), n_steps)
    times = {name: [] for name in fns}
    for f, args, _ in fns.values():
        jax.block_until_ready(f(*args))
    for _ in range(cfg.micro_repeats):
        for name, (f, args, n) in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[name].append((time.perf_counter() - start) / n)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    med["hvp"] = (med.pop("lin_11hvp") - med.pop("lin_1hvp")) / 10  # one more HVP on a stored linearisation
    out = {f"{k}_ms": 1e3 * s for k, s in med.items()}
    out.update({f"{k}_over_gradient": s / med["gradient"] for k, s in med.items()})
    out["chunk_step_c_hvps"] = float(np.mean(jax.device_get(fns["chunk_step_c"][0]()[1]["sharpness_hvps"])))
    out["at_step"] = t0
    return out


# ----------------------------------------------------------------------------- report


def _fmt(x, spec=".1e"):
    return "-" if x is None else format(x, spec)


def print_report(cfg: Config, modes: dict[str, Mode], hv: dict, acc: dict, var: list[dict], ens: dict,
                 micro: dict, targets: dict, dim: int, n_train: int) -> None:
    a_sec = modes["a"].out.seconds
    print("=" * 100)
    print("eoslab training speed: full-batch GD without sharpness, every 100 steps, and every step")
    print("=" * 100)
    print(f"model      fc-tanh, widths {list(cfg.widths)}, {dim} parameters, PyTorch-default init, seed {cfg.seed}")
    print(f"data/loss  digits, {n_train} training examples, full batch; mse (1/2 sum over outputs, mean over examples)")
    print(f"training   GD eta={cfg.eta} (2/eta={2 / cfg.eta:g}), {cfg.steps} steps, evaluation (train/test loss and "
          f"accuracy, and the sharpness in (b)) every {cfg.eval_every} steps, float32")
    print(f"sharpness  top-{cfg.k} Hessian eigenvalue of the full training loss, warm-started Lanczos tracker, "
          f"tol={cfg.tol:g} (relative residual), max_hvps={cfg.max_hvps} (eoslab's defaults)")
    print(f"timing     loop of eoslab.train.loop.run_loop minus the run store; compile excluded (warm-up chunk "
          f"first); fastest of {cfg.rounds} interleaved round(s); init_carry's cold solve included")
    print(f"machine    {platform.machine()}, {jax.devices()[0].platform}, {os.cpu_count()} cores shared with other "
          f"jobs; process pinned to core(s) {CORES} (--threads {THREADS}), OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}; "
          f"jax {jax.__version__}")
    print(f"eoslab     {code_version()}")
    print()
    head = (f"{'mode':<44} {'steps/s':>8} {'ms/step':>8} {'wall s':>7} {'vs (a)':>7} {'rounds (s)':>14} "
            f"{'warm-up s':>9} {'sharpness HVPs':>15}")
    print(head)
    print("-" * len(head))
    for m in modes.values():
        sec = m.out.seconds
        h = hv.get(m.key)
        hvs = f"{h['total']} ({h['per_step']:.2f}/step)" if h else "-"
        print(f"{m.label:<44} {m.out.steps / sec:>8.1f} {1e3 * sec / m.out.steps:>8.2f} {sec:>7.2f} "
              f"{sec / a_sec:>6.2f}x {' '.join(f'{t:.1f}' for t in m.times):>14} {m.warmup_seconds:>9.1f} {hvs:>15}")
    hb, hc = hv["b"], hv["c"]
    print(f"(b): init cold solve {hb['init']} HVPs, {hb['n_evals']} evaluations: median {hb['eval_median']:g}, "
          f"max {hb['eval_max']} HVPs, {hb['evals_at_budget']} at the max_hvps={cfg.max_hvps} budget")
    print(f"(c): init cold solve {hc['init']} HVPs; per-step updates: mean {hc['step_mean']:.2f}, median "
          f"{hc['step_median']:g}, max {hc['step_max']} HVPs, {hc['steps_at_budget']}/{modes['c'].out.steps} at the "
          f"budget; plus {hc['n_evals']} evaluation updates ({hc['evals']} HVPs); "
          f"{hc['linearisations_per_step']:.2f} linearisations of the gradient per step")
    m = micro
    pred = m["linearisation_ms"] + m["chunk_step_c_hvps"] * m["hvp_ms"]
    print(f"Why (c) costs what it does (micro-timings below, taken together at step {m['at_step']}): one step of "
          f"(c) = {m['chunk_step_c_ms']:.2f} ms = {m['chunk_step_c_over_gradient']:.1f} gradients, and a "
          f"linearisation of the gradient ({m['linearisation_ms']:.2f}; the step reuses its loss and gradient) + "
          f"{m['chunk_step_c_hvps']:.1f} HVPs ({m['hvp_ms']:.2f} each) = {pred:.2f} ms; one step of (a) = "
          f"{m['chunk_step_a_ms']:.2f} ms.")
    print()
    print(f"Accuracy: tracked sharpness vs a cold top_eigenpairs(tol={cfg.cold_tol:g}, max_hvps={cfg.cold_max_hvps}) "
          f"at the same parameters (each mode's own iterate)")
    head = (f"{'t':>5} {'cold lam1':>9} {'res':>7} | {'(c) eval':>9} {'rel':>7} {'hv':>3} | {'(c) step t':>10} "
            f"{'rel':>7} {'hv':>3} | {'(b) eval':>9} {'rel':>7} {'hv':>3} {'res':>7} | {'|a-c|/|a|':>9}")
    print(head)
    print("-" * len(head))
    for p in acc["points"]:
        print(f"{p['t']:>5} {p['cold']:>9.4f} {p['cold_rel_residual']:>7.1e} | {p['c_eval']:>9.4f} "
              f"{p['c_eval_rel']:>7.1e} {p['c_eval_hvps']:>3} | {_fmt(p['c_step'], '.4f'):>10} "
              f"{_fmt(p['c_step_rel']):>7} {_fmt(p['c_step_hvps'], 'd'):>3} | {_fmt(p.get('b'), '.4f'):>9} "
              f"{_fmt(p.get('b_rel')):>7} {_fmt(p.get('b_hvps'), 'd'):>3} {_fmt(p.get('b_rel_residual')):>7} | "
              f"{_fmt(p.get('drift_a_c')):>9}")
    print(f"'(c) eval' is the update at step t warm-started from step t-1 (an evaluation); '(c) step t' the value the "
          f"next chunk records for step t (stored in the run); res = residual / lambda (bounds the relative error).")
    print(f"(c): max relative difference {acc['c_max']:.1e}, median {acc['c_median']:.1e} over {acc['n_points']} "
          f"points x 2; steps whose update ended above tol: {acc['c_not_converged_steps']}/{modes['c'].out.steps}")
    print(f"(b): max relative difference {acc['b_max']:.1e}, median {acc['b_median']:.1e}; cold solves' max "
          f"relative residual {acc['cold_max_rel_residual']:.1e}")
    if var:
        print()
        print(f"Every-step tracker settings, steps {cfg.variant_from}..{cfg.steps} from (c)'s state at step "
              f"{cfg.variant_from} (same trajectory; accuracy at the evaluation steps, as above):")
        head = (f"{'tol':>7} {'max_hvps':>8} {'wall s':>7} {'steps/s':>8} {'HVPs/step':>9} {'max':>4} "
                f"{'at budget':>9} {'rel.err max (median)':>21}")
        print(head)
        print("-" * len(head))
        n = cfg.steps - cfg.variant_from
        for r in var:
            err = f"{r['rel_max']:.1e} ({r['rel_median']:.1e})"
            print(f"{r['tol']:>7g} {r['max_hvps']:>8} {r['seconds']:>7.2f} {n / r['seconds']:>8.1f} "
                  f"{r['hvps_mean']:>9.2f} {r['hvps_max']:>4} {r['at_budget']:>9} {err:>21}"
                  + ("  (default, from (c)'s timed run)" if r["default"] else ""))
    print()
    print(f"Ensemble: {len(ens['etas'])} step sizes {ens['etas']}, sharpness every {cfg.eval_every} steps, "
          f"{ens['steps']} steps")
    joint_all = ens["vmapped_seconds"] + ens["vmapped_setup_seconds"]
    separate_all = ens["separate_total"] + ens["separate_setup_seconds"]
    print(f"  one Trainer, vmapped:  {ens['vmapped_seconds']:.2f} s (setup incl. compile "
          f"{ens['vmapped_setup_seconds']:.1f} s); HVPs per member {ens['hvps_per_member']}")
    print(f"  3 separate Trainers:   {ens['separate_total']:.2f} s = "
          f"{' + '.join(f'{s:.2f}' for s in ens['separate_seconds'])} (setup incl. compile "
          f"{ens['separate_setup_seconds']:.1f} s); HVPs {ens['separate_hvps']}")
    print(f"  ratio vmapped / separate: {ens['ratio']:.2f}x (steady state), {joint_all / separate_all:.2f}x "
          f"including setup; evaluations at the max_hvps budget per member {ens['evals_at_budget']}; a vmapped "
          f"Lanczos runs until every member stops, i.e. {ens['hvps_max_over_members_per_eval']} HVP rounds for all")
    print()
    print(f"One product or step, jitted, median of {cfg.micro_repeats} interleaved repeats at step {micro['at_step']}, "
          f"ratio to one gradient:")
    labels = [("gradient", "value and gradient of the training loss (one GD step's work)"),
              ("linearisation", "linearisation of the gradient (jax.linearize), once per tracker update"),
              ("hvp", "one more HVP on the linearised gradient (flat_operator matvec)"),
              ("fused_grad_hvp", "value, gradient and one HVP fused (eoslab.curvature.value_grad_hvp)"),
              ("chunk_step_a", "one step of (a)'s compiled chunk (10-step chunks)"),
              ("chunk_step_c", f"one step of (c)'s compiled chunk ({micro['chunk_step_c_hvps']:.1f} HVPs/step here)")]
    for key, label in labels:
        print(f"  {label:<82} {micro[key + '_ms']:7.2f} ms {micro[key + '_over_gradient']:5.2f}x")
    print()
    print("Targets:")
    for t in targets.values():
        print(f"  [{'met' if t['met'] else 'NOT met'}] {t['what']}: {t['value']}")


def evaluate_targets(cfg: Config, modes: dict[str, Mode], acc: dict, micro: dict, hv: dict) -> dict:
    ratio = modes["c"].out.seconds / modes["a"].out.seconds
    floor = (micro["linearisation_ms"] + micro["hvp_ms"]) / micro["gradient_ms"]
    return {
        "every_step_speed": dict(
            what=f"every-step tracking at <= {cfg.ratio_target:g}x the wall time of plain GD",
            value=f"{ratio:.2f}x ({hv['c']['per_step']:.2f} HVPs/step; even one linearisation (which gives the "
                  f"step's gradient) and one HVP per step would be ~{floor:.1f}x; a fused gradient+HVP alone is "
                  f"{micro['fused_grad_hvp_over_gradient']:.1f}x)",
            met=ratio <= cfg.ratio_target, ratio=ratio),
        "every_step_accuracy": dict(
            what=f"every-step tracked sharpness within {100 * cfg.accuracy_target:g}% of a cold solve",
            value=f"max {100 * acc['c_max']:.3f}%, median {100 * acc['c_median']:.4f}% over {acc['n_points']} points",
            met=acc["c_max"] <= cfg.accuracy_target, max_rel=acc["c_max"]),
    }


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__.split("\n\n")[0], quick_help="500 steps, one round, shorter extras (about 2 min)",
                              threads_help="cores the process may use (default 1; pinned with sched_setaffinity)")
    parser.add_argument("--steps", type=int, help="GD steps of the main comparison (default 1500, quick 500)")
    args = parser.parse_args(argv)
    cfg = Config.quick() if args.quick else Config()
    if args.steps:
        if args.steps < 2 * cfg.eval_every:
            parser.error(f"--steps must be at least {2 * cfg.eval_every} (two evaluation intervals).")
        # the variants and micro-timings start at an evaluation step about two thirds of the way
        start = cfg.eval_every * max(1, (2 * args.steps // 3) // cfg.eval_every)
        cfg = dataclasses.replace(cfg, steps=args.steps, variant_from=min(start, args.steps - 1))
    t_start = time.perf_counter()

    def log(msg):
        print(f"  [{time.perf_counter() - t_start:5.0f} s] {msg}", file=sys.stderr, flush=True)

    modes = {m.key: m for m in build_modes(cfg)}
    time_modes(cfg, list(modes.values()), log)
    hv = {k: mode_hvps(modes[k], cfg) for k in ("b", "c")}
    acc = accuracy(modes, cfg, log)
    var = variants(cfg, modes, acc, log)
    micro = micro_timings(cfg, modes)
    log("micro-timings done")
    ens = ensemble(cfg, log)
    prob = modes["a"].trainer.problem
    dim = int(ravel_pytree(prob.model.init(0))[0].shape[0])
    targets = evaluate_targets(cfg, modes, acc, micro, hv)
    print_report(cfg, modes, hv, acc, var, ens, micro, targets, dim, int(prob.x_train.shape[0]))
    elapsed = time.perf_counter() - t_start
    print(f"\n(total {elapsed:.0f} s)")
    if args.json:
        out = dict(
            benchmark="training_speed",
            conditions=dict(model="fc-tanh", widths=list(cfg.widths), num_params=dim, dataset="digits",
                            n_train=int(prob.x_train.shape[0]), loss="mse", dtype="float32", eta=cfg.eta,
                            steps=cfg.steps, eval_every=cfg.eval_every, cores=CORES,
                            openblas_threads=os.environ.get("OPENBLAS_NUM_THREADS"), jax=jax.__version__,
                            platform=jax.devices()[0].platform, machine=platform.machine(),
                            cpu_count=os.cpu_count(), eoslab=code_version()),
            config=dataclasses.asdict(cfg),
            targets=targets,
            modes={k: dict(label=m.label, seconds=m.out.seconds, steps=m.out.steps,
                           steps_per_second=m.out.steps / m.out.seconds,
                           ratio_to_plain=m.out.seconds / modes["a"].out.seconds,
                           round_seconds=m.times, warmup_seconds=m.warmup_seconds, hvps=hv.get(k))
                   for k, m in modes.items()},
            accuracy=acc, tracker_settings=var, ensemble=ens, micro_timings=micro, seconds=elapsed,
        )
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
