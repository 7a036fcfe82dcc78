"""Reproduction of the early-training phase diagram (Kalra & Barkeshli 2023).

With eta = c / lambda_0 (lambda_0 the sharpness at initialisation, measured
per run), SGD training of a ReLU network shows four regimes: (i) an early
transient, (ii) intermediate saturation, (iii) progressive sharpening and
(iv) the edge of stability.  The early transient has a phase diagram in c,
depth d and width w with critical values (each estimated per seed from a
grid of c = 2^x):

* ``c_loss``: the smallest c at which the training loss rises above its
  initial value within the first 10 steps;
* ``c_sharp``: the smallest c at which the sharpness rises above lambda_0
  within the first 10 steps (certified eigenvalues only, see below);
* ``c_barrier``: the smallest c whose *first step* crosses a loss barrier:
  the training loss somewhere on the segment theta_0 -> theta_1 (20 points)
  exceeds L(theta_0).  The table also gives the barrier on theta_0 ->
  theta_10 and theta_0 -> theta_100 (``c_barrier_10``, ``c_barrier_100``; a
  run that diverges counts as crossing one);
* ``c_max``: the largest c that does not diverge (within 100 steps); here the
  grid value below the smallest diverging c.

The paper finds c_loss <= c_sharp <= c_max; c_loss = 2 at small d/w, growing
with d/w, so that a *sharpness-reduction* phase 2 < c < c_loss opens up (the
loss falls while the sharpness drops) as the network gets deeper and
narrower.  The uv model ``f = v.u x / sqrt(n)`` is the analytic check:
c_loss = 2 and c_max = 4 (closed-form sharpness: exact).

The barrier's endpoint.  An earlier version read c_barrier on theta_0 ->
theta_10, and it landed at or above c_max for every (d, w).  A measurement
(d, w) in {(2, 128), (4, 64), (8, 16)}, 2 seeds, c = 2^0 ... 2^6 step 2^0.5,
the loss on 41 points of each segment theta_0 -> theta_T) shows why: by step
10 a run that catapults has come back below L_0, and the segment to theta_10
stays below L_0, so a barrier there appeared only in runs that then diverged
(one exception: an interior barrier at d = 4, w = 64, c = 8 and 11.3, seed
0).  On theta_0 -> theta_1 the barrier appears where the first step raises
the loss, in every case at exactly c_loss (its maximum was always the
endpoint theta_1, never an interior bump).  The segment to theta_1 follows
our reading of the paper (the first step crossing the barrier); the paper's
text could not be consulted here (not in the reference library), so the
endpoint and the claimed order c_sharp <= c_barrier <= c_max are recalled,
not quoted.

Missing runs and eigenvalue certificates.  Critical values are read on the
full grid of the sweep spec: a run that is missing or failed is *missing*
(the values it could decide are undetermined, nan), never a divergence.
c_sharp and the regimes use only certified sharpness values
(:func:`eoslab.experiments.claims.certified_series`: converged solves); a
rise that an uncertified value could hide is undetermined.  Every median in
the tables and claims carries its count n; the order claim compares medians
over the same seeds (those with all three values determined).  A run that
diverges inside the 10-step window counts as a loss and sharpness rise.

What runs (``reproduce``):

1. the uv model (:class:`~eoslab.models.toy.UVModel`, width 512, one data
   point, float64): GD for 1000 steps on a fine grid of c (step 2^0.01) and 8
   initialisations, in one ``vmap``;
2. the sweeps ``configs/sweeps/phases-first.toml`` (1 step, the loss barrier
   on theta_0 -> theta_1), ``phases-early.toml`` (10 steps, the loss and the
   sharpness after every step, the barrier at step 10) and
   ``phases-late.toml`` (100 steps, no sharpness, the barrier at the end)
   over c, d in {2, 4, 8}, w in {16, 64, 128} and 3 seeds on digits (fc-relu
   without bias, init ``kalra``, ``mse-mean``, SGD batch 512;
   :mod:`eoslab.sweep`, resumable);
3. the recipe ``configs/phases.toml``: 3000 SGD steps at d = 4, w = 128 for
   c in {0.5, 1, 2, 4}, with the sharpness after every step, whose certified
   values, averaged over consecutive steps (period 2 at the edge), are cut
   into the four regimes (:func:`classify_regimes`); without ``--quick`` also
   with PyTorch's default init (variance 1/(3 fan_in)).

The regimes do not separate on digits.  A bounded search (d = 4, 3000 steps
-- 600 for ``kalra``, w = 128, SGD 512 -- c in {0.5, 1}, and 2 for PyTorch's
init with SGD, per-step sharpness) found the paper's sequence in none of: init ``kalra`` (w = 32, 128; SGD 512 and full
batch), ``lecun`` (w = 128, SGD 512) and ``pytorch`` (w = 128; SGD 512 and
full batch).  With ``kalra`` and ``lecun`` the sharpness falls in the first
steps and keeps falling or stays flat: eta * lambda ends at 0.08-0.67 of 2
(for c = 0.5, 1), the training loss is below 0.02 within a few hundred steps
and no sharpening follows.  With PyTorch's init (small outputs) the
sharpness rises from the first steps, with no saturation before it, reaches
the edge within 10-30 steps and then drifts below it (eta * lambda 1.3-2.0
at step 3000).  ``mse`` against ``mse-mean`` is no knob: scaling the loss by
k scales lambda_0 by k and eta = c / lambda_0 by 1/k, the same trajectory.
Digits (1500 examples) is too easy for a net of this size to keep its loss
up long enough to sharpen after a saturation; the paper's CIFAR-10 and
MNIST are not available offline here.  The regime claims keep their
criterion and fail (or are not testable while the stored sharpness is not
certified).

``--quick`` takes 2 seeds, d in {2, 8}, w in {16, 128}, c = 2^0, 2^0.5, ...,
2^6 and 800 steps for the regimes (Kalra init only); the claims it does not
run are rows with holds = None and the reason, and its titles and
``claims.json`` (``"quick": true``) say it is a quick run.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from eoslab.experiments.base import store_in
from eoslab.experiments.claims import Accuracy, Claim, combine, quick_title, write_claims
from eoslab.experiments.statistics import spread
from eoslab.train.recipes import RECIPES_DIR, load_recipe

PAPER = "Kalra & Barkeshli 2023"
EARLY_STEPS = 10  # the window of c_loss and c_sharp
UV_WIDTH = 512
UV_STEPS = 1000
UV_SEEDS = 8
UV_TOLERANCE = 0.05
EDGE = 0.9  # eta * lambda >= EDGE * 2: at the edge of stability
FLAT = 0.1  # |d log lambda / d log t| below this: saturated
QUICK_GRID = {"optimizer.lr": {"from": 1, "to": 64, "num": 13, "spacing": "log"},
              "model.depth": [2, 8], "model.width": [16, 128]}
QUICK_SEEDS = 2
QUICK_REGIME_STEPS = 800


# ---- critical values -------------------------------------------------------

def first_c(cs: np.ndarray, hit: np.ndarray, known: np.ndarray | None = None) -> float:
    """The smallest c (of a sorted grid) with ``hit``; inf if none.

    ``known[i]`` False marks a missing run (not run, or failed): it could have
    been a hit, so a first hit above it, or no hit at all, is undetermined (nan).
    """
    known = np.ones(len(cs), bool) if known is None else np.asarray(known, bool)
    for c, h, k in zip(np.asarray(cs, float), np.asarray(hit, bool), known):
        if not k:
            return math.nan
        if h:
            return float(c)
    return math.inf


def last_stable_c(cs: np.ndarray, diverged: np.ndarray, known: np.ndarray | None = None) -> float:
    """c_max: the grid value just below the smallest diverging c.

    The largest c if none diverges, -inf if the smallest c diverges (c_max below
    the grid); nan if a missing run (``known`` False) comes before the first
    divergence (it might have diverged).
    """
    cs = np.asarray(cs, float)
    known = np.ones(len(cs), bool) if known is None else np.asarray(known, bool)
    for i, (d, k) in enumerate(zip(np.asarray(diverged, bool), known)):
        if not k:
            return math.nan
        if d:
            return float(cs[i - 1]) if i > 0 else -math.inf
    return float(cs[-1])


def loss_rises(losses: np.ndarray, window: int = EARLY_STEPS) -> bool:
    """The loss rises above its initial value within ``window`` steps (a NaN / inf loss counts as rising)."""
    early = losses[1:window + 1]
    return bool(np.any(~np.isfinite(early)) or np.any(early > losses[0]))


def sharpness_rises(sharpness: np.ndarray, window: int = EARLY_STEPS) -> bool:
    """The sharpness rises above lambda_0 within ``window`` steps (NaN / inf counts as rising); exact series."""
    early = sharpness[1:window + 1]
    return bool(np.any(~np.isfinite(early)) or np.any(early > sharpness[0]))


def certified_sharpness_rises(steps: np.ndarray, values: np.ndarray, window: int = EARLY_STEPS) -> bool | None:
    """c_sharp's test on a certified series (only converged eigenvalues; steps may be missing).

    True when a certified value at a step in 1..window exceeds the certified
    lambda_0; False when lambda_0 and every step of the window are certified and
    none exceeds it; None (undetermined) otherwise: an uncertified value could
    have been the rise.
    """
    at = dict(zip(np.asarray(steps).tolist(), np.asarray(values, float).tolist()))
    if 0 not in at:
        return None
    inside = [at[t] for t in range(1, window + 1) if t in at]
    if any(v > at[0] for v in inside):
        return True
    return False if len(inside) == window else None


def line_barrier(line_max_loss: float, initial_loss: float) -> bool | None:
    """A loss barrier on the segment theta_0 -> theta_T: its highest loss above L(theta_0) (None if unmeasured).

    ``line_max_loss`` is the trainer's probe (the highest training loss at
    s = 1/n, ..., 1 on the segment; a NaN loss there counts as inf).
    """
    if not np.isfinite(initial_loss) or np.isnan(line_max_loss):
        return None
    return bool(line_max_loss > initial_loss)


@dataclasses.dataclass(frozen=True)
class Critical:
    """Critical values of one (model, seed) over a grid of c (nan: undetermined, a run missing)."""
    c_loss: float
    c_sharp: float
    c_barrier: float  # segment theta_0 -> theta_1
    c_max: float
    c_barrier_10: float = math.nan  # segment theta_0 -> theta_10, a diverged run counting as a barrier
    c_barrier_100: float = math.nan  # segment theta_0 -> theta_100, likewise


# ---- the uv model ----------------------------------------------------------

def uv_phase_diagram(*, width: int = UV_WIDTH, steps: int = UV_STEPS, seeds: int = UV_SEEDS,
                     cs: np.ndarray | None = None, y: float = 0.0) -> dict:
    """GD on the uv model for every (c, initialisation) as one ensemble (:func:`~eoslab.train.ensemble.scan_members`);
    per-seed c_loss, c_sharp, c_max."""
    import jax
    import jax.numpy as jnp

    from eoslab.models.toy import UVModel, require_x64
    from eoslab.train.ensemble import scan_members
    require_x64()
    model = UVModel(width=width, x=1.0, y=y)
    cs = 2.0 ** np.arange(0.5, 2.5 + 1e-9, 0.01) if cs is None else np.asarray(cs, float)
    theta0 = model.init(jax.random.PRNGKey(0), seeds)
    lam0 = jax.vmap(model.sharpness)(theta0)

    def step(member, t):  # one (c, initialisation): GD with its own step size
        theta, eta = member
        return (theta - eta * model.grad(theta), eta), (model.loss(theta), model.sharpness(theta))

    grid = jnp.asarray(cs)[:, None] / lam0[None, :]  # [c, seed]
    members = (jnp.broadcast_to(theta0, (len(cs), *theta0.shape)).reshape(-1, theta0.shape[-1]), grid.reshape(-1))
    run = jax.jit(lambda m: scan_members(step, m, jnp.arange(steps))[1])
    losses, sharp = (r.reshape(len(cs), seeds, steps) for r in run(members))
    losses, sharp = np.asarray(losses), np.asarray(sharp)
    diverged = ~np.isfinite(losses[:, :, -1]) | (losses[:, :, -1] > 1e6)
    per_seed = []
    for s in range(seeds):
        per_seed.append(Critical(
            first_c(cs, np.array([loss_rises(losses[i, s]) for i in range(len(cs))])),
            first_c(cs, np.array([sharpness_rises(sharp[i, s]) for i in range(len(cs))])),
            math.nan, last_stable_c(cs, diverged[:, s])))
    return dict(cs=cs, per_seed=per_seed, losses=losses, sharpness=sharp, diverged=diverged,
                lambda0=np.asarray(lam0), width=width, steps=steps, y=y)


# ---- the sweeps on digits --------------------------------------------------

SWEEPS = ("phases-first", "phases-early", "phases-late")


def sweep_spec(name: str, *, quick: bool = False, grid: dict | None = None, seeds: int | None = None,
               overrides: list[str] | None = None):
    """The grid spec ``configs/sweeps/{name}.toml``; ``quick`` takes :data:`QUICK_GRID` and :data:`QUICK_SEEDS`.

    ``grid`` (axis -> values, as in a grid spec), ``seeds`` (a count) and
    ``overrides`` (``key=value`` on the base config) replace them (tests,
    exploration).
    """
    from eoslab.sweep import grid_from_dict, load_grid
    from eoslab.train.config import apply_overrides
    spec = load_grid(RECIPES_DIR / "sweeps" / f"{name}.toml")
    axes_from = dict(QUICK_GRID) if quick else {}
    axes_from.update(grid or {})
    axes = tuple((k, grid_from_dict({"grid": {k: axes_from[k]}}).axes[0][1]) if k in axes_from else (k, v)
                 for k, v in spec.axes)
    n_seeds = seeds if seeds is not None else (QUICK_SEEDS if quick else None)
    changes = dict(axes=axes)
    if n_seeds is not None:
        changes["seeds"] = tuple(range(n_seeds))
    if overrides:
        changes["base"] = apply_overrides(spec.base, list(overrides))
    if quick:
        changes["name"] = f"{spec.name}-quick"
    return dataclasses.replace(spec, **changes)


def _depth_width(cfg: dict) -> tuple[int, int]:
    widths = cfg["model"]["widths"]
    return len(widths) + 1, int(widths[0])


EMPTY = (np.zeros(0, np.int64), np.zeros(0))
KNOWN = ("completed", "diverged")  # a run with another status (failed) or none (not run) is missing


def _first_value(m: dict, name: str) -> float:
    v = m.get(name, EMPTY)[1]
    return float(v[0]) if len(v) else math.nan


def _row(table: dict, rec) -> dict:
    key = _depth_width(rec.config)
    c = float(rec.config["optimizer"]["lr"])
    return table.setdefault(key, {}).setdefault(rec.seed, {}).setdefault(c, {})


def grid_points(spec) -> list[tuple[int, int, int, float]]:
    """The ``(depth, width, seed, c)`` of every point of a sweep spec: the grid the critical values are read on."""
    return [(*_depth_width(p.config.to_dict()), p.seed, p.lr) for p in spec.points()]


def collect(runs_first: list, runs_early: list, runs_late: list,
            expected: Sequence[tuple[int, int, int, float]] = ()) -> dict:
    """Per (d, w): the grid of c, per-seed critical values, the early trajectories and the eigenvalue accuracy.

    Each ``runs_*`` is a list of ``(RunRecord, metrics)`` (:func:`eoslab.sweep.sweep_runs`);
    ``expected`` the grid's points (:func:`grid_points`), so that a point no
    sweep stored is on the grid too.  A run that is missing or failed is
    *missing*: the critical values it could decide are undetermined (nan),
    never read as a divergence.  c_sharp uses only certified eigenvalues
    (:func:`eoslab.experiments.claims.certified_series`).
    """
    from eoslab.experiments.claims import certified_series
    table: dict = {}
    for d, w, seed, c in expected:
        table.setdefault((d, w), {}).setdefault(seed, {}).setdefault(float(c), {})
    for rec, m in runs_first:
        r = _row(table, rec)
        r["first_status"] = rec.status
        r["first_barrier"] = line_barrier(_first_value(m, "line_max_loss"), _first_value(m, "train_loss"))
    for rec, m in runs_early:
        r = _row(table, rec)
        r["early_status"] = rec.status
        r["early_loss"] = m.get("train_loss", EMPTY)[1]
        r["early_sharpness"] = m.get("sharpness", EMPTY)[1]
        r["eta"] = _first_value(m, "lr")
        steps, lam, acc = certified_series(m, "sharpness")
        r["sharp_accuracy"] = acc
        r["sharp_rise"] = True if rec.status == "diverged" else certified_sharpness_rises(steps, lam)
        r["early_barrier"] = line_barrier(_first_value(m, "line_max_loss"), _first_value(m, "train_loss"))
    for rec, m in runs_late:
        r = _row(table, rec)
        r["late_status"] = rec.status
        r["late_barrier"] = line_barrier(_first_value(m, "line_max_loss"), _first_value(m, "train_loss"))
    out = {}
    for key, seeds in sorted(table.items()):
        per_seed = {seed: critical_values(by_c) for seed, by_c in sorted(seeds.items())}
        accs = [r["sharp_accuracy"] for by_c in seeds.values() for r in by_c.values() if "sharp_accuracy" in r]
        out[key] = dict(per_seed=per_seed, runs=seeds, accuracy=combine(accs))
    return out


def critical_values(by_c: dict) -> Critical:
    """The critical values of one (d, w, seed) from its rows ``{c: row}`` (see :func:`collect`)."""
    cs = np.asarray(sorted(by_c))
    rows = [by_c[c] for c in cs]
    status = lambda r, sweep: r.get(f"{sweep}_status")  # noqa: E731
    early_known = np.array([status(r, "early") in KNOWN for r in rows])
    late_known = np.array([status(r, "late") in KNOWN for r in rows])
    late_div = np.array([status(r, "late") == "diverged" for r in rows])
    early_div = np.array([status(r, "early") == "diverged" for r in rows])
    loss_hit = np.array([bool(k) and loss_rises(r.get("early_loss", EMPTY[1])) for r, k in zip(rows, early_known)])
    sharp = [r.get("sharp_rise") if k else None for r, k in zip(rows, early_known)]
    first = [r.get("first_barrier") if status(r, "first") in KNOWN else None for r in rows]
    b10 = [r.get("early_barrier") if k else None for r, k in zip(rows, early_known)]
    b100 = [r.get("late_barrier") if k else None for r, k in zip(rows, late_known)]
    tri = lambda v: (np.array([x is True for x in v]), np.array([x is not None for x in v]))  # noqa: E731
    s_hit, s_known = tri(sharp)
    f_hit, f_known = tri(first)
    e_hit, e_known = tri(b10)
    l_hit, l_known = tri(b100)
    return Critical(first_c(cs, loss_hit, early_known), first_c(cs, s_hit, s_known),
                    first_c(cs, f_hit, f_known), last_stable_c(cs, late_div, late_known),
                    first_c(cs, e_hit | early_div, e_known | early_div),
                    first_c(cs, l_hit | late_div, l_known | late_div))


CRITICAL = ("c_loss", "c_sharp", "c_barrier", "c_max", "c_barrier_10", "c_barrier_100")


def summarise(collected: dict) -> list[dict]:
    """Per (d, w): the spread of each critical value over seeds (with n), and the order over common seeds.

    ``order``: medians of c_loss, c_sharp and c_max over the seeds where all
    three are determined (so the three medians are over the same seeds), with
    that count ``order_n`` and the seeds where the order holds, ``ordered_seeds``.
    """
    rows = []
    for (d, w), entry in collected.items():
        crit = list(entry["per_seed"].values())
        row = dict(depth=d, width=w, ratio=d / w, seeds=len(crit), accuracy=entry.get("accuracy"), per_seed=crit)
        for name in CRITICAL:
            row[name] = spread([getattr(c, name) for c in crit])
        common = [c for c in crit if not any(np.isnan((c.c_loss, c.c_sharp, c.c_max)))]
        row["order"] = {n: float(np.median([getattr(c, n) for c in common])) if common else math.nan
                        for n in ("c_loss", "c_sharp", "c_max")}
        row["order_n"] = len(common)
        row["ordered_seeds"] = sum(c.c_loss <= c.c_sharp <= c.c_max for c in common)
        rows.append(row)
    return rows


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(spearmanr(x, y).statistic)


# ---- regimes -----------------------------------------------------------------

REGIMES = ("early transient", "intermediate saturation", "progressive sharpening", "edge of stability")


def log_resample(steps: np.ndarray, values: np.ndarray, points: int = 40, window: float = 1.15
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The series at step 0 and at ~``points`` log-spaced steps, each the median over [t / window, t * window]."""
    steps, values = np.asarray(steps, float), np.asarray(values, float)
    out_t, out_v = [steps[0]], [values[0]]
    for g in np.unique(np.round(np.geomspace(1, max(steps[-1], 1), points))):
        sel = (steps >= g / window) & (steps <= g * window) & (steps > 0)
        if sel.any():
            t = float(np.median(steps[sel]))
            if t > out_t[-1]:
                out_t.append(t)
                out_v.append(float(np.median(values[sel])))
    return np.asarray(out_t), np.asarray(out_v)


