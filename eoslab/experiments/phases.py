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
  within the first 10 steps;
* ``c_barrier``: the smallest c at which the training loss on the segment
  from theta_0 to theta_T exceeds the initial loss, T = 10 (the end of the
  early window; the table also gives it for T = 100, ``c_barrier_100``; a
  run that diverges counts as crossing a barrier);
* ``c_max``: the largest c that does not diverge (within T steps); here the
  grid value below the smallest diverging c.

The paper finds c_loss <= c_sharp <= c_barrier <= c_max; c_loss = 2 at small
d/w, growing with d/w, so that a *sharpness-reduction* phase 2 < c < c_loss
opens up (the loss falls while the sharpness drops) as the network gets
deeper and narrower.  The uv model ``f = v.u x / sqrt(n)`` is the analytic
check: c_loss = 2 and c_max = 4.

What runs (``reproduce``):

1. the uv model (:class:`~eoslab.models.toy.UVModel`, width 512, one data
   point, float64): GD for 1000 steps on a fine grid of c (step 2^0.01) and 8
   initialisations, in one ``vmap``;
2. the sweeps ``configs/sweeps/phases-early.toml`` (10 steps, the loss and
   the sharpness after every step, the loss barrier at step 10) and
   ``phases-late.toml`` (100 steps, no sharpness, the loss barrier at the end) over c, d in {2, 4, 8}, w in
   {16, 64, 128} and 3 seeds on digits (fc-relu without bias, init
   ``kalra``, ``mse-mean``, SGD batch 512; :mod:`eoslab.sweep`, resumable);
3. the recipe ``configs/phases.toml``: 3000 SGD steps at d = 4, w = 128 for
   c in {0.5, 1, 2, 4}, with the sharpness after every step, whose
   trajectories are cut into the four regimes (:func:`classify_regimes`);
   without ``--quick`` also with PyTorch's default init (variance
   1/(3 fan_in)): on digits the paper's init gives a sharpness that falls
   for thousands of steps, PyTorch's init one that sharpens.

``--quick`` takes 2 seeds, d in {2, 8}, w in {16, 128}, c = 2^0, 2^0.5, ...,
2^6 and 800 steps for the regimes.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from eoslab.experiments.claims import Claim, write_claims
from eoslab.experiments.recipes import RECIPES_DIR, load_recipe

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

def first_c(cs: np.ndarray, hit: np.ndarray) -> float:
    """The smallest c (of a sorted grid) with ``hit``; inf if none."""
    idx = np.nonzero(hit)[0]
    return float(cs[idx[0]]) if len(idx) else math.inf


def last_stable_c(cs: np.ndarray, diverged: np.ndarray) -> float:
    """c_max: the grid value just below the smallest diverging c (the largest c if none diverges; nan if all do)."""
    idx = np.nonzero(diverged)[0]
    if not len(idx):
        return float(cs[-1])
    return float(cs[idx[0] - 1]) if idx[0] > 0 else math.nan


def loss_rises(losses: np.ndarray, window: int = EARLY_STEPS) -> bool:
    """The loss rises above its initial value within ``window`` steps (a NaN / inf loss counts as rising)."""
    early = losses[1:window + 1]
    return bool(np.any(~np.isfinite(early)) or np.any(early > losses[0]))


def sharpness_rises(sharpness: np.ndarray, window: int = EARLY_STEPS) -> bool:
    early = sharpness[1:window + 1]
    return bool(np.any(~np.isfinite(early)) or np.any(early > sharpness[0]))


@dataclasses.dataclass(frozen=True)
class Critical:
    """Critical values of one (model, seed) over a grid of c."""
    c_loss: float
    c_sharp: float
    c_barrier: float
    c_max: float
    c_barrier_100: float = math.nan


def spread(values: Sequence[float]) -> dict:
    """Median, min, max and count of finite values (inf where none is finite)."""
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if not len(v):
        return dict(median=math.inf, min=math.inf, max=math.inf, n=0)
    return dict(median=float(np.median(v)), min=float(v.min()), max=float(v.max()), n=int(len(v)))


# ---- the uv model ----------------------------------------------------------

