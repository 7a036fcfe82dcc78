"""Figures in the style of the edge-of-stability papers (Cohen et al. 2021, Fig. 1).

Two panels: the training loss and the sharpness against the step, one colour
per run (step size), with a dashed horizontal line at each run's stability
threshold (2/eta for GD, (2 + 2 beta)/eta for heavy ball, ...).  Written as
PNG and PDF.  The loss definition is given on the axis (sharpness scales with
it; docs/design.md, "Conventions").
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# Short names of the loss conventions for axis labels (every loss is a mean over examples; docs/design.md).
LOSS_LABELS = {"mse": "MSE, ½Σ over outputs", "mse-mean": "MSE, mean over outputs", "ce": "cross-entropy"}


def plot_curvature_runs(runs: Sequence[dict], *, title: str = "", loss_name: str = "mse",
                        log_loss: bool = True):
    """``runs``: dicts with ``label``, ``metrics`` ({name: (steps, values)}) and ``threshold``.

    A run's ``curvature`` names the metric drawn against its threshold:
    ``sharpness`` (default; the SGD family) or ``effective_sharpness``
    (lambda_1(P^{-1} H) of adaptive rules, eta_t lambda_1 of tuners, whose
    thresholds are on it).

    Returns the matplotlib figure (loss panel, with the legend of the runs;
    sharpness panel, with a legend of the unconverged solves where there are any).
    """
    fig, (ax_loss, ax_sharp) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        c = colours[i % len(colours)]
        m = run["metrics"]
        if "loss" in m:
            s, v = m["loss"]
            ax_loss.plot(s, v, color=c, lw=1.0, label=run["label"])
        key = run.get("curvature", "sharpness")
        if key in m:
            s, v = m[key]
            ax_sharp.plot(s, v, color=c, lw=1.2, label=run["label"])
            bad = _unconverged(m, s, key)
            if bad.any():  # budget-capped solves: drawn, but marked as not certified
                ax_sharp.plot(np.asarray(s)[bad], np.asarray(v)[bad], "x", color="k", ms=4,
                              label=f"{run['label']}: not converged ({int(bad.sum())})")
        if run.get("threshold") is not None:
            ax_sharp.axhline(run["threshold"], color=c, ls="--", lw=1.0)
        if run.get("diverged_step") is not None:
            ax_loss.axvline(run["diverged_step"], color=c, ls=":", lw=1.0)
    if log_loss:
        ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel(f"train loss ({LOSS_LABELS.get(loss_name, loss_name)})")
    ax_sharp.set_xlabel("step")
    keys = {run.get("curvature", "sharpness") for run in runs}
    what = ("sharpness λ₁(H)" if keys == {"sharpness"} else "effective sharpness λ₁(P⁻¹H)"
            if keys == {"effective_sharpness"} else "λ₁(H) or λ₁(P⁻¹H)")
    ax_sharp.set_ylabel(f"{what} (dashed: threshold)")
    ax_loss.legend(fontsize=9)
    marks = [(h, lab) for h, lab in zip(*ax_sharp.get_legend_handles_labels()) if ": not converged (" in lab]
    if marks:  # the runs' colours are keyed on the loss panel; here only the uncertified solves
        ax_sharp.legend(*zip(*marks), fontsize=9)
    if title:
        suptitle(fig, title, fontsize=12)
    return fig


def suptitle(fig, text: str, *, fontsize: float = 11):
    """``fig.suptitle(text)``, wrapped onto more lines where one line would be wider than the figure."""
    import textwrap
    t = fig.suptitle(text, fontsize=fontsize)
    try:
        width = t.get_window_extent(fig.canvas.get_renderer()).width
    except (AttributeError, RuntimeError):  # a canvas without a renderer: estimate (DejaVu Sans, ~0.55 em a glyph)
        width = len(text) * 0.55 * fontsize * fig.dpi / 72
    room = 0.96 * fig.bbox.width
    if width > room and len(text) > 1:
        t.set_text(textwrap.fill(text, max(20, int(len(text) * room / width))))
    return t


def _unconverged(metrics: dict, steps, key: str = "sharpness") -> np.ndarray:
    """Mask of the values of ``key`` whose solve did not converge (or has no record of it)."""
    if f"{key}_converged" not in metrics:
        return np.zeros(len(steps), bool)
    conv = dict(zip(*(np.asarray(a).tolist() for a in metrics[f"{key}_converged"])))
    return np.asarray([conv.get(t, 0.0) != 1.0 for t in np.asarray(steps).tolist()], bool)


def save_figure(fig, path: str | Path) -> list[Path]:
    """Save as PNG and PDF next to each other (``path`` without or with either suffix)."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix in (".png", ".pdf") else path
    base.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in (".png", ".pdf"):
        fig.savefig(base.with_suffix(ext), dpi=130)
        out.append(base.with_suffix(ext))
    plt.close(fig)
    return out


def runs_from_store(store, run_ids: Sequence[int]) -> list[dict]:
    """Plot inputs for stored runs: label from the step size and rule, threshold from the metrics, and the
    curvature its threshold is on (the effective sharpness for adaptive rules and tuners)."""
    from eoslab.rules import RULES
    runs = []
    for rid in run_ids:
        rec = store.get_run(rid)
        metrics = store.get_metrics(rid)
        thr = metrics.get("threshold")
        opt = rec.config.get("optimizer", {})
        label = f"{opt.get('name', '?')} η={opt.get('lr')}"
        rule = RULES.get(opt.get("name"))
        effective = rule is not None and (rule.adaptive or rule.tuner) and "effective_sharpness" in metrics
        runs.append(dict(label=label, metrics=metrics, diverged_step=rec.diverged_step,
                         curvature="effective_sharpness" if effective else "sharpness",
                         threshold=float(np.asarray(thr[1])[0]) if thr is not None and len(thr[1]) else None))
    return runs
