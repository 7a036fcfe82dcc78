"""Reproduction of the adaptive edge of stability (Cohen et al. 2022).

Full-batch adaptive methods on fc-tanh [200, 200], digits, MSE (0.5 sum over
outputs, mean over examples).  Each update is theta <- theta - P_t^{-1} m_t
(:mod:`eoslab.rules`); the paper's *preconditioned sharpness* is
lambda_1(P~_t^{-1} H) with P~_t = eta P_t = (1 - beta1^t)(diag(sqrt(v_hat_t)) + eps)
for Adam, and its threshold is (2 + 2 beta1) / ((1 - beta1) eta): 38/eta for
beta1 = 0.9, 2/eta for beta1 = 0 and for RMSProp.  Only converged eigenvalue
solves enter a claim (:func:`~eoslab.experiments.claims.certified_series`).
The claims and their criteria (fixed before the runs; ratio = lambda_1(P_t^{-1} H)
/ threshold):

* Adam (beta1 = 0.9, three step sizes spanning 10x): the preconditioned
  sharpness rises to 38/eta and hovers there: the median ratio over the second
  half is within 10% of 1;
* while it does, the raw sharpness lambda_1(H) keeps rising: lambda_1(H) at the
  end / at the first step with ratio >= 0.9 is > 1.1;
* the same with beta1 = 0 (threshold 2/eta) and RMSProp (2/eta);
* with the preconditioner frozen after 25 steps (frozen Adam; early, while
  the ratio is far below 1), the preconditioned sharpness rises to the
  threshold and plateaus there, as GD's sharpness does at 2/eta: it *rises*
  (the ratio at the freeze step is below 0.9 and later reaches 0.9) and
  *plateaus* (median ratio over the second half within 10% of 1,
  interquartile range of the ratio there <= 0.1);
* minibatch Adam (the full recipe only, ``adaptive-eos-minibatch``: batch
  sizes 64, 256, 1024, seeds 0, 1, 2): "similar effects occur during minibatch
  training, especially as the batch size grows": the preconditioned sharpness
  of the full-batch loss settles below the threshold at the smallest batch size
  and closer to it at the largest (in every seed: ratio < 1 at the smallest
  batch, |ratio - 1| smaller at the largest than at the smallest; median over
  seeds of |ratio - 1| at the largest batch <= 0.2).

``--quick`` trains every full-batch recipe for 1000 steps instead of 3000
(about 12 minutes on 2 shared CPU cores, most of it the eval-step eigensolves
run to their tolerance) and skips the minibatch sweep, whose claim is then a
row with ``holds = None``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from eoslab.experiments import statistics as st
from eoslab.experiments.base import store_in
from eoslab.experiments.claims import Claim, certified_series, combine, quick_title, write_claims
from eoslab.train.recipes import load_recipe
from eoslab.plots import LOSS_LABELS, save_figure, suptitle
from eoslab.store import RunStore
from eoslab.train import TrainResult, train

PAPER = "Cohen et al. 2022"
TITLE = "Adaptive edge of stability (Cohen et al. 2022): claims"
QUICK_STEPS = 1000

# Thresholds of the claims (fixed before the runs).
TOLERANCE = 0.10  # |median ratio - 1| at the edge
AT_EDGE = 1 - TOLERANCE  # "reaches the threshold": ratio >= 0.9
RAW_GROWTH = 1.1  # lambda_1(H) at the end / at the first step at the edge
PLATEAU_IQR = 0.10  # frozen Adam: interquartile range of the ratio over the second half
MINIBATCH_LARGEST = 0.20  # median over seeds of |ratio - 1| at the largest batch size
MIN_SEEDS = 3

#: (recipe, label, which claims): "edge" (median at the threshold), "growth" (raw sharpness
#: keeps rising), "frozen" (rise and plateau after freezing).
RECIPES = [
    ("adaptive-eos", "Adam β1=0.9", ("edge", "growth")),
    ("adaptive-eos-beta0", "Adam β1=0", ("edge",)),
    ("adaptive-eos-rmsprop", "RMSProp", ("edge",)),
    ("adaptive-eos-frozen", "frozen Adam", ("frozen",)),
]


def summarise_member(metrics: dict, *, eta: float, threshold: float, total: int, status: str = "completed",
                     diverged_step: int | None = None, freeze_step: int = 0) -> dict:
    """One member's preconditioned and raw sharpness statistics (converged solves only).

    ``threshold`` is the effective one (P includes eta): ratio = lambda_1(P_t^{-1} H) / threshold.
    """
    es, eff, acc = certified_series(metrics, "effective_sharpness")
    rs, raw, raw_acc = certified_series(metrics, "sharpness")
    _, loss = st.window(*metrics.get("train_loss", (np.zeros(0, int), np.zeros(0))))
    end = total if status == "completed" else (diverged_step or total)
    es, eff = st.window(es, eff, 0, end)
    rs, raw = st.window(rs, raw, 0, end)
    ratio = eff / threshold
    _, half = st.window(es, ratio, end // 2, end)
    med = st.median(half)
    q25, q75 = st.quartiles(half)
    first = st.first_step_at(es, ratio, AT_EDGE)
    raw_at_edge = st.value_at_or_after(rs, raw, first) if first is not None else float("nan")
    after_freeze = st.window(es, ratio, freeze_step + 1)
    return dict(
        eta=float(eta), threshold=threshold, paper_threshold=threshold / eta, status=status,
        diverged_step=diverged_step, median_ratio=med, iqr_ratio=q75 - q25, half_samples=len(st.finite(half)),
        median_preconditioned=med * threshold / eta,
        first_step_at_edge=first, raw_at_edge=raw_at_edge,
        raw_final=float(raw[-1]) if len(raw) else float("nan"),
        raw_growth=float(raw[-1] / raw_at_edge) if len(raw) else float("nan"),
        raw_lambda0=float(raw[0]) if len(rs) and rs[0] == 0 else float("nan"),
        ratio_at_freeze=st.value_at_or_after(es, ratio, freeze_step) if freeze_step else float("nan"),
        first_at_edge_after_freeze=st.first_step_at(*after_freeze, AT_EDGE) if freeze_step else None,
        final_loss=float(loss[-1]) if len(loss) else float("nan"),
        accuracy=acc, raw_accuracy=raw_acc,
    )


def summarise(result: TrainResult) -> list[dict]:
    """Per step size: threshold, preconditioned and raw sharpness statistics."""
    cfg = result.config
    return [summarise_member(result.metrics[i], eta=lr, threshold=result.thresholds[i], total=cfg.train.steps,
                             status=result.status[i], diverged_step=result.diverged_step[i],
                             freeze_step=getattr(cfg.optimizer.hp, "freeze_step", 0))
            for i, lr in enumerate(result.lrs)]


# ---- claims -------------------------------------------------------------------

def _statements(label: str, eta: float, kinds: tuple[str, ...], total: int) -> list[tuple[str, str, str]]:
    """(kind, claim, quantity) of every claim about one step size of a recipe, in table order."""
    tag = f"[{label}, η={eta:g}]"
    half = f"over steps {total // 2}-{total}"
    out = []
    if "edge" in kinds:
        out.append(("edge", f"{tag} the preconditioned sharpness equilibrates at the stability threshold",
                    f"median {half} of λ1(P_t⁻¹H) / threshold"))
    if "growth" in kinds:
        out.append(("growth", f"{tag} the raw sharpness λ1(H) keeps rising while the preconditioned sharpness sits "
                              f"at the threshold",
                    f"raw sharpness at the end / raw sharpness at the first step with λ1(P⁻¹H) >= {AT_EDGE:g} "
                    f"threshold"))
    if "frozen" in kinds:
        out.append(("frozen", f"{tag} with the preconditioner frozen, the preconditioned sharpness rises to the "
                              f"threshold and plateaus there",
                    f"λ1(P_t⁻¹H) / threshold: at the freeze step (rise), median {half} (plateau)"))
    return out


def _edge(r: dict, note: str) -> tuple:
    ok = bool(r["status"] == "completed" and abs(r["median_ratio"] - 1) <= TOLERANCE)
    return ok, (f"median λ1(P~⁻¹H) = {r['median_preconditioned']:.4g} vs {r['paper_threshold']:.4g} "
                f"(= {r['threshold']:.3g}/η); interquartile range of the ratio {r['iqr_ratio']:.3f}; "
                f"{r['half_samples']} values; tolerance ±{TOLERANCE:.0%}{note}")


def _growth(r: dict, note: str) -> tuple:
    g = r["raw_growth"]
    ok = bool(r["status"] == "completed" and g > RAW_GROWTH and abs(r["median_ratio"] - 1) <= TOLERANCE)
    return ok, (f"first at the edge at step {r['first_step_at_edge']} with λ1(H)={r['raw_at_edge']:.4g}, final "
                f"λ1(H)={r['raw_final']:.4g} (λ1(H) at init {r['raw_lambda0']:.4g}); holds if > {RAW_GROWTH:g} "
                f"and the preconditioned sharpness is at the threshold (median ratio {r['median_ratio']:.3f}){note}")


def _frozen(r: dict, note: str) -> tuple:
    rise = bool(r["ratio_at_freeze"] < AT_EDGE and r["first_at_edge_after_freeze"] is not None)
    plateau = bool(abs(r["median_ratio"] - 1) <= TOLERANCE and r["iqr_ratio"] <= PLATEAU_IQR)
    ok = bool(r["status"] == "completed" and rise and plateau)
    return ok, (f"rise: ratio {r['ratio_at_freeze']:.3f} at the freeze step, first >= {AT_EDGE:g} at step "
                f"{r['first_at_edge_after_freeze']} ({'yes' if rise else 'no'}); plateau: median "
                f"{r['median_ratio']:.3f}, interquartile range {r['iqr_ratio']:.3f} ({'yes' if plateau else 'no'}); "
                f"holds if the ratio is below {AT_EDGE:g} at the freeze and reaches it later, and over the second "
                f"half the median is within ±{TOLERANCE:.0%} of 1 with interquartile range <= {PLATEAU_IQR:g}{note}")


def claims_for(rows: list[dict], label: str, kinds: tuple[str, ...], total: int) -> list[Claim]:
    """The claims of one recipe (criteria in the module docstring)."""
    claims = []
    for r in rows:
        note = f"; run {r['status']} at step {r['diverged_step']}" if r["status"] != "completed" else ""
        for kind, claim, quantity in _statements(label, r["eta"], kinds, total):
            rule = {"edge": _edge, "growth": _growth, "frozen": _frozen}[kind]
            value = r["raw_growth"] if kind == "growth" else r["median_ratio"]
            acc = combine([r["accuracy"], r["raw_accuracy"]]) if kind == "growth" else r["accuracy"]
            ok, detail = rule(r, note)
            if not np.isfinite(value):  # no converged value to test
                ok, detail = None, "not tested: no converged eigenvalue solve in the window; " + detail
            claims.append(Claim(claim, quantity, value, ok, PAPER, detail, accuracy=acc))
    return claims


def format_table(rows: list[dict], label: str) -> str:
    head = (f"{'eta':>7} {'thr/eta':>9} {'median λ1(P~⁻¹H)':>17} {'ratio':>6} {'λ1(H) at edge':>14} "
            f"{'final λ1(H)':>11} {'final loss':>10}")
    lines = [f"[{label}]", head]
    for r in rows:
        lines.append(f"{r['eta']:>7.3g} {r['paper_threshold']:>9.4g} {r['median_preconditioned']:>17.4g} "
                     f"{r['median_ratio']:>6.3f} {r['raw_at_edge']:>14.4g} {r['raw_final']:>11.4g} "
                     f"{r['final_loss']:>10.4g}")
    return "\n".join(lines)


def plot(results: list[tuple[str, TrainResult]], quick: bool = False):
    """One row per recipe: loss; raw sharpness; preconditioned sharpness (paper units) with dashed thresholds.

    One colour per step size, keyed in the row's loss panel; a dotted vertical
    line where a run diverged.
    """
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(results), 3, figsize=(12, 3.4 * len(results)), squeeze=False, layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, (label, res) in zip(axes, results):
        for i, lr in enumerate(res.lrs):
            c = colours[i % len(colours)]
            stop = res.diverged_step[i]

            def series(name):  # up to divergence (a diverged member keeps its last, bad values)
                s, v = res.series(i, name)
                keep = s <= stop if stop is not None else np.ones(len(s), bool)
                return s[keep], v[keep]
            row[0].plot(*series("loss"), color=c, lw=0.8, label=f"η={lr:g}")
            row[1].plot(*series("sharpness"), color=c, lw=1.2, label=f"η={lr:g}")
            s, v = series("effective_sharpness")
            row[2].plot(s, v / lr, color=c, lw=1.2, label=f"η={lr:g}")
            row[2].axhline(res.thresholds[i] / lr, color=c, ls="--", lw=1.0)
            if res.diverged_step[i] is not None:
                row[0].axvline(res.diverged_step[i], color=c, ls=":", lw=1.0)
        row[0].set_yscale("log")
        row[2].set_yscale("log")
        row[0].set_ylabel(f"{label}\ntrain loss ({LOSS_LABELS['mse']})", fontsize=9)
        row[1].set_ylabel(r"raw sharpness $\lambda_1(H)$", fontsize=9)
        row[2].set_ylabel("preconditioned sharpness $\\lambda_1(\\tilde{P}^{-1}H)$\n"
                          "(dashed: $(2+2\\beta_1)\\,/\\,((1-\\beta_1)\\,\\eta)$)", fontsize=9)
        for ax in row:
            ax.set_xlabel("step")
        row[0].legend(fontsize=8.5)  # the colours are the same step sizes in the whole row
    suptitle(fig, quick_title("Adaptive edge of stability (Cohen et al. 2022): fc-tanh [200, 200] on digits, "
                              "full batch", quick), fontsize=12)
    return fig


# ---- minibatches --------------------------------------------------------------

MINIBATCH_SIZES = (64, 256, 1024)
MINIBATCH_SEEDS = (0, 1, 2)
MINIBATCH_CLAIM = (
    "[Adam β1=0.9, minibatch] with minibatches the preconditioned sharpness (of the full-batch loss) settles below "
    "the threshold at small batch sizes and approaches it as the batch grows",
    "per batch size and seed: median λ1(P_t⁻¹H)/threshold over the second half; value: per batch size, the "
    "median over seeds")


def minibatch_claim(ratios: dict[int, dict[int, float]], iqr: dict[int, dict[int, float]] | None = None,
                    accuracy=None) -> Claim:
    """``ratios``: batch size -> seed -> median ratio over the second half (NaN: diverged or no converged value).

    Holds (>= 3 seeds) if in every seed the ratio at the smallest batch size is below 1 and farther from 1
    than at the largest, and the median over seeds of |ratio - 1| at the largest batch is <= 0.2.
    """
    small, large = min(ratios), max(ratios)
    seeds = sorted(set(ratios[small]) & set(ratios[large]))
    r_small = np.asarray([ratios[small][s] for s in seeds], float)
    r_large = np.asarray([ratios[large][s] for s in seeds], float)
    below = bool(len(seeds) and np.all(r_small < 1))  # NaN compares False: a missing value fails
    closer = bool(len(seeds) and np.all(np.abs(r_large - 1) < np.abs(r_small - 1)))
    near = bool(len(seeds) and np.all(np.isfinite(r_large)) and np.median(np.abs(r_large - 1)) <= MINIBATCH_LARGEST)
    holds = bool(below and closer and near) if len(seeds) >= MIN_SEEDS else None
    spread = "; ".join(f"batch {bs}: " + ", ".join(f"{rs.get(s, float('nan')):.3f}" for s in seeds) +
                       (f" (interquartile range over the run, median over seeds "
                        f"{st.median(list(iqr[bs].values())):.3f})" if iqr else "")
                       for bs, rs in sorted(ratios.items()))
    detail = (f"seeds {seeds}; ratio per seed: {spread}; below 1 at batch {small} in every seed: "
              f"{'yes' if below else 'no'}; closer to 1 at batch {large} than at {small} in every seed: "
              f"{'yes' if closer else 'no'}; median |ratio - 1| at batch {large} <= {MINIBATCH_LARGEST:g}: "
              f"{'yes' if near else 'no'}")
    if holds is None:
        detail = f"not tested: fewer than {MIN_SEEDS} seeds; " + detail
    value = {bs: st.median(list(rs.values())) for bs, rs in sorted(ratios.items())}
    return Claim(*MINIBATCH_CLAIM, value, holds, PAPER, detail, accuracy=accuracy)


def minibatch_sweep(out: Path, store: RunStore, *, progress: bool = True, overrides: list[str] | None = None,
                    batch_sizes=MINIBATCH_SIZES, seeds=MINIBATCH_SEEDS, force: bool = False
                    ) -> tuple[list[Claim], str, dict]:
    """Adam over batch sizes and seeds: median λ1(P⁻¹H_full)/threshold over the second half of each run."""
    ratios: dict[int, dict[int, float]] = {}
    iqr: dict[int, dict[int, float]] = {}
    accuracies = []
    for bs in batch_sizes:
        for seed in seeds:
            cfg = load_recipe("adaptive-eos-minibatch",
                              [*(overrides or []), f"optimizer.batch_size={bs}", f"seed={seed}"])
            (row,) = summarise(train(cfg, results_dir=out, store=store, progress=progress, force=force))
            ratios.setdefault(bs, {})[seed] = row["median_ratio"] if row["status"] == "completed" else float("nan")
            iqr.setdefault(bs, {})[seed] = row["iqr_ratio"]
            accuracies.append(row["accuracy"])
    lines = ["[Adam β1=0.9, minibatch]", f"{'batch':>6} {'median ratio per seed':>30} {'median':>7}"]
    for bs, rs in ratios.items():
        lines.append(f"{bs:>6} {', '.join(f'{r:.3f}' for r in rs.values()):>30} {st.median(list(rs.values())):>7.3f}")
    return [minibatch_claim(ratios, iqr, combine(accuracies))], "\n".join(lines), ratios


# ---- the reproduction ---------------------------------------------------------

def reproduce(out_dir: str | Path, *, quick: bool = False, progress: bool = True, store=None,
              overrides: list[str] | None = None, force: bool = False) -> list[Claim]:
    """Run the recipes, write adaptive-eos.png/pdf, table.txt, claims.md and claims.json into ``out_dir``.

    ``overrides`` apply to every recipe, after ``--quick``'s step count.
    """
    out = Path(out_dir)
    extra = [*([f"train.steps={QUICK_STEPS}"] if quick else []), *(overrides or [])]  # overrides come last
    configs = [(load_recipe(name, extra), label, kinds) for name, label, kinds in RECIPES]
    claims: list[Claim] = []
    tables, results = [], []
    with store_in(out, store) as store:
        for cfg, label, kinds in configs:
            result = train(cfg, results_dir=out, store=store, progress=progress, force=force)
            rows = summarise(result)
            tables.append(format_table(rows, label))
            claims += claims_for(rows, label, kinds, cfg.train.steps)
            results.append((label, result))
        if quick:
            claims.append(Claim(*MINIBATCH_CLAIM, None, None, PAPER, "not run: --quick skips the minibatch sweep"))
        else:
            mb_claims, mb_table, _ = minibatch_sweep(out, store, progress=progress, overrides=overrides,
                                                            force=force)
            claims += mb_claims
            tables.append(mb_table)
    save_figure(plot(results, quick), out / "adaptive-eos")
    write_claims(out, claims, TITLE, quick=quick)
    (out / "table.txt").write_text("\n\n".join(tables) + "\n"
                                   "(λ1(P~⁻¹H): the paper's preconditioned sharpness, P~ = η P_t; "
                                   "ratio: its median over the second half / threshold)\n")
    return claims
