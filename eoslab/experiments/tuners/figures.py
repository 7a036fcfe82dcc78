"""The figures of the tuners reproduction: loss, sharpness, eta_t and eta_t * lambda_t of every method.

Per-step series oscillate at the edge of stability, so they are drawn faint
with a running geometric mean on top.
"""
from __future__ import annotations

import numpy as np

from eoslab.experiments.tuners.settings import Method
from eoslab.experiments.tuners.summaries import best, summarise
from eoslab.plots import LOSS_LABELS, suptitle
from eoslab.train import TrainResult


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
        for ax, name, per_step in ((axes[0], "loss", per_step_loss), (axes[2], "eta", len(cur["eta"][0]) > 2),
                                   (axes[3], "edge", _dense(cur["edge"][0]))):
            s, v = cur[name]
            if per_step:  # per-step values oscillate: faint raw values, a running geometric mean on top
                ax.plot(s, v, color=c, lw=0.3, alpha=0.3)
                ax.plot(s, _running_geomean(v, max(1, len(v) // 100)), **kw)
            else:
                ax.plot(s, v, **kw)
        axes[1].plot(*cur["sharpness"], **kw)
        loss = cur["loss"][1]
        loss = loss[np.isfinite(loss) & (loss > 0)]
        if len(loss):
            lo, hi = min(lo, float(loss.min())), max(hi, float(loss[0]))
    if hi > 0:  # a diverging constant step would squash the other curves
        axes[0].set_ylim(lo / 2, 10 * hi)
    axes[3].axhline(2.0, color="k", ls="--", lw=1.0)
    for ax in axes:
        ax.set_xlabel("step")


def _dense(steps) -> bool:
    """Whether a series is recorded at (almost) every step."""
    return len(steps) > 2 and float(np.median(np.diff(steps))) == 1.0


def _running_geomean(values, half: int):
    """Geometric mean of the positive finite values in the window [i - half, i + half] at every i."""
    v = np.asarray(values, float)
    ok = np.isfinite(v) & (v > 0)
    window = np.ones(2 * half + 1)
    total = np.convolve(np.where(ok, np.log(np.where(ok, v, 1.0)), 0.0), window, "same")
    count = np.convolve(ok.astype(float), window, "same")
    return np.where(count > 0, np.exp(total / np.maximum(count, 1)), np.nan)


def _label_axes(fig, axes, loss_name: str, per_step_loss: bool):
    """The four panels' labels, and one legend for them under the panels."""
    what = "train loss (line: running geometric mean)" if per_step_loss else "full train loss (eval steps)"
    axes[0].set_ylabel(f"{what}\n{LOSS_LABELS.get(loss_name, loss_name)}", fontsize=9)
    axes[1].set_ylabel("sharpness λ_t")
    axes[2].set_ylabel("step size η_t = |Δθ|/|g|\n(line: running geometric mean)", fontsize=9)
    axes[3].set_ylabel("η_t·λ_t  (dashed: edge of stability, 2)", fontsize=9)
    handles, labels = axes[3].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, max(1, len(labels))), fontsize=8.5,
               frameon=False)


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
    """Loss, sharpness, eta_t and eta_t * lambda_t of every method, in a 2 x 2 grid."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), layout="constrained")
    axes = axes.ravel()
    _panel_row(axes, _method_runs(results), per_step_loss=True)
    _label_axes(fig, axes, results[0][1].config.loss.name, True)
    suptitle(fig, title + "  (grey: the other constant step sizes)", fontsize=11)
    return fig


def plot_stochastic(results: dict[int, list[tuple[Method, TrainResult]]], title: str):
    """The same 2 x 2 grid per batch size, one below the other."""
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(11, 8 * len(results)), layout="constrained")
    for sub, (bs, res) in zip(np.atleast_1d(fig.subfigures(len(results), 1)), sorted(results.items())):
        axes = sub.subplots(2, 2).ravel()
        _panel_row(axes, _method_runs(res), per_step_loss=False)
        _label_axes(sub, axes, res[0][1].config.loss.name, False)
        sub.suptitle(f"batch size {bs}", fontsize=10, x=0.02, ha="left")
    suptitle(fig, title, fontsize=11)
    return fig
