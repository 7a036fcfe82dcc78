"""Reproduction of the classic edge of stability (Cohen et al. 2021).

Full-batch GD on fc-tanh [200, 200], digits, MSE (0.5 sum over outputs, mean
over examples), PyTorch-default init, eta in {0.1, 0.2, 0.3}: the sharpness
starts well below 2/eta, rises (progressive sharpening), reaches 2/eta and
hovers there (edge of stability) while the training loss keeps falling,
non-monotonically.  With heavy-ball momentum the sharpness settles at
(2 + 2 beta)/eta.  ``--quick`` runs the GD recipe only; the full recipe also
runs heavy ball, cross-entropy, and CIFAR-10-5k when its files are present.
A recipe that does not run still has its claims in the table, with
``holds = None`` and the reason.

Every sharpness value behind a claim is a converged one
(:func:`~eoslab.experiments.claims.certified_series`); the claims carry how
many were used and left out and the largest relative error estimate.  The
criteria, fixed before the runs (the paper's statements, Cohen et al. 2021,
Sections 3-4):

* at initialisation the sharpness is below the threshold: lambda_0 < threshold;
* progressive sharpening: max lambda / lambda_0 > 1.5 and the sharpness
  reaches 0.95 threshold;
* edge of stability: the median sharpness / threshold over the late window
  (steps 2000-3000, else the second half of the run) is within the recipe's
  tolerance of 1;
* the training loss keeps falling there, non-monotonically: the median loss
  over the last tenth of the late window is below the median over its first
  tenth, and the per-step loss rises (by more than 0.1%) at some steps of the
  window.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from eoslab.errors import DataError
from eoslab.experiments import statistics as st
from eoslab.experiments.base import store_in
from eoslab.experiments.claims import Claim, certified_series, quick_title, write_claims
from eoslab.train.recipes import load_recipe
from eoslab.plots import plot_curvature_runs, save_figure
from eoslab.train import TrainResult, train

PAPER = "Cohen et al. 2021"
TITLE = "Edge of stability (Cohen et al. 2021): claims"

# Thresholds of the claims (fixed before the runs).
SHARPENING = 1.5  # max sharpness / lambda_0
AT_EDGE = 0.95  # "reaches the threshold": first sharpness >= 0.95 threshold
RISE = 1e-3  # a per-step loss rise counts when above 0.1% (float32 rounding is ~1e-7)
CE_BAND = (0.8, 1.1)  # cross-entropy: median sharpness / threshold over the second half


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str  # configs/NAME.toml
    label: str
    tolerance: float | None  # |median ratio - 1| of the edge claim; None: the cross-entropy band claim


RECIPES = (
    Recipe("eos", "GD", 0.05),
    Recipe("eos-momentum", "heavy-ball", 0.10),
    Recipe("eos-ce", "GD, cross-entropy", None),
    Recipe("eos-cifar10", "GD, CIFAR-10-5k", 0.05),
)
QUICK_RECIPES = ("eos",)
LATE = (2000, 3000)  # the paper's late window, when the run is that long


def late_window(total: int) -> tuple[int, int]:
    """Steps 2000-3000 when the run has 3000 steps or more, else its second half."""
    return LATE if total >= LATE[1] else (total // 2, total)


def summarise_member(metrics: dict, eta: float, threshold: float, total: int, status: str = "completed",
                     diverged_step: int | None = None) -> dict:
    """One member's statistics from its series (certified sharpness values only)."""
    end = diverged_step - 1 if status != "completed" and diverged_step is not None else total
    s, lam, acc = certified_series(metrics, "sharpness")
    s, lam = st.window(s, lam, 0, end)
    ls, loss = st.window(*metrics.get("loss", (np.zeros(0, int), np.zeros(0))), 0, end)
    lo, hi = late_window(total)
    tenth = max(1, (hi - lo) // 10)
    _, late = st.window(s, lam, lo, hi)
    _, half = st.window(s, lam, total // 2, total)
    w_steps, w_loss = st.window(ls, loss, lo, hi)
    lambda0 = float(lam[0]) if len(s) and s[0] == 0 else float("nan")
    return dict(
        eta=eta, threshold=threshold, status=status, diverged_step=diverged_step,
        lambda0=lambda0,
        final_sharpness=float(lam[-1]) if len(lam) else float("nan"),
        max_sharpness=float(np.nanmax(lam)) if len(lam) else float("nan"),
        median_ratio_second_half=st.median(half) / threshold,
        median_ratio_late=st.median(late) / threshold, late_samples=len(st.finite(late)),
        late_window=(lo, hi),
        loss_window_start=st.median(st.window(ls, loss, lo, lo + tenth - 1)[1]),
        loss_window_end=st.median(st.window(ls, loss, hi - tenth, hi)[1]),
        loss_rises=st.fraction_of_rises(w_steps, w_loss, RISE),
        final_loss=float(loss[-1]) if len(loss) else float("nan"),
        first_step_at_edge=st.first_step_at(s, lam, AT_EDGE * threshold),
        accuracy=acc,
    )


def summarise(result: TrainResult) -> list[dict]:
    """Per step size: eta, threshold, lambda_0, final sharpness, median sharpness / threshold, ..."""
    total = result.config.train.steps
    return [summarise_member(result.metrics[i], float(lr), result.thresholds[i], total, result.status[i],
                             result.diverged_step[i]) for i, lr in enumerate(result.lrs)]


def format_table(rows: list[dict], rule: str = "gd") -> str:
    head = f"{'eta':>6} {'threshold':>9} {'lambda_0':>9} {'final λ1':>9} {'median λ1/thr (2nd half)':>25} {'final loss':>11}"
    lines = [f"[{rule}]", head]
    for r in rows:
        lines.append(f"{r['eta']:>6.3g} {r['threshold']:>9.3g} {r['lambda0']:>9.3g} {r['final_sharpness']:>9.3g} "
                     f"{r['median_ratio_second_half']:>25.3f} {r['final_loss']:>11.4g}")
    return "\n".join(lines)


# ---- claims -------------------------------------------------------------------

def _statements(label: str, eta: float, tolerance: float | None, total: int) -> list[tuple[str, str]]:
    """(claim, quantity) of every claim about one step size of a recipe, in table order."""
    tag = f"[{label}, eta={eta:g}]"
    lo, hi = late_window(total)
    if tolerance is None:
        return [(f"{tag} the sharpness rises to and hovers near 2/eta (less cleanly with cross-entropy, whose "
                 f"sharpness eventually falls)", "median sharpness / threshold over the second half")]
    window = f"steps {lo}-{hi}"
    return [
        (f"{tag} the sharpness at initialisation is below the threshold", "lambda_0 / threshold"),
        (f"{tag} progressive sharpening: the sharpness rises from lambda_0 to the threshold",
         f"max sharpness / lambda_0; first step with sharpness >= {AT_EDGE:g} threshold"),
        (f"{tag} edge of stability: the sharpness hovers at the threshold",
         f"median sharpness / threshold over the late window ({window})"),
        (f"{tag} the training loss keeps falling at the edge of stability, non-monotonically",
         f"median loss over the last tenth / over the first tenth of the late window ({window})"),
    ]


def not_run(recipe: Recipe, lrs, total: int, reason: str) -> list[Claim]:
    """The claims of a recipe that did not run: ``holds = None`` and the reason."""
    return [Claim(c, q, None, None, PAPER, f"not run: {reason}")
            for eta in lrs for c, q in _statements(recipe.label, eta, recipe.tolerance, total)]


def _no_values(r: dict, what: str) -> str:
    return f"not tested: no converged sharpness value {what}"


def gd_claims(rows: list[dict], label: str, tolerance: float, total: int = 3000) -> list[Claim]:
    """The four claims per step size (criteria in the module docstring)."""
    claims = []
    for r in rows:
        (c0, q0), (c1, q1), (c2, q2), (c3, q3) = _statements(label, r["eta"], tolerance, total)
        thr, acc = r["threshold"], r["accuracy"]
        bad = r["status"] != "completed"
        note = f"; run {r['status']} at step {r['diverged_step']}" if bad else ""
        lam0 = r["lambda0"]
        claims.append(Claim(
            c0, q0, lam0 / thr, bool(lam0 < thr) if np.isfinite(lam0) else None, PAPER,
            f"lambda_0={lam0:.4g}, threshold={thr:.4g}" if np.isfinite(lam0) else _no_values(r, "at step 0"),
            accuracy=acc))
        rose = r["max_sharpness"] / lam0
        claims.append(Claim(
            c1, q1, rose, bool(rose > SHARPENING and r["first_step_at_edge"] is not None) if np.isfinite(rose)
            else None, PAPER,
            f"first step at the edge: {r['first_step_at_edge']}; holds if the factor is > {SHARPENING:g} and "
            f"the sharpness reaches {AT_EDGE:g} threshold{note}", accuracy=acc))
        ratio = r["median_ratio_late"]
        claims.append(Claim(
            c2, q2, ratio, (not bad and bool(abs(ratio - 1) <= tolerance)) if np.isfinite(ratio) else None, PAPER,
            f"tolerance ±{tolerance:.0%}; {r['late_samples']} values in the window{note}"
            if np.isfinite(ratio) else _no_values(r, "in the late window"), accuracy=acc))
        fell = r["loss_window_end"] / r["loss_window_start"]
        rises = r["loss_rises"]
        claims.append(Claim(
            c3, q3, fell, bool(not bad and fell < 1 and rises > 0), PAPER,
            f"loss {r['loss_window_start']:.4g} -> {r['loss_window_end']:.4g}; the per-step loss rose (by more "
            f"than {RISE:.1%}) at {rises:.1%} of the steps of the window; holds if the ratio is < 1 and some "
            f"steps rose{note}"))
    return claims


def ce_claims(rows: list[dict], label: str, total: int) -> list[Claim]:
    """Cross-entropy: the median sharpness / threshold over the second half within :data:`CE_BAND`."""
    lo, hi = CE_BAND
    claims = []
    for r in rows:
        ((c, q),) = _statements(label, r["eta"], None, total)
        ratio = r["median_ratio_second_half"]
        claims.append(Claim(c, q, ratio, bool(lo <= ratio <= hi) if np.isfinite(ratio) else None, PAPER,
                            f"band {lo:g}-{hi:g}" if np.isfinite(ratio) else _no_values(r, "in the second half"),
                            accuracy=r["accuracy"]))
    return claims


# ---- the reproduction ---------------------------------------------------------

def _skip_reason(recipe: Recipe, quick: bool) -> str | None:
    if quick and recipe.name not in QUICK_RECIPES:
        return "--quick runs the GD recipe only"
    if recipe.name == "eos-cifar10" and not os.environ.get("EOSLAB_DATA"):
        return "EOSLAB_DATA is not set (the CIFAR-10 files are needed)"
    return None


def reproduce(out_dir: str | Path, *, quick: bool = False, progress: bool = True, store=None,
              overrides: list[str] | None = None, force: bool = False) -> list[Claim]:
    """Run the recipe(s), write eos.png/pdf, claims.md and claims.json into ``out_dir``."""
    out = Path(out_dir)
    configs = [(r, load_recipe(r.name, overrides)) for r in RECIPES]  # every config is valid first
    claims: list[Claim] = []
    tables = []
    with store_in(out, store) as store:
        for recipe, cfg in configs:
            total = cfg.train.steps
            reason = _skip_reason(recipe, quick)
            if reason is not None:
                claims += not_run(recipe, cfg.lrs, total, reason)
                continue
            try:
                result = train(cfg, results_dir=out, store=store, progress=progress, force=force)
            except DataError as e:
                claims += not_run(recipe, cfg.lrs, total, str(e))
                continue
            rows = summarise(result)
            tables.append(format_table(rows, recipe.label))
            claims += (gd_claims(rows, recipe.label, recipe.tolerance, total) if recipe.tolerance is not None
                       else ce_claims(rows, recipe.label, total))
            fig = plot_curvature_runs(
                [dict(label=f"η={lr:g}", metrics=result.metrics[i], threshold=result.thresholds[i],
                      diverged_step=result.diverged_step[i]) for i, lr in enumerate(result.lrs)],
                title=quick_title(f"{cfg.name}: {cfg.model.name} {list(cfg.model.widths)} on {cfg.data.name}",
                                  quick),
                loss_name=cfg.loss.name)
            save_figure(fig, out / cfg.name)
    write_claims(out, claims, TITLE, quick=quick)
    (out / "table.txt").write_text("\n\n".join(tables) + "\n")
    return claims