def uv_phase_diagram(*, width: int = UV_WIDTH, steps: int = UV_STEPS, seeds: int = UV_SEEDS,
                     cs: np.ndarray | None = None, y: float = 0.0) -> dict:
    """GD on the uv model for every (c, initialisation) in one vmap; per-seed c_loss, c_sharp, c_max."""
    import jax
    import jax.numpy as jnp

    from eoslab.models.toy import UVModel, require_x64
    require_x64()
    model = UVModel(width=width, x=1.0, y=y)
    cs = 2.0 ** np.arange(0.5, 2.5 + 1e-9, 0.01) if cs is None else np.asarray(cs, float)
    theta0 = model.init(jax.random.PRNGKey(0), seeds)
    lam0 = jax.vmap(model.sharpness)(theta0)

    def run(theta, eta):
        def step(th, _):
            return th - eta * model.grad(th), (model.loss(th), model.sharpness(th))
        _, (losses, sharp) = jax.lax.scan(step, theta, None, length=steps)
        return losses, sharp

    grid = jnp.asarray(cs)[:, None] / lam0[None, :]
    losses, sharp = jax.jit(jax.vmap(jax.vmap(run)))(jnp.broadcast_to(theta0, (len(cs), *theta0.shape)), grid)
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

def _sweep_spec(name: str, quick: bool):
    from eoslab.sweep import grid_from_dict, load_grid
    spec = load_grid(RECIPES_DIR / "sweeps" / f"{name}.toml")
    if quick:
        axes = tuple((k, grid_from_dict({"grid": {k: QUICK_GRID[k]}}).axes[0][1]) for k, _ in spec.axes)
        spec = dataclasses.replace(spec, name=f"{spec.name}-quick", axes=axes, seeds=tuple(range(QUICK_SEEDS)))
    return spec


def _depth_width(cfg: dict) -> tuple[int, int]:
    widths = cfg["model"]["widths"]
    return len(widths) + 1, int(widths[0])


def collect(runs_early: list, runs_late: list) -> dict:
    """Per (d, w): the grid of c, per-seed critical values and the early trajectories."""
    table: dict = {}
    for rec, m in runs_early:
        key = _depth_width(rec.config)
        c = float(rec.config["optimizer"]["lr"])
        entry = table.setdefault(key, {}).setdefault(rec.seed, {}).setdefault(c, {})
        entry["early_loss"] = m.get("train_loss", (np.zeros(0), np.zeros(0)))[1]
        entry["early_sharpness"] = m.get("sharpness", (np.zeros(0), np.zeros(0)))[1]
        entry["eta"] = float(m["lr"][1][0]) if "lr" in m else math.nan
        entry["early_status"] = rec.status
        barrier = m.get("line_max_loss", (np.zeros(0), np.zeros(0)))[1]
        entry["early_line_max_loss"] = float(barrier[0]) if len(barrier) else math.nan
    for rec, m in runs_late:
        key = _depth_width(rec.config)
        c = float(rec.config["optimizer"]["lr"])
        entry = table.setdefault(key, {}).setdefault(rec.seed, {}).setdefault(c, {})
        loss = m.get("train_loss", (np.zeros(0), np.zeros(0)))[1]
        entry["late_status"] = rec.status
        entry["late_initial_loss"] = float(loss[0]) if len(loss) else math.nan
        barrier = m.get("line_max_loss", (np.zeros(0), np.zeros(0)))[1]
        entry["late_line_max_loss"] = float(barrier[0]) if len(barrier) else math.nan
    out = {}
    for key, seeds in sorted(table.items()):
        per_seed = {}
        for seed, by_c in sorted(seeds.items()):
            cs = np.asarray(sorted(by_c))
            rows = [by_c[c] for c in cs]
            loss_hit = np.array([loss_rises(r["early_loss"]) if len(r.get("early_loss", [])) else False
                                 for r in rows])
            sharp_hit = np.array([sharpness_rises(r["early_sharpness"]) if len(r.get("early_sharpness", []))
                                  else False for r in rows])
            div = np.array([r.get("late_status") != "completed" for r in rows])
            early_div = np.array([r.get("early_status") != "completed" for r in rows])
            barrier = np.array([not r.get("early_line_max_loss", math.nan) <= r["early_loss"][0]
                                if len(r.get("early_loss", [])) else False for r in rows])
            barrier_late = np.array([not r.get("late_line_max_loss", math.nan) <= r.get("late_initial_loss", math.nan)
                                     for r in rows])
            per_seed[seed] = Critical(first_c(cs, loss_hit), first_c(cs, sharp_hit),
                                      first_c(cs, barrier | early_div), last_stable_c(cs, div),
                                      first_c(cs, barrier_late | div))
        out[key] = dict(per_seed=per_seed, runs=seeds)
    return out


