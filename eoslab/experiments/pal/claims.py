"""The claims of a PAL run: the summary of its line profiles, the claims and their thresholds.

Claims (thresholds fixed before measuring in the constants below), per PAL run:

1. the batch loss along the update direction is locally almost parabolic:
   median R^2 >= 0.95 and 10th percentile >= 0.80 over the profiles, in
   PAL's window |s| <= mu; the same at the step's scale |s| <= 2 s_t;
2. the line is locally convex: the fitted a > 0 in >= 90% of the profiles
   (window |s| <= mu);
3. PAL's step lands near the line minimum: PAL steps alpha = 1/0.6 times its
   vertex on purpose, so on an exact parabola s_t / s* = alpha; holds if the
   median of s_t / s* (batch loss) lies within a factor 1.5 of alpha, i.e.
   the vertex of PAL's parabola is within a factor 1.5 of the exact minimiser;
4. PAL is competitive with tuned SGD / GD: final training loss (the same
   number of steps; a PAL step costs one extra forward pass) at most 2x
   that of the best constant step of the grid.

The minibatch settings run seeds 0, 1 and 2 (PAL and its baseline grid in
each; :data:`~eoslab.experiments.pal.settings.SEEDS`): a claim holds there when it holds in every seed where
it is testable, its value is the median over the seeds, and its detail gives
each seed's value and their range
(:func:`~eoslab.experiments.claims.across_seeds`).  Full-batch settings are
deterministic and run once.  The claims rest on line profiles and losses, not
on eigenvalues.
"""
from __future__ import annotations

import numpy as np

from eoslab.experiments.claims import Claim
from eoslab.experiments.pal.settings import PAPER, PalRun, Setting, recipe_config
from eoslab.train import TrainResult

R2_MEDIAN = 0.95  # claim 1: median R^2 at least this ...
R2_P10 = 0.80  # ... and 10th percentile at least this
CONVEX_FRACTION = 0.90  # claim 2
RATIO_FACTOR = 1.5  # claim 3: median s_t / s* within this factor of alpha
LOSS_FACTOR = 2.0  # claim 4: PAL's final loss at most this times the best constant step's


def _values(records: list[dict], grid: str, key: str, name: str) -> np.ndarray:
    out = []
    for r in records:
        g = r.get(grid)
        out.append(g[key][name] if g is not None else np.nan)
    return np.asarray(out, float)


def summarise_profiles(records: list[dict], alpha: float, minibatch: bool) -> dict:
    """Medians, 10th percentiles and fractions over the profiles of one run (NaNs left out)."""
    own = "batch" if minibatch else "full"
    out = dict(n=len(records), loss=own)
    for grid in ("wide", "local"):
        for name in ("batch", "full"):
            src = own if name == "batch" else "full"
            r2 = _values(records, grid, "r2", src)
            a = _values(records, grid, "a", src)
            ok = np.isfinite(r2)
            out[f"r2_{grid}_{name}_median"] = float(np.median(r2[ok])) if ok.any() else float("nan")
            out[f"r2_{grid}_{name}_p10"] = float(np.percentile(r2[ok], 10)) if ok.any() else float("nan")
            out[f"r2_{grid}_{name}_n"] = int(ok.sum())
            lin = _values(records, grid, "r2_linear", src)
            out[f"r2_linear_{grid}_{name}_median"] = (float(np.median(lin[np.isfinite(lin)]))
                                                      if np.isfinite(lin).any() else float("nan"))
            fa = np.isfinite(a)
            out[f"convex_{grid}_{name}"] = float(np.mean(a[fa] > 0)) if fa.any() else float("nan")
    s = np.asarray([r["step_taken"] for r in records], float)
    for name in ("batch", "full"):
        star = np.asarray([r.get(f"minimiser_{name}", np.nan) for r in records], float)
        ok = (s > 0) & np.isfinite(star) & (star > 0)
        ratio = s[ok] / star[ok]
        out[f"ratio_{name}_median"] = float(np.median(ratio)) if ok.any() else float("nan")
        out[f"ratio_{name}_p10"] = float(np.percentile(ratio, 10)) if ok.any() else float("nan")
        out[f"ratio_{name}_p90"] = float(np.percentile(ratio, 90)) if ok.any() else float("nan")
        out[f"ratio_{name}_n"] = int(ok.sum())
        out[f"minimiser_{name}_beyond"] = int(sum(r.get(f"minimiser_{name}_from") == "beyond the grid"
                                                  for r in records))
    out["vertex_ratio_median"] = out["ratio_batch_median"] / alpha
    branches = [r["branch"] for r in records]
    out["branches"] = {b: branches.count(b) for b in sorted(set(branches))}
    checks = [abs(r[k]) for r in records for k in ("check_l0", "check_lmu") if k in r]
    out["max_check"] = float(max(checks)) if checks else float("nan")
    return out



def final_loss(result: TrainResult, member: int) -> float:
    """The training loss at the last evaluation; inf for a diverged member."""
    if result.status[member] == "diverged":
        return float("inf")
    _, v = result.series(member, "train_loss")
    return float(v[-1]) if len(v) else float("nan")


