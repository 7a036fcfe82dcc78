"""Small synthetic inputs for every figure the project draws (no training): series shaped like the real ones.

The curves follow what the reproductions record -- a falling, spiky loss,
a sharpness that rises to its threshold and oscillates there, per-step step
sizes of a tuner -- so that the axes get the tick ranges (log decades,
thousands of steps) and the legends get the labels of real runs.
"""
from __future__ import annotations

import numpy as np

from eoslab.train import TrainResult
from eoslab.train.recipes import load_recipe

RNG = np.random.default_rng(0)


def _loss(steps, scale=0.6, floor=0.01, spikes=True):
    t = np.asarray(steps, float)
    v = scale * np.exp(-t / (0.2 * max(t[-1], 1))) + floor * (1 + 0.3 * np.sin(t / 7.0) ** 2)
    if spikes:
        v = v * (1 + 4 * (RNG.random(len(t)) > 0.97))
    return v


def _sharpness(steps, start, edge):
    t = np.asarray(steps, float)
    rise = start + (edge - start) * np.clip(t / (0.4 * max(t[-1], 1)), 0, 1) ** 1.5
    return rise * (1 + 0.03 * np.cos(np.pi * t))


def member_metrics(total: int, eta: float, threshold: float, *, eval_every: int = 50, tuner: bool = False,
                   unconverged: int = 0) -> dict:
    """The metrics of one member: per-step loss and effective sharpness, evaluation-step losses and sharpness."""
    steps = np.arange(total + 1)
    ev = np.arange(0, total + 1, eval_every)
    lam = _sharpness(ev, 4.0, threshold / eta if not tuner else 2.0 / eta)
    conv = np.ones(len(ev))
    if unconverged:
        conv[1:1 + unconverged] = 0.0
    eta_t = (eta * (0.5 + 0.5 * RNG.random(total + 1))) if tuner else np.full(total + 1, eta)
    lam_steps = np.interp(steps, ev, lam)
    return {
        "loss": (steps, _loss(steps)),
        "train_loss": (ev, _loss(ev, spikes=False)),
        "test_accuracy": (ev, np.linspace(0.3, 0.9, len(ev))),
        "sharpness": (ev, lam),
        "sharpness_converged": (ev, conv),
        "effective_sharpness": (steps, eta_t * lam_steps),
        "step_size": (steps[:-1], eta_t[:-1]),
        "tuner_values": (steps[:-1], np.full(total, 2.0)),
        "tuner_grads": (steps[:-1], np.full(total, 1.0)),
        "tuner_success": (steps[:-1], np.ones(total)),
        "step_curvature": (steps[:-1], np.full(total, 1.5)),
        "eta": (steps[:1], np.array([eta])),
        "threshold": (steps[:1], np.array([threshold])),
    }


