"""The four regimes of training (early transient, intermediate saturation, progressive sharpening, edge of
stability): their onsets on a certified sharpness series, the regime runs, their figure and claims."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from eoslab.experiments.claims import Accuracy, Claim, quick_title
from eoslab.experiments.phases.critical import PAPER
from eoslab.train.recipes import load_recipe

EDGE = 0.9  # eta * lambda >= EDGE * 2: at the edge of stability
FLAT = 0.1  # |d log lambda / d log t| below this: saturated
QUICK_REGIME_STEPS = 800


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


def plot_regimes(result, onsets: list[dict], *, title: str = ""):
    """eta * lambda_t against log time for each c, with the onset of each regime marked on its curve.

    One colour per c; a marker per regime at its first step; the edge
    eta * lambda = 2 dashed; the legend to the right of the axes.
    """
    import matplotlib.pyplot as plt

    from eoslab.plots import suptitle
    fig, ax = plt.subplots(figsize=(8.5, 4.5), layout="constrained")
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
    ax.set_ylabel(r"$\eta\,\lambda_t$")
    ax.legend(fontsize=8.5, loc="center left", bbox_to_anchor=(1.02, 0.5),
              frameon=False)
    if title:
        suptitle(fig, title, fontsize=11)
    return fig


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


def regime_where(label: str, cfg) -> str:
    return f"{label}, d={len(cfg.model.widths) + 1}, w={cfg.model.widths[0]}, {cfg.train.steps} steps"


def run_regimes(out: Path, label: str, overrides: list[str], *, quick: bool, progress: bool,
                title_quick: bool, store, force: bool = False) -> tuple[list[Claim], str]:
    """Train the regime recipe (``configs/phases.toml``) and classify each c's certified sharpness."""
    from eoslab.plots import save_figure
    from eoslab.train import train
    cfg = load_recipe("phases", ([f"train.steps={QUICK_REGIME_STEPS}"] if quick else []) + overrides)
    result = train(cfg, results_dir=out, store=store, progress=progress, force=force)
    fits = [certified_regimes(result.metrics[i], result.step_sizes[i]) for i in range(len(result.lrs))]
    onsets, accs = [f[0] for f in fits], [f[1] for f in fits]
    where = regime_where(label, cfg)
    line = f"regimes, {where} (first step of each): " + "; ".join(
        f"c={c:g}: " + ", ".join(f"{r.split()[0]} {onsets[i][r]}" for r in REGIMES)
        + f" [{accs[i].used} certified, {accs[i].unconverged} not]" for i, c in enumerate(result.lrs))
    save_figure(plot_regimes(result, onsets, title=quick_title(f"sharpness over training: {where}, SGD 512",
                                                                title_quick)),
                out / f"phases-regimes-{cfg.model.init}")
    return regime_claims(result, onsets, accs, where), line
