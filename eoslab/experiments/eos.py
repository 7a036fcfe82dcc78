"""Reproduction of the classic edge of stability (Cohen et al. 2021).

Full-batch GD on fc-tanh [200, 200], digits, MSE (0.5 sum over outputs, mean
over examples), PyTorch-default init, eta in {0.1, 0.2, 0.3}: the sharpness
starts well below 2/eta, rises (progressive sharpening), reaches 2/eta and
hovers there (edge of stability) while the training loss keeps falling,
non-monotonically.  With heavy-ball momentum the sharpness settles at
(2 + 2 beta)/eta.  ``--quick`` runs the GD recipe only; the full recipe also
runs heavy ball, cross-entropy, and CIFAR-10-5k when its files are present.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from eoslab.errors import DataError
from eoslab.experiments.claims import Claim, write_claims
from eoslab.experiments.recipes import load_recipe
from eoslab.plots import plot_curvature_runs, save_figure
from eoslab.store import RunStore
from eoslab.train import TrainResult, train

PAPER = "Cohen et al. 2021"


def _window(steps, values, lo, hi):
    sel = (steps >= lo) & (steps <= hi)
    return values[sel]


def summarise(result: TrainResult) -> list[dict]:
    """Per step size: eta, threshold, lambda_0, final sharpness, median sharpness / threshold, ..."""
    rows = []
    total = result.config.train.steps
    for i, lr in enumerate(result.lrs):
        s, lam = result.series(i, "sharpness")
        ls, loss = result.series(i, "loss")
        thr = result.thresholds[i]
        half = _window(s, lam, total // 2, total)
        late = _window(s, lam, 2000, 3000) if total >= 3000 else half
        loss_2000 = loss[ls == min(2000, total // 2)]
        rows.append(dict(
            eta=lr, threshold=thr, status=result.status[i], diverged_step=result.diverged_step[i],
            lambda0=float(lam[0]) if len(lam) else float("nan"),
            final_sharpness=float(lam[-1]) if len(lam) else float("nan"),
            max_sharpness=float(np.nanmax(lam)) if len(lam) else float("nan"),
            median_ratio_second_half=float(np.nanmedian(half) / thr) if len(half) else float("nan"),
            median_ratio_late=float(np.nanmedian(late) / thr) if len(late) else float("nan"),
            loss_window_start=float(loss_2000[0]) if len(loss_2000) else float("nan"),
            final_loss=float(loss[-1]) if len(loss) else float("nan"),
            first_step_at_edge=_first_at(s, lam, 0.95 * thr),
        ))
    return rows


def _first_at(steps, values, level):
    hit = np.nonzero(values >= level)[0]
    return int(steps[hit[0]]) if len(hit) else None


def format_table(rows: list[dict], rule: str = "gd") -> str:
    head = f"{'eta':>6} {'threshold':>9} {'lambda_0':>9} {'final λ1':>9} {'median λ1/thr (2nd half)':>25} {'final loss':>11}"
    lines = [f"[{rule}]", head]
    for r in rows:
        lines.append(f"{r['eta']:>6.3g} {r['threshold']:>9.3g} {r['lambda0']:>9.3g} {r['final_sharpness']:>9.3g} "
                     f"{r['median_ratio_second_half']:>25.3f} {r['final_loss']:>11.4g}")
    return "\n".join(lines)


def gd_claims(rows: list[dict], label: str, tolerance: float) -> list[Claim]:
    claims = []
    for r in rows:
        eta, thr = r["eta"], r["threshold"]
        claims.append(Claim(
            f"[{label}, eta={eta:g}] the sharpness at initialisation is below the threshold",
            "lambda_0 / threshold", r["lambda0"] / thr, r["lambda0"] < thr, PAPER,
            f"lambda_0={r['lambda0']:.3g}, threshold={thr:.3g}"))
        rose = r["max_sharpness"] / r["lambda0"]
        claims.append(Claim(
            f"[{label}, eta={eta:g}] progressive sharpening: the sharpness rises from lambda_0 to the threshold",
            "max sharpness / lambda_0; first step with sharpness >= 0.95 threshold", rose,
            bool(rose > 1.5 and r["first_step_at_edge"] is not None), PAPER,
            f"first step at the edge: {r['first_step_at_edge']}"))
        claims.append(Claim(
            f"[{label}, eta={eta:g}] edge of stability: the sharpness hovers at the threshold",
            "median sharpness / threshold over the late window (steps 2000-3000, else the second half)",
            r["median_ratio_late"], bool(abs(r["median_ratio_late"] - 1) <= tolerance), PAPER,
            f"tolerance ±{tolerance:.0%}"))
        claims.append(Claim(
            f"[{label}, eta={eta:g}] the training loss keeps falling at the edge of stability",
            "loss at the end / loss at the start of the late window", r["final_loss"] / r["loss_window_start"],
            bool(r["final_loss"] < r["loss_window_start"]), PAPER, "non-monotone within the window"))
    return claims


def reproduce(out_dir: str | Path, *, quick: bool = False, progress: bool = True,
              overrides: list[str] | None = None) -> list[Claim]:
    """Run the recipe(s), write eos.png/pdf, claims.md and claims.json into ``out_dir``."""
    out = Path(out_dir)
    recipes = [("eos", "GD", 0.05)]
    if not quick:
        recipes += [("eos-momentum", "heavy-ball", 0.10), ("eos-ce", "GD, cross-entropy", None)]
        if os.environ.get("EOSLAB_DATA"):
            recipes.append(("eos-cifar10", "GD, CIFAR-10-5k", 0.05))
    configs = [(load_recipe(name, overrides), label, tol) for name, label, tol in recipes]
    claims: list[Claim] = []
    tables = []
    with RunStore.in_dir(out) as store:
        for cfg, label, tol in configs:
            try:
                result = train(cfg, results_dir=out, store=store, progress=progress)
            except DataError as e:
                claims.append(Claim(f"[{label}] recipe {cfg.name}", "not run", str(e), None, PAPER))
                continue
            rows = summarise(result)
            tables.append(format_table(rows, label))
            if tol is not None:
                claims += gd_claims(rows, label, tol)
            else:
                for r in rows:
                    claims.append(Claim(
                        f"[{label}, eta={r['eta']:g}] the sharpness rises to and hovers near 2/eta "
                        f"(less cleanly with cross-entropy, whose sharpness eventually falls)",
                        "median sharpness / threshold over the second half", r["median_ratio_second_half"],
                        bool(0.8 <= r["median_ratio_second_half"] <= 1.1), PAPER, "band 0.8-1.1"))
            fig = plot_curvature_runs(
                [dict(label=f"η={lr:g}", metrics=result.metrics[i], threshold=result.thresholds[i],
                      diverged_step=result.diverged_step[i]) for i, lr in enumerate(result.lrs)],
                title=f"{cfg.name}: {cfg.model.name} {list(cfg.model.widths)} on {cfg.data.name}",
                loss_name=cfg.loss.name)
            save_figure(fig, out / cfg.name)
    write_claims(out, claims, "Edge of stability (Cohen et al. 2021): claims")
    (out / "table.txt").write_text("\n\n".join(tables) + "\n")
    return claims
