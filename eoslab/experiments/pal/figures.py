"""The figures of the PAL reproduction: the line profiles of a run, and the training of every setting."""
from __future__ import annotations

import numpy as np

from eoslab.experiments.claims import quick_title
from eoslab.plots import LOSS_LABELS, suptitle


def plot_profiles(tag: str, records: list[dict], minibatch: bool, alpha: float, num: int = 4, quick: bool = False):
    """Two rows (wide grid, local grid) x ``num`` profile steps: batch and full loss, fits, minimisers, step."""
    import matplotlib.pyplot as plt
    shown = [r for r in records if r.get("wide") is not None]
    idx = np.unique(np.linspace(0, len(shown) - 1, min(num, len(shown))).round().astype(int))
    shown = [shown[i] for i in idx]
    fig, axes = plt.subplots(2, len(shown), figsize=(3.2 * len(shown), 7), squeeze=False, layout="constrained")
    names = ("batch", "full") if minibatch else ("full",)
    for col, r in enumerate(shown):
        for row, grid in enumerate(("wide", "local")):
            ax, g = axes[row][col], r.get(grid)
            if g is None:
                ax.set_axis_off()
                continue
            s = np.asarray(g["steps"])
            inside = np.abs(s) <= g["window"] * (1 + 1e-6)
            for k, name in enumerate(names):
                c = f"C{k}"
                ax.plot(s, g["losses"][name], "-", color=c, lw=1.3, label=f"{name} (R²={g['r2'][name]:.4f})")
                x = s[inside]
                ax.plot(x, g["a"][name] * x ** 2 + g["b"][name] * x + g["c"][name], "--", color=c, lw=1.0)
                m = r.get(f"minimiser_{name}", np.nan)
                if np.isfinite(m) and s[0] <= m <= s[-1]:
                    ax.axvline(m, color=c, ls="-.", lw=0.8)
                elif np.isfinite(m):  # off this grid (local grid shorter than the distance to the minimum)
                    ax.plot([], [], ls="-.", color=c, lw=0.8, label=f"{name} s*={m:.3g} (off the panel)")
            ax.axvline(r["step_taken"], color="k", ls=":", lw=1.2, label=f"PAL step s_t={r['step_taken']:.3g}")
            ax.axvspan(-g["window"], g["window"], color="0.9", zorder=0)
            if grid == "wide":  # the interesting part: up to past the step and the measuring point
                right = max(2 * g["window"], 1.3 * r["step_taken"])
                seen = (s <= right) & np.isfinite(np.asarray(g["losses"][names[0]]))
                vals = np.concatenate([np.asarray(g["losses"][n])[seen] for n in names])
                vals = vals[np.isfinite(vals)]
                if len(vals):
                    pad = 0.05 * (vals.max() - vals.min() or 1.0)
                    ax.set_ylim(vals.min() - pad, vals.max() + pad)
                ax.set_xlim(s[0], right)
            ax.set_title(f"step {r['step']} ({grid}: fit over |s| ≤ {g['window']:.3g})", fontsize=9)
            ax.set_xlabel("s (distance along d/|d|)", fontsize=9)
            ax.tick_params(labelsize=8.5)
            ax.legend(fontsize=8)
    axes[0][0].set_ylabel("loss along the line")
    axes[1][0].set_ylabel("loss along the line")
    suptitle(fig, quick_title(f"{tag}: loss along PAL's update direction (dashed: parabola fit on the shaded "
                              f"window; dash-dot: exact minimiser; dotted: PAL's step = α·vertex, α={alpha:.3g})",
                              quick), fontsize=10)
    return fig


def plot_training(panels: list[dict], title: str = ""):
    """One row per setting: training loss and step size eta_t of PAL runs and the constant-step grid."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(panels), 2, figsize=(12, 3.4 * len(panels)), squeeze=False, layout="constrained")
    for (ax_l, ax_s), panel in zip(axes, panels):
        for k, (label, res) in enumerate(panel["pal"]):
            c = f"C{k}"
            s, v = res.series(0, "train_loss")
            ax_l.plot(s, v, color=c, lw=1.8, label=label)
            s, v = res.series(0, "step_size")
            if len(v):
                ax_s.plot(s, v, color=c, lw=0.5, alpha=0.35)
                win = max(1, len(v) // 50)
                smooth = np.convolve(v, np.ones(win) / win, mode="valid")
                ax_s.plot(s[win - 1:], smooth, color=c, lw=1.5, label=f"{label} (running mean of {win})")
        base = panel["baseline"]
        greys = np.linspace(0.15, 0.7, len(base.lrs))
        for i, lr in enumerate(base.lrs):
            c = str(greys[i])
            s, v = base.series(i, "train_loss")
            stop = base.diverged_step[i]
            keep = s <= stop if stop is not None else np.ones(len(s), bool)
            ax_l.plot(s[keep], v[keep], color=c, lw=1.0, ls="--",
                      label=f"constant η={lr:g}" + (" (diverged)" if stop is not None else ""))
            ax_s.axhline(lr, color=c, lw=1.0, ls="--")
        ax_l.set_yscale("log")
        ax_s.set_yscale("log")
        ax_l.set_xlabel("step")
        ax_s.set_xlabel("step")
        ax_l.set_ylabel(f"train loss ({LOSS_LABELS.get(panel['loss'], panel['loss'])})", fontsize=9)
        ax_s.set_ylabel("step size η_t = |Δθ| / |g|", fontsize=9)
        ax_l.set_title(panel["label"], fontsize=10)
        ax_s.set_title(f"{panel['label']}: PAL's η_t; dashed: the constant steps", fontsize=10)
        ax_l.legend(fontsize=8)
        ax_s.legend(fontsize=8)
    if title:
        suptitle(fig, title, fontsize=11)
    return fig