def two_step_mean(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(v_t + v_{t+1}) / 2 at every step t whose successor t + 1 is in the series (finite values only).

    At the edge of stability the sharpness oscillates with period 2; the mean
    of two consecutive steps removes that component exactly, so no later
    subsample (the log-spaced windows of :func:`log_resample`) can alias it.
    The values are :func:`eoslab.experiments.statistics.two_step_means`.
    """
    from eoslab.experiments.statistics import two_step_means
    steps, values = np.asarray(steps), np.asarray(values, float)
    kept = steps[np.isfinite(values)]
    return kept[np.nonzero(np.diff(kept) == 1)[0]], two_step_means(steps, values)


def classify_regimes(steps: np.ndarray, sharpness: np.ndarray, eta: float, *, edge: float = EDGE,
                     flat: float = FLAT) -> dict:
    """Cut a sharpness trajectory into the four regimes; returns each regime's first step (None if absent).

    The series is resampled at log-spaced steps (:func:`log_resample`, a
    median over +-15% in t, which also smooths SGD noise) and its slope
    ``s_k = d log lambda / d log(1 + t)`` between samples (a running median of
    three) decides:

    * the early transient lasts until the first sample with ``|s_k| < flat``,
      where intermediate saturation starts;
    * progressive sharpening starts at the first later sample from which the
      slope stays ``>= flat`` for three consecutive intervals;
    * the edge of stability starts at the first sample after the transient
      with ``eta * lambda >= 2 * edge``.
    """
    steps, lam = np.asarray(steps, float), np.asarray(sharpness, float)
    ok = np.isfinite(lam) & (lam > 0)
    onset: dict = {r: None for r in REGIMES}
    if ok.sum() < 4:
        return onset
    t, lam = log_resample(steps[ok], lam[ok])
    if len(t) < 4:
        return onset
    slope = np.diff(np.log(lam)) / np.diff(np.log1p(t))
    smooth = np.array([np.median(slope[max(0, i - 1):i + 2]) for i in range(len(slope))])
    onset[REGIMES[0]] = int(t[0])
    flat_idx = np.nonzero(np.abs(smooth) < flat)[0]
    if not len(flat_idx):
        return onset
    k_sat = int(flat_idx[0])
    at_edge = [k for k in range(k_sat, len(lam)) if eta * lam[k] >= 2 * edge]
    k_eos = at_edge[0] if at_edge else len(lam)
    if k_sat < k_eos:
        onset[REGIMES[1]] = int(t[k_sat])
    for i in range(k_sat, min(k_eos, len(smooth)) - 2):
        if np.all(smooth[i:i + 3] >= flat):
            onset[REGIMES[2]] = int(t[i])
            break
    if k_eos < len(lam):
        onset[REGIMES[3]] = int(t[k_eos])
    return onset


def regimes_in_order(onset: dict, *, span: float = 2.0) -> bool:
    """All four regimes are present, in the paper's order, and the first three each last a factor ``span`` in 1 + t.

    The span keeps a regime of one or two steps (a sharpness that starts
    rising at step 2, say) from counting as a phase of its own.
    """
    ts = [onset[r] for r in REGIMES]
    return all(t is not None for t in ts) and all((1 + b) >= span * (1 + a) for a, b in zip(ts, ts[1:]))


MIN_CERTIFIED = 0.5  # a regime claim needs at least this fraction of its per-step sharpness certified


def certified_regimes(metrics: dict, eta: float) -> tuple[dict, Accuracy]:
    """:func:`classify_regimes` on the certified per-step sharpness (converged solves only), two-step averaged.

    Returns the onsets and the :class:`~eoslab.experiments.claims.Accuracy` of
    the eigenvalues used; unconverged values are left out, never used as exact.
    """
    from eoslab.experiments.claims import certified_series
    steps, lam, acc = certified_series(metrics, "sharpness")
    t, v = two_step_mean(steps, lam)
    return classify_regimes(t, v, eta), acc


def regime_verdict(onset: dict, c: float, acc: Accuracy, *, min_certified: float = MIN_CERTIFIED
                   ) -> tuple[bool | None, str]:
    """Whether the four regimes follow each other (:func:`regimes_in_order`), or None with the reason.

    Tested for c < 2 only (above, the early catapult and the edge merge), and
    only when at least ``min_certified`` of the per-step sharpness values were
    certified (converged).
    """
    if c >= 2:
        return None, "checked for c < 2 (above, the early catapult and the edge can merge)"
    total = acc.used + acc.unconverged
    if total == 0 or acc.used < min_certified * total:
        return None, (f"not testable: {acc.used} of {total} per-step sharpness values certified (converged); "
                      f"needs {min_certified:.0%}")
    return regimes_in_order(onset), "each of the first three regimes must last a factor 2 in 1 + t"


# ---- figures -----------------------------------------------------------------

def plot_phase_diagram(rows: list[dict], *, title: str = ""):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    rows = sorted(rows, key=lambda r: r["ratio"])
    x = np.array([r["ratio"] for r in rows])
    styles = {"c_loss": ("C0", "o"), "c_sharp": ("C1", "s"), "c_barrier": ("C2", "^"), "c_max": ("C3", "v")}
    for name, (color, marker) in styles.items():
        med = np.array([r[name]["median"] for r in rows])
        lo = np.array([r[name]["min"] for r in rows])
        hi = np.array([r[name]["max"] for r in rows])
        fin = np.isfinite(med)
        lo, hi = np.where(np.isfinite(lo), lo, med), np.where(np.isfinite(hi), hi, med)  # beyond the grid
        ax.errorbar(x[fin] * (1 + 0.04 * list(styles).index(name)), med[fin],
                    yerr=[med[fin] - lo[fin], hi[fin] - med[fin]], color=color, marker=marker, ls="-", lw=1,
                    capsize=2, label=name)
    ax.axhline(2.0, color="k", ls="--", lw=1, label="c = 2")
    ax.set_xscale("log")
    ax.set_yscale("log", base=2)
    ax.set_xlabel("d / w")
    ax.set_ylabel("c = η λ₀")
    ax.set_title(title or "early-training phase diagram (median, min-max over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_early_trajectories(entry: dict, seed: int, cs: Sequence[float], *, title: str = ""):
    """Loss and lambda_t / lambda_0 over the first steps for representative c."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    by_c = entry["runs"][seed]
    for c in cs:
        r = by_c[c]
        loss, lam = r.get("early_loss", []), r.get("early_sharpness", [])
        if len(loss):
            a.plot(np.arange(len(loss)), loss, marker=".", label=f"c={c:.3g}")
        if len(lam):
            b.plot(np.arange(len(lam)), np.asarray(lam) / lam[0], marker=".", label=f"c={c:.3g}")
    a.set_yscale("log")
    a.set_xlabel("step")
    a.set_ylabel("training loss (mse-mean)")
    b.set_xlabel("step")
    b.set_ylabel("λ_t / λ₀")
    b.set_yscale("log")
    b.axhline(1.0, color="k", lw=0.8, ls=":")
    a.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_regimes(result, onsets: list[dict], *, title: str = ""):
    """eta * lambda_t against log time for each c, with the onset of each regime marked on its curve."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = dict(zip(REGIMES, ("o", "s", "^", "*")))
    for i, c in enumerate(result.lrs):
        s, lam = result.series(i, "sharpness")
        eff = result.step_sizes[i] * lam
        ax.plot(s + 1, eff, color=f"C{i}", lw=1.2, label=f"c={c:g}")
        for r in REGIMES:
            t = onsets[i][r]
            if t is not None:
                j = int(np.searchsorted(s, t))
                ax.plot([t + 1], [eff[min(j, len(eff) - 1)]], marker=markers[r], color=f"C{i}", ms=8, mec="k",
                        ls="none")
    for r, mk in markers.items():
        ax.plot([], [], marker=mk, color="grey", mec="k", ls="none", label=f"onset: {r}")
    ax.axhline(2.0, color="k", ls="--", lw=1, label="ηλ = 2")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step + 1")
    ax.set_ylabel("η λ_t")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


# ---- the reproduction --------------------------------------------------------

def _fmt(s: dict) -> str:
    """``median [min, max] n=k`` (and how many were undetermined)."""
    if s["n"] == 0:
        return f"— n=0" + (f" ({s['missing']} undetermined)" if s.get("missing") else "")
    text = f"{s['median']:.3g} [{s['min']:.3g}, {s['max']:.3g}] n={s['n']}"
    return text + (f" ({s['missing']} undetermined)" if s.get("missing") else "")


def format_table(rows: list[dict]) -> str:
    names = ("c_loss", "c_sharp", "c_barrier", "c_max", "c_barrier_10", "c_barrier_100")
    head = f"{'d':>3} {'w':>4} {'d/w':>7}  " + " ".join(f"{n:>30}" for n in names) + "  ordered"
    lines = ["critical values: median [min, max] over the n seeds where each is determined (inf: above the grid, "
             "-inf: below it; undetermined: a run missing or its sharpness not certified); c_barrier on "
             "theta_0 -> theta_1, c_barrier_10 / _100 on theta_0 -> theta_10 / theta_100 (a diverged run counts "
             "as a barrier); ordered: seeds with c_loss <= c_sharp <= c_max / seeds where all three are determined",
             head]
    for r in sorted(rows, key=lambda r: r["ratio"]):
        lines.append(f"{r['depth']:>3} {r['width']:>4} {r['ratio']:>7.4f}  "
                     + " ".join(f"{_fmt(r[n]):>30}" for n in names)
                     + f"  {r['ordered_seeds']}/{r['order_n']} (of {r['seeds']})")
    return "\n".join(lines)


def uv_claims(uv: dict) -> list[Claim]:
    """c_loss = 2 and c_max = 4 on the uv model (closed-form sharpness: exact, no certificate needed)."""
    crit = uv["per_seed"]
    out = []
    for name, target in (("c_loss", 2.0), ("c_max", 4.0)):
        vals = [getattr(c, name) for c in crit]
        s = spread(vals)
        worst = max(abs(v - target) / target for v in vals)
        out.append(Claim(
            f"uv model: {name} = {target:g}",
            f"{name} per initialisation (median [min, max] over {len(vals)}), width {uv['width']}, "
            f"grid step 2^0.01, {uv['steps']} GD steps",
            s["median"], bool(worst <= UV_TOLERANCE), PAPER,
            f"[{s['min']:.4g}, {s['max']:.4g}] n={s['n']}; largest relative error {worst:.2%} "
            f"(tolerance {UV_TOLERANCE:.0%}); sharpness in closed form (exact)"))
    return out


def not_run(claim: str, quantity: str, reason: str) -> Claim:
    """The row of a claim this mode does not run: present, with holds = None and the reason."""
    return Claim(claim, quantity, "not run", None, PAPER, reason)


def ordering_claim_text(label: str, d: int, w: int) -> str:
    return f"[{label}, d={d}, w={w}] c_loss <= c_sharp <= c_max"


ORDER_QUANTITY = "medians of c_loss, c_sharp, c_max over the seeds where all three are determined"


def ordering_claim(r: dict, label: str) -> Claim:
    """c_loss <= c_sharp <= c_max on the medians over the same seeds (n printed); None when no seed has all three."""
    o, n = r["order"], r["order_n"]
    holds = bool(o["c_loss"] <= o["c_sharp"] <= o["c_max"]) if n else None
    return Claim(
        ordering_claim_text(label, r["depth"], r["width"]), ORDER_QUANTITY,
        dict(o, n=n), holds, PAPER,
        f"medians over the n={n} of {r['seeds']} seeds where all three are determined; ordered in "
        f"{r['ordered_seeds']}/{n} of them; each over its own determined seeds: c_loss {_fmt(r['c_loss'])}, "
        f"c_sharp {_fmt(r['c_sharp'])}, c_max {_fmt(r['c_max'])}"
        + ("" if n else "; not testable: no seed with all three determined (c_sharp needs certified "
                         "eigenvalues at steps 0-10, c_max every run up to the first divergence)")
        + order_analysis(o),
        accuracy=r.get("accuracy"))


def order_analysis(o: dict) -> str:
    """Why the order c_loss <= c_sharp <= c_max fails, read off the medians (empty when it holds)."""
    notes = []
    for name in ("c_loss", "c_sharp"):
        if o[name] > o["c_max"]:
            notes.append(f"{name} lies above c_max: on this grid the first early rise comes only with a run that "
                         f"diverges within 100 steps (a catapult window narrower than the grid step)")
    if o["c_loss"] > o["c_sharp"]:
        notes.append("the sharpness rises within 10 steps at a smaller c than the loss")
    return "".join(f"; {n}" for n in notes)


def trend_claim(rows: list[dict], label: str) -> Claim:
    """c_loss grows with d/w: Spearman rho > 0 of the median c_loss against d/w, and larger at the largest d/w."""
    usable = sorted((r for r in rows if r["c_loss"]["n"] > 0), key=lambda r: r["ratio"])
    claim = f"[{label}] c_loss grows with d/w (the sharpness-reduction phase 2 < c < c_loss opens up)"
    quantity = "Spearman correlation of median c_loss with d/w; c_loss at the smallest and largest d/w"
    per = "; ".join(f"d/w={r['ratio']:.3g}: {_fmt(r['c_loss'])}" for r in usable)
    if len(usable) < 3:
        return Claim(claim, quantity, math.nan, None, PAPER,
                     f"not testable: {len(usable)} (d, w) with a determined c_loss, a rank correlation needs 3; "
                     + per)
    rho = spearman([r["ratio"] for r in usable], [r["c_loss"]["median"] for r in usable])
    small, large = usable[0], usable[-1]
    holds = bool(np.isfinite(rho) and rho > 0 and large["c_loss"]["median"] > small["c_loss"]["median"])
    return Claim(claim, quantity, rho, holds, PAPER, f"holds if rho > 0 and c_loss(largest) > c_loss(smallest); "
                 + per)


def small_ratio_claim(rows: list[dict], label: str) -> Claim:
    """c_loss is about 2 at the smallest d/w: its median within [1.5, 2.9] (the grid's resolution)."""
    small = min(rows, key=lambda r: r["ratio"])
    s = small["c_loss"]
    holds = bool(1.5 <= s["median"] <= 2.9) if s["n"] else None
    return Claim(
        f"[{label}] c_loss is about 2 at the smallest d/w",
        "median c_loss at the smallest d/w (the c grid's resolution is its ratio 2^0.25 or 2^0.5)",
        s["median"], holds, PAPER,
        f"d={small['depth']}, w={small['width']}: {_fmt(s)}; holds if in [1.5, 2.9]")


def barrier_claim(rows: list[dict], label: str) -> Claim:
    """c_sharp <= c_barrier <= c_max on the medians over the seeds where all four values are determined."""
    tested, ordered, equal_loss, b10_above = 0, 0, 0, 0
    parts = []
    for r in sorted(rows, key=lambda r: r["ratio"]):
        crit = [c for c in r["per_seed"] if not any(np.isnan((c.c_sharp, c.c_barrier, c.c_max, c.c_loss)))]
        if not crit:
            parts.append(f"d={r['depth']}, w={r['width']}: n=0")
            continue
        med = {n: float(np.median([getattr(c, n) for c in crit])) for n in ("c_sharp", "c_barrier", "c_max")}
        tested += 1
        ordered += med["c_sharp"] <= med["c_barrier"] <= med["c_max"]
        equal_loss += sum(c.c_barrier == c.c_loss for c in crit)
        parts.append(f"d={r['depth']}, w={r['width']}: c_sharp {med['c_sharp']:.3g}, c_barrier "
                     f"{med['c_barrier']:.3g}, c_max {med['c_max']:.3g} (n={len(crit)})")
        b10 = r["c_barrier_10"]
        b10_above += bool(b10["n"] and r["c_max"]["n"] and b10["median"] > r["c_max"]["median"])
    seeds = sum(len([c for c in r["per_seed"] if not any(np.isnan((c.c_sharp, c.c_barrier, c.c_max, c.c_loss)))])
                for r in rows)
    return Claim(
        f"[{label}] c_sharp <= c_barrier <= c_max",
        "(d, w) where the medians (over the seeds with all of them determined) are ordered; c_barrier: the "
        "smallest c whose first step crosses a loss barrier (training loss on theta_0 -> theta_1 above L_0)",
        f"{ordered}/{tested}", bool(ordered == tested) if tested else None, PAPER,
        "; ".join(parts) + f"; c_barrier = c_loss in {equal_loss}/{seeds} seeds"
        + (" (the first step's barrier is its loss rise, so c_sharp <= c_barrier fails wherever c_sharp > c_loss, "
           "the paper's own order)" if seeds and equal_loss == seeds and ordered < tested else "")
        + f"; on theta_0 -> theta_10 (the former definition) the median barrier lies above c_max in "
        f"{b10_above}/{len(rows)} (d, w)",
        accuracy=combine(r.get("accuracy") for r in rows))


def digits_claims(rows: list[dict], label: str) -> list[Claim]:
    """The claims of the digits sweeps: the order per (d, w), the d/w trend, c_loss near 2, the barrier."""
    claims = [ordering_claim(r, label) for r in sorted(rows, key=lambda r: r["ratio"])]
    return claims + [trend_claim(rows, label), small_ratio_claim(rows, label), barrier_claim(rows, label)]


def regime_claim_text(where: str, c: float) -> str:
    return (f"[{where}, c={c:g}] the four regimes follow each other: early transient, intermediate saturation, "
            f"progressive sharpening, edge of stability")


REGIME_SEARCH = ("on digits a bounded search (init kalra / lecun / pytorch, w 32 / 128, SGD 512 / full batch, "
                 "c 0.5-2, 3000 steps) found the sequence nowhere: the paper's init gives a sharpness that falls and "
                 "stays flat, PyTorch's one that sharpens from step 1 without saturating first (module docstring)")


REGIME_QUANTITY = ("first step of each regime (classify_regimes on the certified per-step sharpness, two-step "
                   "averaged, log-resampled)")


def regime_claims(result, onsets: list[dict], accuracies: list[Accuracy], where: str) -> list[Claim]:
    claims = []
    for i, c in enumerate(result.lrs):
        o = onsets[i]
        holds, why = regime_verdict(o, c, accuracies[i])
        claims.append(Claim(
            regime_claim_text(where, c), REGIME_QUANTITY, {r.split()[0]: o[r] for r in REGIMES}, holds, PAPER,
            f"η = {result.step_sizes[i]:.4g}, status {result.status[i]}; {why}; {REGIME_SEARCH}",
            accuracy=accuracies[i]))
    return claims


REGIME_VARIANTS = (("Kalra init", ()), ("PyTorch init", ('model.init="pytorch"',)))


def _regime_where(label: str, cfg) -> str:
    return f"{label}, d={len(cfg.model.widths) + 1}, w={cfg.model.widths[0]}, {cfg.train.steps} steps"


def run_regimes(out: Path, label: str, overrides: list[str], *, quick: bool, progress: bool,
                title_quick: bool, store) -> tuple[list[Claim], str]:
    """Train the regime recipe (``configs/phases.toml``) and classify each c's certified sharpness."""
    from eoslab.plots import save_figure
    from eoslab.train import train
    cfg = load_recipe("phases", ([f"train.steps={QUICK_REGIME_STEPS}"] if quick else []) + overrides)
    result = train(cfg, results_dir=out, store=store, progress=progress)
    fits = [certified_regimes(result.metrics[i], result.step_sizes[i]) for i in range(len(result.lrs))]
    onsets, accs = [f[0] for f in fits], [f[1] for f in fits]
    where = _regime_where(label, cfg)
    line = f"regimes, {where} (first step of each): " + "; ".join(
        f"c={c:g}: " + ", ".join(f"{r.split()[0]} {onsets[i][r]}" for r in REGIMES)
        + f" [{accs[i].used} certified, {accs[i].unconverged} not]" for i, c in enumerate(result.lrs))
    save_figure(plot_regimes(result, onsets, title=quick_title(f"sharpness over training: {where}, SGD 512",
                                                                title_quick)),
                out / f"phases-regimes-{cfg.model.init}")
    return regime_claims(result, onsets, accs, where), line


def reproduce(out_dir: str | Path, *, quick: bool = False, progress: bool = True, store=None, executor=None,
              overrides: list[str] | None = None, grid: dict | None = None, seeds: int | None = None,
              sweep_overrides: list[str] | None = None, uv: dict | None = None) -> list[Claim]:
    """Run the uv check, the three digits sweeps and the regime runs; write figures, table.txt and the claims.

    ``overrides`` apply to the regime recipe (after ``--quick``'s), ``grid`` /
    ``seeds`` / ``sweep_overrides`` to the sweeps (:func:`sweep_spec`), ``uv``
    to :func:`uv_phase_diagram`; they exist to make small runs (tests).  Every
    claim of the full run is in the table: those a mode does not run are rows
    with holds = None and the reason.
    """
    import jax

    from eoslab.plots import save_figure
    from eoslab.sweep import run_sweep, sweep_runs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    claims: list[Claim] = []
    tables = []

    # 1. the uv model (closed-form sharpness)
    with jax.enable_x64(True):
        uvd = uv_phase_diagram(**(uv or {}))
    claims += uv_claims(uvd)
    save_figure(plot_uv(uvd, title=quick_title(f"uv model, width {uvd['width']}: c_loss = 2, c_max = 4", quick)),
                out / "phases-uv")
    tables.append("uv model (width {w}, {n} initialisations): c_loss {cl}, c_sharp {cs}, c_max {cm}".format(
        w=uvd["width"], n=len(uvd["per_seed"]), cl=_fmt(spread([c.c_loss for c in uvd["per_seed"]])),
        cs=_fmt(spread([c.c_sharp for c in uvd["per_seed"]])), cm=_fmt(spread([c.c_max for c in uvd["per_seed"]]))))

    # 2. the sweeps
    specs = [sweep_spec(n, quick=quick, grid=grid, seeds=seeds, overrides=sweep_overrides) for n in SWEEPS]
    with store_in(out, store) as runs:
        for spec in specs:
            summary = run_sweep(spec, store=runs, executor=executor, progress=progress)
            tables.append(summary.line())
        collected = collect(*(sweep_runs(runs, spec.name) for spec in specs), expected=grid_points(specs[1]))
    rows = summarise(collected)
    label = "digits, fc-relu, SGD 512"
    claims += digits_claims(rows, label)
    full = sweep_spec("phases-early")
    full_dw = [(d, w) for d in dict(full.axes)["model.depth"] for w in dict(full.axes)["model.width"]]
    ran = {(r["depth"], r["width"]) for r in rows}
    claims += [not_run(ordering_claim_text(label, d, w), ORDER_QUANTITY,
                       f"--quick runs d in {sorted({k[0] for k in ran})}, w in {sorted({k[1] for k in ran})}")
               for d, w in full_dw if (d, w) not in ran]
    tables.append(format_table(rows))
    save_figure(plot_phase_diagram(rows, title=quick_title(f"phase diagram: {label}, mse-mean", quick)),
                out / "phases-diagram")
    widest = max(collected, key=lambda k: k[0] / k[1])
    entry = collected[widest]
    seed = min(entry["runs"])
    cs_all = sorted(entry["runs"][seed])
    rep = [min(cs_all, key=lambda c: abs(c - x)) for x in (cs_all[0], 2.5, 6, 16, 45)]
    title = f"first {EARLY_STEPS} steps, d={widest[0]}, w={widest[1]}, seed {seed}"
    save_figure(plot_early_trajectories(entry, seed, sorted(set(rep)), title=quick_title(title, quick)),
                out / "phases-early-trajectories")

    # 3. the regimes (the paper's init; without --quick also PyTorch's default init)
    for label_r, extra in REGIME_VARIANTS:
        if quick and extra:
            cfg = load_recipe("phases", list(extra))
            where = _regime_where(label_r, cfg)
            claims += [not_run(regime_claim_text(where, c), REGIME_QUANTITY, "--quick runs the Kalra init only")
                       for c in cfg.lrs]
            continue
        with store_in(out, store) as runs:
            got, line = run_regimes(out, label_r, list(extra) + list(overrides or []), quick=quick,
                                    progress=progress, title_quick=quick, store=runs)
        claims += got
        tables.append(line)
    write_claims(out, claims, "Early-training phase diagram (Kalra & Barkeshli 2023): claims", quick=quick)
    (out / "table.txt").write_text("\n\n".join(tables) + "\n")
    return claims


def plot_uv(uv: dict, *, title: str = ""):
    """Fraction of initialisations whose loss rises early, sharpness rises early, or that diverge, against c."""
    import matplotlib.pyplot as plt
    cs = uv["cs"]
    seeds = len(uv["per_seed"])
    rise = np.array([[loss_rises(uv["losses"][i, s]) for s in range(seeds)] for i in range(len(cs))]).mean(1)
    srise = np.array([[sharpness_rises(uv["sharpness"][i, s]) for s in range(seeds)]
                      for i in range(len(cs))]).mean(1)
    div = uv["diverged"].mean(1)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(cs, rise, label="loss rises in 10 steps")
    ax.plot(cs, srise, label="sharpness rises in 10 steps")
    ax.plot(cs, div, label=f"diverges in {uv['steps']} steps")
    for v in (2, 4):
        ax.axvline(v, color="k", ls="--", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("c = η λ₀")
    ax.set_ylabel("fraction of initialisations")
    ax.set_title(title or f"uv model, width {uv['width']}: c_loss = 2, c_max = 4")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