def train_result(recipe: str, overrides=(), *, diverge_last: bool = False, tuner: bool = False,
                 threshold_factor: float = 2.0, unconverged: int = 0) -> TrainResult:
    """A TrainResult of ``recipe`` (its config, step sizes and step count) with synthetic metrics."""
    cfg = load_recipe(recipe, list(overrides))
    total, n = cfg.train.steps, len(cfg.lrs)
    metrics, thresholds, status, div = [], [], [], []
    for i, lr in enumerate(cfg.lrs):
        thr = threshold_factor / lr if not tuner else 2.0
        metrics.append(member_metrics(total, lr, thr, eval_every=max(1, cfg.train.eval_every), tuner=tuner,
                                      unconverged=unconverged))
        thresholds.append(thr)
        last = diverge_last and i == n - 1
        status.append("diverged" if last else "completed")
        div.append(total // 3 if last else None)
    return TrainResult(cfg, list(range(1, n + 1)), cfg.lrs, status, div, metrics, thresholds, list(cfg.lrs))


# ---- the phase diagram ------------------------------------------------------

C_GRID = tuple(2.0 ** np.arange(0, 6.01, 0.25))


def phase_sweep(dws=((2, 16), (2, 64), (2, 128), (4, 16), (4, 64), (4, 128), (8, 16), (8, 64), (8, 128)),
                seeds=(0, 1, 2), cs=C_GRID):
    """Runs of the three phases sweeps, as :func:`eoslab.sweep.sweep_runs` returns them, with critical values that
    grow with d / w like the paper's (c_loss ~ 2 at small d / w), per-seed jitter, and one undetermined run."""
    from types import SimpleNamespace
    first, early, late = [], [], []

    def rec(d, w, c, seed, status):
        return SimpleNamespace(config={"model": {"widths": [w] * (d - 1)}, "optimizer": {"lr": c}}, seed=seed,
                               status=status)
    for d, w in dws:
        for seed in seeds:
            base = 2.2 * (1 + 40 * d / w) * 2 ** (0.25 * ((seed * 7 + d) % 3 - 1))
            c_loss, c_sharp, c_div = base, base * 2 ** 0.5, base * 2 ** 1.75
            for c in cs:
                status = "diverged" if c >= c_div else "completed"
                loss = [1.0, 1.5 if c >= c_loss else 0.5] + [0.4] * 9
                sharp = [3.0, 3.5 if c >= c_sharp else 2.0] + [1.0] * 9
                steps = np.arange(11)
                conv = np.zeros(11) if (d, w, seed, c) == (4, 64, 1, cs[12]) else np.ones(11)
                first.append((rec(d, w, c, seed, "completed"),
                              {"train_loss": (np.array([0, 1]), np.array([1.0, 0.5])),
                               "line_max_loss": (np.array([1]), np.array([2.0 if c >= c_loss else 0.9]))}))
                early.append((rec(d, w, c, seed, status),
                              {"train_loss": (steps, np.asarray(loss)), "eta": (steps[:1], np.array([c / 3.0])),
                               "sharpness": (steps, np.asarray(sharp)), "sharpness_converged": (steps, conv),
                               "sharpness_error": (steps, 1e-4 * np.asarray(sharp)),
                               "line_max_loss": (steps[-1:], np.array([2.0 if c >= c_div else 0.9]))}))
                late.append((rec(d, w, c, seed, status),
                             {"train_loss": (np.array([0, 100]), np.array([1.0, 0.1])),
                              "line_max_loss": (np.array([100]), np.array([0.8]))}))
    return first, early, late


def phase_rows(**kw):
    """``(rows, collected)`` of :func:`phase_sweep` through the reproduction's own collect and summarise."""
    from eoslab.experiments import phases
    collected = phases.collect(*phase_sweep(**kw))
    return phases.summarise(collected), collected


def uv_result(seeds: int = 8, steps: int = 100):
    """The dict of :func:`eoslab.experiments.phases.uv_phase_diagram` with synthetic trajectories."""
    from eoslab.experiments.phases.critical import Critical
    cs = 2.0 ** np.arange(0.5, 2.5 + 1e-9, 0.01)
    losses = np.empty((len(cs), seeds, steps))
    sharp = np.empty((len(cs), seeds, steps))
    t = np.arange(steps)
    for i, c in enumerate(cs):
        for s in range(seeds):
            jitter = 1 + 0.01 * (s - seeds / 2)
            losses[i, s] = np.exp(-t / 10) * (1 + (c * jitter > 2) * np.exp(-t / 3))
            sharp[i, s] = 1 + 0.2 * (c * jitter > 2.2) * np.exp(-t / 3) - 0.1 * t / steps
    diverged = cs[:, None] * np.ones(seeds) > 4.0
    per_seed = [Critical(2.0, 2.2, float("nan"), 4.0) for _ in range(seeds)]
    return dict(cs=cs, per_seed=per_seed, losses=losses, sharpness=sharp, diverged=diverged,
                lambda0=np.ones(seeds), width=512, steps=steps, y=0.0)


# ---- PAL ----------------------------------------------------------------------

def _grid(window, lo, hi, n, names, vertex):
    s = np.linspace(lo, hi, n)
    losses = {name: (0.6 + 0.1 * k) * (s - vertex) ** 2 + 0.2 + 0.01 * np.sin(7 * s) for k, name in enumerate(names)}
    return dict(steps=s.tolist(), window=window, losses={k: v.tolist() for k, v in losses.items()},
                a={k: 0.6 + 0.1 * j for j, k in enumerate(names)},
                b={k: -2 * (0.6 + 0.1 * j) * vertex for j, k in enumerate(names)},
                c={k: (0.6 + 0.1 * j) * vertex ** 2 + 0.2 for j, k in enumerate(names)},
                r2={k: 0.9952 for k in names})


def pal_records(names=("batch", "full"), steps=(0, 40, 240, 490)):
    """Profile records of a PAL run (:mod:`eoslab.experiments.pal.profiler`): wide and local grids per step."""
    out = []
    for k, step in enumerate(steps):
        vertex = 0.55 - 0.1 * k
        taken = 1.67 * vertex
        rec = dict(step=step, step_taken=taken, wide=_grid(1.0, -1.0, 3.0, 81, names, vertex),
                   local=_grid(2 * taken, -2 * taken, 2 * taken, 41, names, vertex))
        for name in names:
            rec[f"minimiser_{name}"] = vertex
        out.append(rec)
    out[-1]["minimiser_full"] = 5.0  # off the local grid: a legend entry instead of a line
    return out


def pal_panels():
    """The panels of :func:`eoslab.experiments.pal.figures.plot_training`: the four settings of the full run."""
    panels = []
    for label, loss, recipe, base in (("MSE, batch 128", "mse", "pal", "pal-sgd"),
                                      ("MSE, full batch", "mse", "pal", "pal-sgd"),
                                      ("CE, batch 128", "ce", "pal-ce", "pal-ce-sgd"),
                                      ("CE, full batch", "ce", "pal-ce", "pal-ce-sgd")):
        pal = [("PAL", train_result(recipe, tuner=True)), ("PAL β=0.4", train_result(recipe, tuner=True))]
        panels.append(dict(label=label, loss=loss, pal=pal, baseline=train_result(base, diverge_last=True)))
    return panels


# ---- alignment ------------------------------------------------------------------

def alignment_inputs(name="logcosh2", n=40, steps=200):
    """``(model, results, cfg)`` of :func:`eoslab.experiments.alignment.figures.draw` for one toy model."""
    from eoslab.experiments.alignment.recipe import load_config
    from eoslab.experiments.alignment.simulation import Ensemble
    from eoslab.models.toy import make_toy
    cfg = load_config(quick=True)
    spec = cfg["models"][name]
    model = make_toy(spec["kind"], **dict(spec.get("options", {})))
    results = []
    t = np.arange(steps + 1)[:, None]
    for eta in spec["etas"]:
        eta = float(eta)
        p = 2.0 * np.cos(np.pi * t) * np.exp(-t / 60) * RNG.uniform(0.5, 1.0, n)
        q = 1.0 / (1 + 0.3 * p ** 2)
        sharp = 2 / eta * (1 - np.exp(-t / 30)) + RNG.uniform(0, 1, n)
        ens = Ensemble(eta, np.exp(-t / 50) * np.ones(n), sharp, p, q, -np.ones(n, int), np.zeros((n, 2)))
        dist = dict(median=1.9e-4, p99=3.3e-3)
        summ = dict(slow_manifold=dist, r_curve=dict(median=1.2e-2, p99=1.5e-2),
                    final_sharpness_ratio=dict(median=0.9878, fraction_within_tol=0.992), eos_fraction=0.992)
        results.append((ens, summ))
    return model, results, cfg


def central_flow_rows():
    """(setting, dynamics, metrics) rows as eoslab.experiments.central_flows.plot takes them: two settings."""
    from eoslab.experiments.central_flows import SETTINGS
    rows = []
    t = np.arange(251)
    for setting in SETTINGS[:2]:
        dyn = setting.dynamics()
        c = dyn.threshold
        lam = np.minimum(1.2 + t / 100, c)
        m = {}
        for kind, wobble in (("discrete", 0.1), ("stable", 0.0), ("central", 0.0)):
            sharp = lam * (1 + wobble * np.cos(np.pi * t)) if kind != "stable" else 1.2 + t / 80
            loss = _loss(t, spikes=kind == "discrete")
            m[kind] = dict(loss=loss, predicted_loss=loss * 1.05, effective_sharpness=sharp,
                           distance=np.linspace(0, 0.3 if kind == "stable" else 0.05, len(t)))
        rows.append((setting, dyn, m))
    return rows