def summarise(collected: dict) -> list[dict]:
    rows = []
    for (d, w), entry in collected.items():
        crit = list(entry["per_seed"].values())
        row = dict(depth=d, width=w, ratio=d / w)
        for name in ("c_loss", "c_sharp", "c_barrier", "c_max", "c_barrier_100"):
            row[name] = spread([getattr(c, name) for c in crit])
        row["ordered_seeds"] = sum(c.c_loss <= c.c_sharp <= c.c_max for c in crit)
        row["seeds"] = len(crit)
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
    if s["n"] == 0:
        return "—"
    return f"{s['median']:.3g} [{s['min']:.3g}, {s['max']:.3g}]"


def format_table(rows: list[dict]) -> str:
    head = (f"{'d':>3} {'w':>4} {'d/w':>7}  {'c_loss':>22} {'c_sharp':>22} {'c_barrier':>22} {'c_max':>22}"
            f" {'c_barrier_100':>22}  ordered")
    lines = ["critical values: median [min, max] over seeds", head]
    for r in sorted(rows, key=lambda r: r["ratio"]):
        lines.append(f"{r['depth']:>3} {r['width']:>4} {r['ratio']:>7.4f}  {_fmt(r['c_loss']):>22} "
                     f"{_fmt(r['c_sharp']):>22} {_fmt(r['c_barrier']):>22} {_fmt(r['c_max']):>22} "
                     f"{_fmt(r['c_barrier_100']):>22}  "
                     f"{r['ordered_seeds']}/{r['seeds']}")
    return "\n".join(lines)


def uv_claims(uv: dict) -> list[Claim]:
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
            f"[{s['min']:.4g}, {s['max']:.4g}]; largest relative error {worst:.2%} (tolerance {UV_TOLERANCE:.0%})"))
    return out


def digits_claims(rows: list[dict], label: str) -> list[Claim]:
    claims = []
    for r in sorted(rows, key=lambda r: r["ratio"]):
        cl, cs, cm = (r[n]["median"] for n in ("c_loss", "c_sharp", "c_max"))
        claims.append(Claim(
            f"[{label}, d={r['depth']}, w={r['width']}] c_loss <= c_sharp <= c_max",
            "median critical values over seeds (seeds where the order holds)",
            dict(c_loss=cl, c_sharp=cs, c_max=cm), bool(cl <= cs <= cm), PAPER,
            f"c_loss {_fmt(r['c_loss'])}, c_sharp {_fmt(r['c_sharp'])}, c_max {_fmt(r['c_max'])}; "
            f"ordered in {r['ordered_seeds']}/{r['seeds']} seeds"))
    ratios = [r["ratio"] for r in rows]
    closs = [r["c_loss"]["median"] for r in rows]
    rho = spearman(ratios, closs)
    small, large = min(rows, key=lambda r: r["ratio"]), max(rows, key=lambda r: r["ratio"])
    claims.append(Claim(
        f"[{label}] c_loss grows with d/w (the sharpness-reduction phase 2 < c < c_loss opens up)",
        "Spearman correlation of median c_loss with d/w; c_loss at the smallest and largest d/w",
        rho, bool(np.isfinite(rho) and rho > 0 and large["c_loss"]["median"] > small["c_loss"]["median"]), PAPER,
        f"d/w={small['ratio']:.3g}: c_loss {_fmt(small['c_loss'])}; d/w={large['ratio']:.3g}: "
        f"c_loss {_fmt(large['c_loss'])}"))
    claims.append(Claim(
        f"[{label}] c_loss is about 2 at the smallest d/w",
        "median c_loss at the smallest d/w (the c grid's resolution is its ratio 2^0.25 or 2^0.5)",
        small["c_loss"]["median"], bool(1.5 <= small["c_loss"]["median"] <= 2.9), PAPER,
        f"d={small['depth']}, w={small['width']}"))
    ok_barrier = [r["c_sharp"]["median"] <= r["c_barrier"]["median"] <= r["c_max"]["median"] for r in rows]
    claims.append(Claim(
        f"[{label}] c_sharp <= c_barrier <= c_max",
        "(d, w) where the medians are ordered", f"{sum(ok_barrier)}/{len(rows)}",
        bool(all(ok_barrier)), PAPER, "c_barrier: loss on the segment theta_0 -> theta_10 above the initial loss"))
    return claims