def claim_texts(tag: str, loss_word: str, alpha: float, counts: dict | None = None) -> list[tuple[str, str]]:
    """``(claim, quantity)`` of the five claims of one PAL run, in table order (run or not run).

    ``counts``: the number of profiles behind the wide and local fits and the ratio (``n`` when not run).
    """
    n = {"wide": "n", "local": "n", "ratio": "n", **(counts or {})}
    out = []
    for window, grid in (("|s| ≤ μ", "wide"), ("|s| ≤ 2 s_t", "local")):
        out.append((f"{tag} the {loss_word} loss along the update direction is locally almost a parabola ({window})",
                    f"median R² of the least-squares parabola over {window} ({n[grid]} profiles)"))
    out.append((f"{tag} the {loss_word} loss along the update direction is locally convex",
                "fraction of profiles whose fitted parabola over |s| ≤ μ has a > 0"))
    out.append((f"{tag} PAL's step lands near the minimum of the line (it steps α = {alpha:.3g} × its parabola's "
                f"vertex)",
                f"median of s_t / s* (PAL's step / exact line-search minimiser of the {loss_word} loss, "
                f"{n['ratio']} profiles)"))
    out.append((f"{tag} PAL is competitive with a tuned constant step",
                "final training loss of PAL / that of the best constant step of the grid (same number of steps)"))
    return out


def claims_for_run(tag: str, summary: dict, alpha: float, pal_loss: float, best: tuple[float, float],
                   grid_losses: dict) -> list[Claim]:
    """The four claims of one PAL run (module docstring), thresholds fixed in the module constants."""
    loss_word = "minibatch" if summary["loss"] == "batch" else "full-batch"
    texts = claim_texts(tag, loss_word, alpha, dict(wide=summary["r2_wide_batch_n"],
                                                    local=summary["r2_local_batch_n"], ratio=summary["ratio_batch_n"]))
    claims = []
    for (claim, quantity), grid in zip(texts[:2], ("wide", "local")):
        med, p10 = summary[f"r2_{grid}_batch_median"], summary[f"r2_{grid}_batch_p10"]
        line = summary[f"r2_linear_{grid}_batch_median"]
        holds = bool(med >= R2_MEDIAN and p10 >= R2_P10) if np.isfinite(med) else None
        if holds and line >= R2_MEDIAN:  # a straight line passes the same test: the window cannot tell
            holds = None
        claims.append(Claim(
            claim, quantity, med, holds, PAPER,
            f"10th percentile {p10:.4f}; full-batch loss along the same lines: median "
            f"{summary[f'r2_{grid}_full_median']:.4f}, 10th percentile {summary[f'r2_{grid}_full_p10']:.4f}; "
            f"a straight line over the same window: median R² {summary[f'r2_linear_{grid}_batch_median']:.4f} "
            f"(near 1: the window is too short to test the curvature); "
            f"holds if median ≥ {R2_MEDIAN} and 10th percentile ≥ {R2_P10}, not testable (n/a) when the straight "
            f"line's median R² is ≥ {R2_MEDIAN} too"))
    conv = summary["convex_wide_batch"]
    claims.append(Claim(
        *texts[2], conv, bool(conv >= CONVEX_FRACTION) if np.isfinite(conv) else None, PAPER,
        f"over |s| ≤ 2 s_t: {summary['convex_local_batch']:.3f}; full-batch loss: "
        f"{summary['convex_wide_full']:.3f} / {summary['convex_local_full']:.3f}; holds if ≥ {CONVEX_FRACTION}"))
    ratio = summary["ratio_batch_median"]
    lo, hi = alpha / RATIO_FACTOR, alpha * RATIO_FACTOR
    claims.append(Claim(
        *texts[3], ratio, bool(lo <= ratio <= hi) if np.isfinite(ratio) else None, PAPER,
        f"vertex / s* = {summary['vertex_ratio_median']:.3f}; 10th-90th percentile of s_t / s*: "
        f"{summary['ratio_batch_p10']:.3f}-{summary['ratio_batch_p90']:.3f}; against the full-batch minimiser "
        f"{summary['ratio_full_median']:.3f}; PAL's branches {summary['branches']}; minimiser beyond the grid "
        f"{summary['minimiser_batch_beyond']}x; holds if in [{lo:.3g}, {hi:.3g}] (α within a factor "
        f"{RATIO_FACTOR})"))
    best_lr, best_loss = best
    rel = pal_loss / best_loss if best_loss > 0 else float("nan")
    holds = None if not np.isfinite(best_loss) else bool(rel <= LOSS_FACTOR)  # no baseline finished: untestable
    claims.append(Claim(
        *texts[4], rel, holds, PAPER,
        f"PAL {pal_loss:.4g}; best η={best_lr:g}: {best_loss:.4g}; grid "
        + ", ".join(f"η={k:g}: {v:.3g}" for k, v in grid_losses.items())
        + f"; holds if ≤ {LOSS_FACTOR:g}; a PAL step costs one extra forward pass"))
    return claims


def not_run_claims(setting: Setting, run: PalRun, reason: str) -> list[Claim]:
    """The rows of a PAL run this mode does not train: its five claims with holds = None and the reason."""
    cfg = recipe_config(run.recipe, list(setting.overrides) + list(run.overrides), setting.suffix + run.suffix)
    loss_word = "full-batch" if cfg.optimizer.batch_size == 0 else "minibatch"
    tag = f"[{setting.label}, {run.label}]"
    return [Claim(claim, quantity, "not run", None, PAPER, reason)
            for claim, quantity in claim_texts(tag, loss_word, cfg.optimizer.hp.alpha)]
