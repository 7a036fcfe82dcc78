"""Reproduction of step-size tuners vs. progressive sharpening (Roulet, Agarwala, Pedregosa 2023).

Full-batch GD on fc-tanh [200, 200], digits, MSE (0.5 sum over outputs, mean
over examples), with its step eta_t chosen by a tuner (:mod:`eoslab.tuners`),
against constant steps.  What is compared is eta_t * lambda_t, the tuner's
step times the sharpness (the effective sharpness of GD with P_t = I/eta_t,
threshold 2; measured at eval steps with the step the tuner takes there):

* constant GD over a grid of eta (``tuners-gd``; the baseline is the grid's
  best final training loss);
* Armijo backtracking reset to the maximal step 10 at every iteration
  (``tuners-armijo``): the paper finds its sharpness ever-increasing and its
  performance poor in full batch;
* Polyak steps SPS_max with f* = 0 (``tuners-polyak``): at the edge of
  stability (eta_t * lambda_t ~ 2) or slightly beyond, and better than Armijo
  and constant steps;
* PAL with its published defaults (``tuners-pal``, Mutschler & Zell 2020; no
  claim of this paper, reported in the table);
* CDAT with sigma = 1 ("greedy") and sigma = 2 ("on edge") (``tuners-cdat1``,
  ``tuners-cdat2``; Roulet et al. 2024): sigma = 2 sits at eta_t * lambda_t ~ 2
  and beats sigma = 1.

The full recipe also runs the stochastic setting (``tuners-stochastic-*``:
constant steps, Armijo, Polyak, each at batch sizes 64 and 256; the loss and
the sharpness are those of the full training set) where the paper finds the
outcome depends strongly on the batch size, and, when ``EOSLAB_DATA`` is set,
the full-batch methods on CIFAR-10-5k (:data:`CIFAR_OVERRIDES`).

"Final loss" is the median training loss over the last 10% of the steps: at
the edge of stability the loss is non-monotone (Polyak's spikes by 10x), so
the loss after the last step alone would be a draw.  ``table.txt`` gives per
method the final and last losses, the sharpness along the run, eta_t,
eta_t * lambda_t and the evaluations each step cost (loss evaluations and
gradients or Hessian-vector products, the step's own value-and-gradient
included).  The full recipe takes about 10 minutes on 2 CPU cores;
``--quick`` runs the full-batch methods only, for 400 steps
(:data:`QUICK_OVERRIDES`, about 2 minutes).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from eoslab.errors import DataError
from eoslab.experiments.claims import Claim, write_claims
from eoslab.experiments.recipes import load_recipe
from eoslab.plots import LOSS_LABELS, save_figure
from eoslab.store import RunStore
from eoslab.train import TrainResult, train

PAPER = "Roulet, Agarwala, Pedregosa 2023"
PAPER_CDAT = "Roulet et al. 2024"


@dataclasses.dataclass(frozen=True)
class Method:
    key: str
    label: str
    recipe: str


FULL_BATCH = (
    Method("gd", "GD (constant η)", "tuners-gd"),
    Method("armijo", "Armijo", "tuners-armijo"),
    Method("polyak", "Polyak SPS_max", "tuners-polyak"),
    Method("pal", "PAL", "tuners-pal"),
    Method("cdat1", "CDAT σ=1", "tuners-cdat1"),
    Method("cdat2", "CDAT σ=2", "tuners-cdat2"),
)
STOCHASTIC = (
    Method("gd", "SGD (constant η)", "tuners-stochastic-gd"),
    Method("armijo", "Armijo", "tuners-stochastic-armijo"),
    Method("polyak", "Polyak SPS_max", "tuners-stochastic-polyak"),
)
BATCH_SIZES = (64, 256)

#: --quick: fewer steps of the same full-batch recipes (and step curvature off).
QUICK_OVERRIDES = ("train.steps=400", "train.eval_every=25", "probes.step_curvature=false")
#: The CIFAR-10-5k variant (full recipe, EOSLAB_DATA set): the full-batch recipes on cifar10-5k with
#: a constant-step grid around Cohen et al.'s 2/eta range for that setting.
CIFAR_OVERRIDES = ("data.name=cifar10-5k", "train.chunk_size=1000", "train.steps=1000")
CIFAR_GD_LRS = "optimizer.lr=[0.005, 0.01, 0.02, 0.04]"

# Thresholds of the claims (fixed before the runs).
ARMIJO_GROWTH = 1.5  # lambda_end / lambda at 10% of the steps
POLYAK_BAND = (1.8, 3.0)  # "at the edge of stability (2) or slightly beyond"
CDAT_TOLERANCE = 0.15  # |median eta*lambda / 2 - 1|
SPREAD = 2.0  # stochastic: batch size changes some method's loss by 2x relative to another's
FINAL = "final training loss (median over the last 10% of the steps)"


# ---- summaries ----------------------------------------------------------------

def _at_or_after(steps, values, step):
    """The value at the first recorded step >= ``step`` (NaN if none)."""
    hit = np.nonzero(steps >= step)[0]
    return float(values[hit[0]]) if len(hit) else float("nan")


def _median(values) -> float:
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else float("nan")


def _quartiles(values) -> tuple[float, float]:
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return tuple(float(q) for q in np.percentile(values, [25, 75])) if len(values) else (np.nan, np.nan)


def summarise(result: TrainResult, method: Method) -> list[dict]:
    """One row per member (step size or cap) of a run: losses, sharpness, eta_t, eta_t*lambda_t, cost."""
    cfg = result.config
    total = cfg.train.steps
    tuner = cfg.optimizer.name != "gd"
    rows = []
    for i, lr in enumerate(result.lrs):
        m = result.metrics[i]
        bad = result.status[i] != "completed"
        # the last step with good parameters: a diverged member's metrics from its divergence on are bad
        end = result.diverged_step[i] - 1 if bad and result.diverged_step[i] is not None else total

        def series(name, lo=0, hi=end):
            s, v = m.get(name, (np.zeros(0, int), np.zeros(0)))
            keep = (s >= lo) & (s <= hi)
            return s[keep], v[keep]
        ls, lam = series("sharpness")
        es, eff = series("effective_sharpness", 1)  # eta_t * lambda_t at eval steps after the first
        _, eff_half = series("effective_sharpness", total // 2)
        _, eff_early = series("effective_sharpness", 1, total // 4)
        _, tl = series("train_loss")
        # final loss: the median over the last 10% of the steps (at the edge of stability the loss is
        # non-monotone and one step can sit on a spike); full batch: the per-step loss, which is the
        # training loss; minibatches: the full training loss at the eval steps
        _, tail = series("loss" if cfg.optimizer.batch_size == 0 else "train_loss", total - max(1, total // 10))
        _, acc = series("test_accuracy")
        if tuner:
            _, eta_half = series("step_size", total // 2, end - 1)
            _, nv = series("tuner_values", 0, end - 1)
            _, ng = series("tuner_grads", 0, end - 1)
            _, ok = series("tuner_success", 0, end - 1)
        else:
            eta_half, nv, ng, ok = np.asarray([lr]), np.zeros(1), np.zeros(1), np.ones(1)
        _, curv = series("step_curvature", total // 2, end - 1)
        lam10 = _at_or_after(ls, lam, total // 10)
        lam75 = _at_or_after(ls, lam, (3 * total) // 4)
        lam_end = float(lam[-1]) if len(lam) else float("nan")
        rows.append(dict(
            method=method.key, label=method.label, recipe=cfg.name, lr=float(lr),
            batch_size=cfg.optimizer.batch_size, steps=total, status=result.status[i],
            diverged_step=result.diverged_step[i], run_id=result.run_ids[i],
            final_loss=_median(tail) if not bad else float("nan"),
            last_loss=float(tl[-1]) if len(tl) and not bad else float("nan"),
            final_test_accuracy=float(acc[-1]) if len(acc) and not bad else float("nan"),
            lambda0=float(lam[0]) if len(lam) else float("nan"), lambda10=lam10, lambda75=lam75,
            lambda_end=lam_end, growth=lam_end / lam10, late_growth=lam_end / lam75,
            median_eta=_median(eta_half),
            median_edge=_median(eff), median_edge_second_half=_median(eff_half),
            median_edge_first_quarter=_median(eff_early),
            quartiles_edge_second_half=_quartiles(eff_half),
            frac_below_edge=float(np.mean(eff < 2)) if len(eff) else float("nan"),
            median_step_curvature=_median(curv),
            loss_evals=1 + float(np.mean(nv)), grad_evals=1 + float(np.mean(ng)),
            success=float(np.mean(ok)),
        ))
    return rows


def best(rows: list[dict]) -> dict:
    """The member with the lowest final training loss (diverged members excluded)."""
    ok = [r for r in rows if np.isfinite(r["final_loss"])]
    return min(ok, key=lambda r: r["final_loss"]) if ok else rows[0]


def format_table(rows: list[dict], title: str) -> str:
    head = (f"{'method':<18} {'η / cap':>7} {'batch':>5} {'status':>9} {'final loss':>10} {'last loss':>9} "
            f"{'test acc':>8} {'λ0':>6} {'λ@10%':>6} {'λ_end':>6} {'growth':>6} {'med η_t':>8} {'med ηλ':>7} "
            f"{'ηλ 2nd½':>7} {'ηλ<2':>5} {'η·uHu':>6} {'f/step':>6} {'∇/step':>6}")
    lines = [f"[{title}]", head]
    for r in rows:
        status = r["status"] if r["status"] == "completed" else f"div@{r['diverged_step']}"
        lines.append(
            f"{r['label']:<18} {r['lr']:>7.3g} {r['batch_size'] or 'full':>5} {status:>9} {r['final_loss']:>10.4g} "
            f"{r['last_loss']:>9.4g} "
            f"{r['final_test_accuracy']:>8.3f} {r['lambda0']:>6.3g} {r['lambda10']:>6.3g} {r['lambda_end']:>6.3g} "
            f"{r['growth']:>6.2f} {r['median_eta']:>8.3g} {r['median_edge']:>7.3f} "
            f"{r['median_edge_second_half']:>7.3f} {r['frac_below_edge']:>5.2f} {r['median_step_curvature']:>6.3f} "
            f"{r['loss_evals']:>6.2f} {r['grad_evals']:>6.2f}")
    return "\n".join(lines)


TABLE_NOTE = """\
final loss: median training loss over the last 10% of the steps (full batch: every step; minibatches: the
full training loss at the eval steps; diverged: nan); last loss: the full training loss after the last
step; test acc: the test accuracy there; λ: sharpness (top Hessian eigenvalue of the full training loss)
at step 0, at 10% of the steps and at the end; growth = λ_end / λ@10%; med η_t: median step over the second
half; med ηλ: median of η_t·λ_t over the eval steps after step 0 (η_t the step the rule takes there; the
edge of stability is 2); ηλ 2nd½: the same over the second half; ηλ<2: the fraction of eval steps below 2;
η·uHu: median over the second half of η_t·u.Hu/|u|^2 along the step u (nan: not recorded); f/step, ∇/step:
mean loss evaluations and gradient evaluations (HVPs counted as gradients) per step, the step's own value
and gradient included.
"""


# ---- claims -------------------------------------------------------------------

def full_batch_claims(rows: dict[str, list[dict]], tag: str = "") -> list[Claim]:
    """Claims of the full-batch comparison; ``rows`` maps a method key to its summary rows."""
    t = f"[{tag}] " if tag else ""
    claims = []
    arm, pol = rows["armijo"][0], rows["polyak"][0]
    c1, c2 = rows["cdat1"][0], rows["cdat2"][0]
    gd = best(rows["gd"])
    ok = lambda *rs: all(r["status"] == "completed" for r in rs)  # noqa: E731

    claims.append(Claim(
        f"{t}Armijo (full batch, reset to the maximal step at every iteration) keeps increasing the sharpness",
        "λ_end / λ at 10% of the steps (sharpness of the full training loss)", arm["growth"],
        bool(ok(arm) and arm["growth"] >= ARMIJO_GROWTH and arm["late_growth"] > 1), PAPER,
        f"λ: {arm['lambda0']:.3g} at step 0, {arm['lambda10']:.3g} at 10%, {arm['lambda75']:.3g} at 75%, "
        f"{arm['lambda_end']:.3g} at the end; holds if the factor is >= {ARMIJO_GROWTH} and λ still rises over "
        f"the last quarter (λ_end/λ@75% = {arm['late_growth']:.3f})"))
    claims.append(Claim(
        f"{t}Armijo stays below the edge of stability (η_t·λ_t < 2), where the sharpness is free to grow",
        "median of η_t·λ_t over the eval steps", arm["median_edge"],
        bool(ok(arm) and arm["median_edge"] < 2), PAPER,
        f"fraction of eval steps below 2: {arm['frac_below_edge']:.2f}; median over the first quarter "
        f"{arm['median_edge_first_quarter']:.3f}, over the second half {arm['median_edge_second_half']:.3f}; "
        f"median η_t·u.Hu/|u|² along the step (2nd half) {arm['median_step_curvature']:.3f}; holds if the median "
        f"is < 2"))
    lo, hi = POLYAK_BAND
    claims.append(Claim(
        f"{t}Polyak steps (SPS_max, f* = 0) operate at the edge of stability or slightly beyond",
        "median of η_t·λ_t over the second half", pol["median_edge_second_half"],
        bool(ok(pol) and lo <= pol["median_edge_second_half"] <= hi), PAPER,
        f"holds if in [{lo:g}, {hi:g}]; quartiles over the second half "
        f"{pol['quartiles_edge_second_half'][0]:.3g}-{pol['quartiles_edge_second_half'][1]:.3g}; "
        f"fraction of eval steps below 2: {pol['frac_below_edge']:.2f}; median "
        f"η_t·u.Hu/|u|² along the step (2nd half) {pol['median_step_curvature']:.3f}"))

    losses = (f"final losses: GD (best η={gd['lr']:g}) {gd['final_loss']:.4g}, Armijo {arm['final_loss']:.4g}, "
              f"Polyak {pol['final_loss']:.4g}, PAL {rows['pal'][0]['final_loss']:.4g}, "
              f"CDAT σ=1 {c1['final_loss']:.4g}, CDAT σ=2 {c2['final_loss']:.4g}")

    def ratio(a, b):
        return a["final_loss"] / b["final_loss"]
    claims.append(Claim(
        f"{t}Polyak steps outperform Armijo (full batch)", f"{FINAL} Polyak / Armijo",
        ratio(pol, arm), bool(ok(pol) and ratio(pol, arm) < 1), PAPER, f"holds if < 1; {losses}"))
    claims.append(Claim(
        f"{t}Polyak steps outperform the best constant step size (full batch)",
        f"{FINAL} Polyak / best GD over the grid", ratio(pol, gd),
        bool(ok(pol) and ratio(pol, gd) < 1), PAPER,
        f"grid {[r['lr'] for r in rows['gd']]} (diverged members excluded); holds if < 1"))
    claims.append(Claim(
        f"{t}Armijo performs poorly in full batch: worse than the best constant step size",
        f"{FINAL} Armijo / best GD over the grid", ratio(arm, gd),
        bool(ratio(arm, gd) > 1 or not ok(arm)), PAPER, "holds if > 1"))
    claims.append(Claim(
        f"{t}CDAT on edge (σ=2) outperforms greedy CDAT (σ=1) in full batch",
        f"{FINAL} CDAT σ=2 / CDAT σ=1", ratio(c2, c1), bool(ok(c2) and ratio(c2, c1) < 1),
        PAPER_CDAT, f"holds if < 1; sharpness growth λ_end/λ@10%: σ=1 {c1['growth']:.3g}, σ=2 {c2['growth']:.3g}"))
    claims.append(Claim(
        f"{t}CDAT σ=2 operates at the edge of stability: η_t·λ_t ≈ 2",
        "median of η_t·λ_t over the second half", c2["median_edge_second_half"],
        bool(ok(c2) and abs(c2["median_edge_second_half"] / 2 - 1) <= CDAT_TOLERANCE), PAPER_CDAT,
        f"tolerance ±{CDAT_TOLERANCE:.0%}; σ=1 (greedy) sits at {c1['median_edge_second_half']:.3f}"))
    return claims


def stochastic_claims(rows: dict[int, dict[str, list[dict]]]) -> list[Claim]:
    """``rows``: batch size -> method key -> summary rows.  Does the batch size change the outcome?"""
    sizes = sorted(rows)
    labels = {m.key: m.label for m in STOCHASTIC}
    losses = {bs: {labels[k]: best(rs)["final_loss"] for k, rs in by.items()} for bs, by in rows.items()}
    rankings = {bs: " < ".join(sorted(ls, key=lambda k: ls[k])) for bs, ls in losses.items()}
    small, large = sizes[0], sizes[-1]
    ratios = {k: losses[small][k] / losses[large][k] for k in losses[small]}
    finite = [r for r in ratios.values() if np.isfinite(r)]
    spread = max(finite) / min(finite) if finite else float("nan")
    changed = rankings[small] != rankings[large]
    return [Claim(
        "[stochastic] the tuners' results depend strongly on the batch size: the comparison between methods "
        "changes with it",
        f"{FINAL} per batch size and method (constant steps: best of the grid); spread = max/min "
        f"over methods of loss(batch {small}) / loss(batch {large})",
        losses, bool(changed or spread >= SPREAD), PAPER,
        "ranking by final loss: " + "; ".join(f"batch {bs}: {rk}" for bs, rk in rankings.items()) +
        f"; loss(batch {small})/loss(batch {large}): " + ", ".join(f"{k} {v:.3g}" for k, v in ratios.items()) +
        f"; spread {spread:.3g}; holds if the ranking differs between batch {small} and {large} or the spread "
        f"is >= {SPREAD:g}")]


# ---- figures ------------------------------------------------------------------

def _curves(result: TrainResult, i: int, per_step_loss: bool):
    stop = result.diverged_step[i]
    m = result.metrics[i]

    def series(name):
        s, v = m.get(name, (np.zeros(0, int), np.zeros(0)))
        keep = s <= stop if stop is not None else np.ones(len(s), bool)
        return s[keep], v[keep]
    loss = series("loss" if per_step_loss else "train_loss")
    eta = series("step_size") if result.config.optimizer.name != "gd" else (
        np.asarray([0, result.config.train.steps]), np.full(2, result.lrs[i]))
    return dict(loss=loss, sharpness=series("sharpness"), eta=eta, edge=series("effective_sharpness"))


COLOURS = {"gd": "black", "armijo": "tab:red", "polyak": "tab:blue", "pal": "tab:green", "cdat1": "tab:orange",
           "cdat2": "tab:purple"}


def _panel_row(axes, runs, per_step_loss: bool):
    """runs: (method key, label, result, member, bold) -> loss, sharpness, eta_t, eta_t*lambda_t panels."""
    for ax in (axes[0], axes[2], axes[3]):
        ax.set_yscale("log")
    lo, hi = np.inf, 0.0
    for key, label, result, i, bold in runs:
        c = COLOURS.get(key, "tab:brown") if bold else "0.7"
        kw = dict(color=c, lw=1.0 if bold else 0.6, label=label if bold else None)
        cur = _curves(result, i, per_step_loss)
        for ax, name, per_step in ((axes[0], "loss", per_step_loss), (axes[2], "eta", len(cur["eta"][0]) > 2)):
            s, v = cur[name]
            if per_step:  # per-step values oscillate: faint raw values, a running geometric mean on top
                ax.plot(s, v, color=c, lw=0.3, alpha=0.3)
                ax.plot(s, _running_geomean(v, max(1, len(v) // 100)), **kw)
            else:
                ax.plot(s, v, **kw)
        axes[1].plot(*cur["sharpness"], **kw)
        axes[3].plot(*cur["edge"], **kw)
        loss = cur["loss"][1]
        loss = loss[np.isfinite(loss) & (loss > 0)]
        if len(loss):
            lo, hi = min(lo, float(loss.min())), max(hi, float(loss[0]))
    if hi > 0:  # a diverging constant step would squash the other curves
        axes[0].set_ylim(lo / 2, 10 * hi)
    axes[3].axhline(2.0, color="k", ls="--", lw=1.0)
    for ax in axes:
        ax.set_xlabel("step")


def _running_geomean(values, half: int):
    """Geometric mean of the positive finite values in the window [i - half, i + half] at every i."""
    v = np.asarray(values, float)
    ok = np.isfinite(v) & (v > 0)
    window = np.ones(2 * half + 1)
    total = np.convolve(np.where(ok, np.log(np.where(ok, v, 1.0)), 0.0), window, "same")
    count = np.convolve(ok.astype(float), window, "same")
    return np.where(count > 0, np.exp(total / np.maximum(count, 1)), np.nan)


def _label_axes(axes, loss_name: str, per_step_loss: bool):
    what = "train loss (line: running geometric mean)" if per_step_loss else "full train loss (eval steps)"
    axes[0].set_ylabel(f"{what}\n{LOSS_LABELS.get(loss_name, loss_name)}", fontsize=7)
    axes[1].set_ylabel("sharpness λ_t")
    axes[2].set_ylabel("step size η_t = |Δθ|/|g|\n(line: running geometric mean)", fontsize=8)
    axes[3].set_ylabel("η_t·λ_t  (dashed: edge of stability, 2)")
    axes[3].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))


def _method_runs(results: list[tuple[Method, TrainResult]]):
    runs = []
    for method, res in results:
        if method.key == "gd":
            rows = summarise(res, method)
            b = rows.index(best(rows))
            runs += [("gd", f"{method.label} η={lr:g}", res, i, False) for i, lr in enumerate(res.lrs) if i != b]
            runs.append(("gd", f"{method.label}, best η={res.lrs[b]:g}", res, b, True))
        else:
            runs += [(method.key, method.label if len(res.lrs) == 1 else f"{method.label} cap {lr:g}", res, i, True)
                     for i, lr in enumerate(res.lrs)]
    # grey (non-best GD) curves first so the coloured ones draw on top
    return sorted(runs, key=lambda r: r[4])


def plot_full_batch(results: list[tuple[Method, TrainResult]], title: str):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    _panel_row(axes, _method_runs(results), per_step_loss=True)
    _label_axes(axes, results[0][1].config.loss.name, True)
    fig.suptitle(title + "  (grey: the other constant step sizes)")
    fig.tight_layout()
    return fig


def plot_stochastic(results: dict[int, list[tuple[Method, TrainResult]]], title: str):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(results), 4, figsize=(18, 3.6 * len(results)), squeeze=False)
    for row, (bs, res) in zip(axes, sorted(results.items())):
        _panel_row(row, _method_runs(res), per_step_loss=False)
        _label_axes(row, res[0][1].config.loss.name, False)
        row[0].set_title(f"batch size {bs}", fontsize=9, loc="left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---- the reproduction ---------------------------------------------------------

def _title(cfg, setting: str) -> str:
    return (f"Step-size tuners ({PAPER}): {cfg.model.name} {list(cfg.model.widths)} on {cfg.data.name}, "
            f"{setting}")


def run_methods(methods, overrides: list[str], out: Path, store: RunStore, progress: bool,
                per_method: dict[str, list[str]] | None = None) -> list[tuple[Method, TrainResult]]:
    results = []
    for method in methods:
        extra = [*overrides, *(per_method or {}).get(method.key, [])]
        cfg = load_recipe(method.recipe, extra)
        results.append((method, train(cfg, results_dir=out, store=store, progress=progress)))
    return results


def reproduce(out_dir: str | Path, *, quick: bool = False, progress: bool = True,
              overrides: list[str] | None = None, batch_sizes: tuple[int, ...] = BATCH_SIZES) -> list[Claim]:
    """Run the recipes; write tuners*.png/pdf, table.txt, claims.md and claims.json into ``out_dir``.

    ``overrides`` apply to every recipe (after :data:`QUICK_OVERRIDES` with ``quick``);
    ``batch_sizes`` are those of the stochastic sweep (skipped with ``quick`` or when empty).
    """
    out = Path(out_dir)
    extra = [*(QUICK_OVERRIDES if quick else ()), *(overrides or [])]
    cifar = not quick and bool(os.environ.get("EOSLAB_DATA"))
    for m in (*FULL_BATCH, *STOCHASTIC):  # every config is valid before anything runs
        load_recipe(m.recipe, extra)
    for m in FULL_BATCH if cifar else ():
        load_recipe(m.recipe, [*extra, *CIFAR_OVERRIDES, *([CIFAR_GD_LRS] if m.key == "gd" else [])])
    claims: list[Claim] = []
    tables = []
    with RunStore.in_dir(out) as store:
        results = run_methods(FULL_BATCH, extra, out, store, progress)
        rows = {m.key: summarise(res, m) for m, res in results}
        tables.append(format_table([r for rs in rows.values() for r in rs], "full batch"))
        claims += full_batch_claims(rows)
        cfg = results[0][1].config
        save_figure(plot_full_batch(results, _title(cfg, "full batch")), out / "tuners")

        if not quick and batch_sizes:
            by_batch, sto_rows = {}, {}
            for bs in batch_sizes:
                by_batch[bs] = run_methods(STOCHASTIC, [*extra, f"optimizer.batch_size={bs}"], out, store,
                                           progress)
                sto_rows[bs] = {m.key: summarise(res, m) for m, res in by_batch[bs]}
                tables.append(format_table([r for rs in sto_rows[bs].values() for r in rs],
                                           f"stochastic, batch size {bs}"))
            claims += stochastic_claims(sto_rows)
            cfg = by_batch[batch_sizes[0]][0][1].config
            save_figure(plot_stochastic(by_batch, _title(cfg, "minibatches (loss and sharpness: full "
                                                              "training set)")), out / "tuners-stochastic")

        if cifar:
            try:
                results = run_methods(FULL_BATCH, [*extra, *CIFAR_OVERRIDES], out, store, progress,
                                      per_method={"gd": [CIFAR_GD_LRS]})
            except DataError as e:
                claims.append(Claim("[CIFAR-10-5k] the full-batch claims on CIFAR-10-5k", "not run", str(e),
                                    None, PAPER))
            else:
                rows = {m.key: summarise(res, m) for m, res in results}
                tables.append(format_table([r for rs in rows.values() for r in rs], "full batch, CIFAR-10-5k"))
                claims += full_batch_claims(rows, "CIFAR-10-5k")
                cfg = results[0][1].config
                save_figure(plot_full_batch(results, _title(cfg, "full batch")), out / "tuners-cifar10")
    write_claims(out, claims, f"Step-size tuners and progressive sharpening ({PAPER}; CDAT: {PAPER_CDAT}): "
                                 "claims")
    (out / "table.txt").write_text("\n\n".join(tables) + "\n\n" + TABLE_NOTE)
    return claims