def regime_claims(result, onsets: list[dict], label: str) -> list[Claim]:
    claims = []
    for i, c in enumerate(result.lrs):
        o = onsets[i]
        value = {r.split()[0]: o[r] for r in REGIMES}
        claims.append(Claim(
            f"[{label}, c={c:g}] the four regimes follow each other: early transient, intermediate saturation, "
            f"progressive sharpening, edge of stability",
            "first step of each regime (classify_regimes on the sharpness after every step, log-resampled)", value,
            regimes_in_order(o) if c < 2 else None, PAPER,
            "checked for c < 2 (above, the early catapult and the edge can merge)" if c >= 2 else
            f"η = {result.step_sizes[i]:.4g}, status {result.status[i]}; each of the first three regimes must "
            f"last a factor 2 in 1 + t"))
    return claims


def reproduce(out_dir: str | Path, *, quick: bool = False, progress: bool = True, executor=None,
              overrides: list[str] | None = None) -> list[Claim]:
    """Run the uv check, the two digits sweeps and the regime runs; write figures, table.txt and the claims."""
    import jax

    from eoslab.plots import save_figure
    from eoslab.store import RunStore
    from eoslab.sweep import run_sweep, sweep_runs
    from eoslab.train import train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    claims: list[Claim] = []
    tables = []

    # 1. the uv model
    with jax.enable_x64(True):
        uv = uv_phase_diagram()
    claims += uv_claims(uv)
    save_figure(plot_uv(uv), out / "phases-uv")
    tables.append("uv model (width {w}, {n} initialisations): c_loss {cl}, c_sharp {cs}, c_max {cm}".format(
        w=uv["width"], n=len(uv["per_seed"]), cl=_fmt(spread([c.c_loss for c in uv["per_seed"]])),
        cs=_fmt(spread([c.c_sharp for c in uv["per_seed"]])), cm=_fmt(spread([c.c_max for c in uv["per_seed"]]))))

    # 2. the sweeps
    specs = [_sweep_spec("phases-early", quick), _sweep_spec("phases-late", quick)]
    with RunStore.in_dir(out) as store:
        for spec in specs:
            summary = run_sweep(spec, store=store, executor=executor, progress=progress)
            tables.append(summary.line())
        collected = collect(sweep_runs(store, specs[0].name), sweep_runs(store, specs[1].name))
    rows = summarise(collected)
    label = "digits, fc-relu, SGD 512"
    claims += digits_claims(rows, label)
    tables.append(format_table(rows))
    save_figure(plot_phase_diagram(rows, title=f"phase diagram: {label}, mse-mean"), out / "phases-diagram")
    widest = max(collected, key=lambda k: k[0] / k[1])
    entry = collected[widest]
    seed = min(entry["runs"])
    cs_all = sorted(entry["runs"][seed])
    rep = [cs_all[0], min(cs_all, key=lambda c: abs(c - 2.5)), min(cs_all, key=lambda c: abs(c - 6)),
           min(cs_all, key=lambda c: abs(c - 16)), min(cs_all, key=lambda c: abs(c - 45))]
    save_figure(plot_early_trajectories(entry, seed, sorted(set(rep)),
                                        title=f"first {EARLY_STEPS} steps, d={widest[0]}, w={widest[1]}, seed {seed}"),
                out / "phases-early-trajectories")

    # 3. the regimes (the paper's init; without --quick also PyTorch's default init, which sharpens on digits)
    variants = [("Kalra init", [])] + ([] if quick else [("PyTorch init", ['model.init="pytorch"'])])
    for label, extra in variants:
        cfg = load_recipe("phases", (overrides or []) + extra)
        if quick:
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=QUICK_REGIME_STEPS))
        with RunStore.in_dir(out) as store:
            result = train(cfg, results_dir=out, store=store, progress=progress)
        onsets = []
        for i in range(len(result.lrs)):
            s, lam = result.series(i, "sharpness")
            onsets.append(classify_regimes(s, lam, result.step_sizes[i]))
        d, w = len(cfg.model.widths) + 1, cfg.model.widths[0]
        where = f"{label}, d={d}, w={w}, {cfg.train.steps} steps"
        claims += regime_claims(result, onsets, where)
        tables.append(f"regimes, {where} (first step of each): " + "; ".join(
            f"c={c:g}: " + ", ".join(f"{r.split()[0]} {onsets[i][r]}" for r in REGIMES)
            for i, c in enumerate(result.lrs)))
        save_figure(plot_regimes(result, onsets, title=f"sharpness over training: {where}, SGD 512"),
                    out / f"phases-regimes-{cfg.model.init}")
    write_claims(out, claims, "Early-training phase diagram (Kalra & Barkeshli 2023): claims")
    (out / "table.txt").write_text("\n\n".join(tables) + "\n")
    return claims


def plot_uv(uv: dict):
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
    ax.set_title(f"uv model, width {uv['width']}: c_loss = 2, c_max = 4")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
