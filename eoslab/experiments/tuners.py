"""Reproduction of step-size tuners vs. progressive sharpening (Roulet, Agarwala, Pedregosa 2023).

Full-batch GD on fc-tanh [200, 200], digits, MSE (0.5 sum over outputs, mean
over examples), with its step eta_t chosen by a tuner (:mod:`eoslab.tuners`),
against constant steps.  What is compared is eta_t * lambda_t, the tuner's
step times the sharpness (the effective sharpness of GD with P_t = I/eta_t,
threshold 2).  At the edge it oscillates with period 2, so a sample every n
eval steps sees one phase or alternates: the tuner recipes whose claims rest
on it track the sharpness at every step (``probes.every_step``) and the claims
use every step (:mod:`eoslab.experiments.statistics`: the median and the
fraction above 2 over pairs of consecutive steps, both phases weighed equally).  Only converged eigenvalue solves
enter a claim (:func:`~eoslab.experiments.claims.certified_series`).

* constant GD over a grid of eta (``tuners-gd``; the baseline is the grid's
  best final training loss);
* Armijo backtracking reset to the maximal step 10 at every iteration
  (``tuners-armijo``): the paper finds its sharpness ever-increasing, below
  the edge of stability, and its performance poor in full batch;
* Polyak steps SPS_max with f* = 0 (``tuners-polyak``): at the edge of
  stability (eta_t * lambda_t ~ 2) or slightly beyond, and better than Armijo
  and constant steps;
* PAL with its published defaults (``tuners-pal``, Mutschler & Zell 2020; no
  claim of this paper, reported in the table);
* CDAT with sigma = 1 ("greedy") and sigma = 2 ("on edge") (``tuners-cdat1``,
  ``tuners-cdat2``; Roulet et al. 2024): sigma = 2 beats sigma = 1 and sits at
  eta_t * lambda_t ~ 2.  Half of that is an identity, not a finding: eta_t =
  sigma |g|^2 / g.Hg >= sigma / lambda_1 whenever g.Hg > 0 and the step is
  below its cap, so eta_t * lambda_t >= sigma by construction; the claim is the
  other half, that it does not sit far above (the gradient stays aligned with
  the top eigendirection).

The full recipe also runs the stochastic setting (``tuners-stochastic-*``:
constant steps, Armijo, Polyak, each at batch sizes 64 and 256 and seeds 0, 1,
2; the loss and the sharpness are those of the full training set) where the
paper finds the outcome depends strongly on the batch size, and, when
``EOSLAB_DATA`` is set, the full-batch methods on CIFAR-10-5k
(:data:`CIFAR_OVERRIDES`).  Claims of a setting that does not run are rows
with ``holds = None`` and the reason.

"Final loss" is the median training loss over the last 10% of the steps: at
the edge of stability the loss is non-monotone (Polyak's spikes by 10x), so
the loss after the last step alone would be a draw.  ``table.txt`` gives per
method the final and last losses, the sharpness along the run, eta_t,
eta_t * lambda_t and the evaluations each step cost (loss evaluations and
gradients or Hessian-vector products, the step's own value-and-gradient
included).  ``--quick`` runs the full-batch methods only, for 400 steps
(:data:`QUICK_OVERRIDES`): about 9 minutes on 2 shared CPU cores, most of it
the every-step eigensolves of Polyak and CDAT sigma = 2 (a median of 13 and 15
Hessian-vector products per step: at the edge the warm start loses more).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import numpy as np

from eoslab.errors import DataError
from eoslab.experiments import statistics as st
from eoslab.experiments.base import store_in
from eoslab.experiments.claims import Accuracy, Claim, certified_series, combine, quick_title, write_claims
from eoslab.train.recipes import load_recipe
from eoslab.plots import LOSS_LABELS, save_figure
from eoslab.store import RunStore
from eoslab.train import TrainResult, train

PAPER = "Roulet, Agarwala, Pedregosa 2023"
PAPER_CDAT = "Roulet et al. 2024"
TITLE = f"Step-size tuners and progressive sharpening ({PAPER}; CDAT: {PAPER_CDAT}): claims"


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
SEEDS = (0, 1, 2)  # the stochastic sweep: a claim about noise needs its spread

#: --quick: fewer steps of the same full-batch recipes (and step curvature off).
QUICK_OVERRIDES = ("train.steps=400", "train.eval_every=25", "probes.step_curvature=false")
#: The CIFAR-10-5k variant (full recipe, EOSLAB_DATA set): the full-batch recipes on cifar10-5k with
#: a constant-step grid around Cohen et al.'s 2/eta range for that setting.
CIFAR_OVERRIDES = ("data.name=cifar10-5k", "train.chunk_size=1000", "train.steps=1000")
CIFAR_GD_LRS = "optimizer.lr=[0.005, 0.01, 0.02, 0.04]"

# Thresholds of the claims (fixed before the runs).
EDGE = 2.0  # the edge of stability of eta_t * lambda_t
ARMIJO_GROWTH = 1.5  # lambda at the end / lambda at 10% of the steps
ARMIJO_MAX_ABOVE = 0.25  # "stays below the edge": at most a quarter of the steps above 2
POLYAK_BAND = (1.8, 3.0)  # "at the edge of stability (2) or slightly beyond"
CDAT_TOLERANCE = 0.15  # median eta*lambda at most 15% above 2 (at least 2 is an identity)
MIN_COVERAGE = 0.5  # an every-step statistic needs at least half the steps of its window certified
FINAL = "final training loss (median over the last 10% of the steps)"
LAMBDA_WINDOW = 0.05  # sharpness "at 10% of the steps": its median over steps 10%-15% (likewise 75%, end)


# ---- summaries ----------------------------------------------------------------

def _series(metrics: dict, name: str, lo: int = 0, hi: int | None = None):
    return st.window(*metrics.get(name, (np.zeros(0, int), np.zeros(0))), lo, hi)


def certified_edge(metrics: dict) -> tuple[np.ndarray, np.ndarray, Accuracy]:
    """eta_t * lambda_t (``effective_sharpness``) at the steps whose sharpness solve converged.

    Its relative error is that of lambda_t (eta_t is exact); the accuracy record is the sharpness's.
    """
    s, _, acc = certified_series(metrics, "sharpness")
    es, eff = _series(metrics, "effective_sharpness")
    keep = np.isin(es, s)
    return es[keep], eff[keep], acc


def _lambda_at(steps, lam, total: int, frac: float) -> float:
    """Median sharpness over the steps frac*total .. (frac + 0.05)*total (at least one step)."""
    lo = int(frac * total)
    return st.median(st.window(steps, lam, lo, max(lo, int((frac + LAMBDA_WINDOW) * total)))[1])


def summarise_member(metrics: dict, *, lr: float, total: int, tuner: bool, minibatch: bool,
                     status: str = "completed", diverged_step: int | None = None) -> dict:
    """One member's losses, certified sharpness and eta_t * lambda_t statistics, and cost per step."""
    bad = status != "completed"
    # the last step with good parameters: a diverged member's metrics from its divergence on are bad
    end = diverged_step - 1 if bad and diverged_step is not None else total
    ls, lam, acc = certified_series(metrics, "sharpness")
    ls, lam = st.window(ls, lam, 0, end)
    es, eff, _ = certified_edge(metrics)
    es, eff = st.window(es, eff, 1, end)  # eta_t * lambda_t at the steps after the first
    _, tl = _series(metrics, "train_loss", 0, end)
    # final loss: the median over the last 10% of the steps (at the edge of stability the loss is
    # non-monotone and one step can sit on a spike); full batch: the per-step loss, which is the
    # training loss; minibatches: the full training loss at the eval steps
    _, tail = _series(metrics, "train_loss" if minibatch else "loss", total - max(1, total // 10), end)
    _, acc_test = _series(metrics, "test_accuracy", 0, end)
    if tuner:
        _, eta_half = _series(metrics, "step_size", total // 2, end - 1)
        _, nv = _series(metrics, "tuner_values", 0, end - 1)
        _, ng = _series(metrics, "tuner_grads", 0, end - 1)
        _, ok = _series(metrics, "tuner_success", 0, end - 1)
    else:
        eta_half, nv, ng, ok = np.asarray([lr]), np.zeros(1), np.zeros(1), np.ones(1)
    _, curv = _series(metrics, "step_curvature", total // 2, end - 1)
    lam10, lam75, lam_end = (_lambda_at(ls, lam, total, f) for f in (0.10, 0.75, 1 - LAMBDA_WINDOW))
    return dict(
        lr=float(lr), steps=total, status=status, diverged_step=diverged_step,
        final_loss=st.median(tail) if not bad else float("nan"),
        last_loss=float(tl[-1]) if len(tl) and not bad else float("nan"),
        final_test_accuracy=float(acc_test[-1]) if len(acc_test) and not bad else float("nan"),
        lambda0=float(lam[0]) if len(ls) and ls[0] == 0 else float("nan"),
        lambda10=lam10, lambda75=lam75, lambda_end=lam_end, growth=lam_end / lam10, late_growth=lam_end / lam75,
        median_eta=st.median(eta_half),
        edge=st.level_stats(es, eff, EDGE, 1, end),
        edge_second_half=st.level_stats(es, eff, EDGE, total // 2, end),
        edge_first_quarter=st.level_stats(es, eff, EDGE, 1, total // 4),
        edge_samples=(st.median(eff), st.median(st.window(es, eff, total // 2, end)[1]), st.fraction_above(eff, EDGE)),
        below_edge_steps=int(np.count_nonzero(st.finite(eff) < EDGE)), edge_values=len(st.finite(eff)),
        median_step_curvature=st.median(curv),
        loss_evals=1 + float(np.mean(nv)), grad_evals=1 + float(np.mean(ng)),
        success=float(np.mean(ok)), accuracy=acc,
    )


def summarise(result: TrainResult, method: Method) -> list[dict]:
    """One row per member (step size or cap) of a run: losses, sharpness, eta_t, eta_t*lambda_t, cost."""
    cfg = result.config
    rows = []
    for i, lr in enumerate(result.lrs):
        row = summarise_member(result.metrics[i], lr=lr, total=cfg.train.steps, tuner=cfg.optimizer.name != "gd",
                               minibatch=cfg.optimizer.batch_size > 0, status=result.status[i],
                               diverged_step=result.diverged_step[i])
        rows.append(dict(method=method.key, label=method.label, recipe=cfg.name, batch_size=cfg.optimizer.batch_size,
                         seed=cfg.seed, run_id=result.run_ids[i], **row))
    return rows


def best(rows: list[dict]) -> dict:
    """The member with the lowest final training loss (diverged members excluded)."""
    ok = [r for r in rows if np.isfinite(r["final_loss"])]
    return min(ok, key=lambda r: r["final_loss"]) if ok else rows[0]


def format_table(rows: list[dict], title: str) -> str:
    head = (f"{'method':<18} {'η / cap':>7} {'batch':>5} {'seed':>4} {'status':>9} {'final loss':>10} "
            f"{'last loss':>9} {'test acc':>8} {'λ0':>6} {'λ@10%':>6} {'λ_end':>6} {'growth':>6} {'med η_t':>8} "
            f"{'med ηλ':>7} {'ηλ 2nd½':>7} {'ηλ>2':>5} {'η·uHu':>6} {'f/step':>6} {'∇/step':>6}")
    lines = [f"[{title}]", head]
    for r in rows:
        status = r["status"] if r["status"] == "completed" else f"div@{r['diverged_step']}"
        lines.append(
            f"{r['label']:<18} {r['lr']:>7.3g} {r['batch_size'] or 'full':>5} {r['seed']:>4} {status:>9} "
            f"{r['final_loss']:>10.4g} {r['last_loss']:>9.4g} "
            f"{r['final_test_accuracy']:>8.3f} {r['lambda0']:>6.3g} {r['lambda10']:>6.3g} {r['lambda_end']:>6.3g} "
            f"{r['growth']:>6.2f} {r['median_eta']:>8.3g} {_edge_median(r, 'edge', 0):>7.3f} "
            f"{_edge_median(r, 'edge_second_half', 1):>7.3f} {_edge_above(r):>5.2f} {r['median_step_curvature']:>6.3f} "
            f"{r['loss_evals']:>6.2f} {r['grad_evals']:>6.2f}")
    return "\n".join(lines)


def _edge_median(row: dict, key: str, i: int) -> float:
    """The period-2-safe median where the series has consecutive steps, else that of the eval samples."""
    return row[key].median if row[key].n else row["edge_samples"][i]


def _edge_above(row: dict) -> float:
    return row["edge"].above if row["edge"].n else row["edge_samples"][2]


TABLE_NOTE = """\
final loss: median training loss over the last 10% of the steps (full batch: every step; minibatches: the
full training loss at the eval steps; diverged: nan); last loss: the full training loss after the last
step; test acc: the test accuracy there; λ: sharpness (top Hessian eigenvalue of the full training loss,
converged solves only) at step 0, and its median over steps 10%-15% and over the last 5% of the steps;
growth = λ_end / λ@10%; med η_t: median step over the second half; med ηλ: median of η_t·λ_t over the
steps after step 0 (η_t the step the rule takes there; the edge of stability is 2): where η_t·λ_t is
recorded at every step, the median over disjoint pairs of consecutive steps (one value of each phase of
the period-2 oscillation per pair, so it cannot alias), else the median of the eval-step samples (aliased
where η_t·λ_t oscillates); ηλ 2nd½: the same over the second half; ηλ>2: the fraction of those values
above 2; η·uHu: median over the second half of η_t·u.Hu/|u|^2 along the step u (nan: not recorded);
f/step, ∇/step: mean loss evaluations and gradient evaluations (HVPs counted as gradients) per step, the
step's own value and gradient included.
CDAT: η_t·λ_t >= σ is an identity (η_t = σ|g|²/g.Hg >= σ/λ_1 whenever g.Hg > 0 and η_t is below its cap),
not a measurement; CDAT's η·uHu is σ by construction.
"""


# ---- claims -------------------------------------------------------------------

Measured = tuple  # (value, holds, detail, accuracy) of one claim


@dataclasses.dataclass(frozen=True)
class Rule:
    """A claim of a paper, the quantity measured and how (``measure``: rows by method key -> Measured)."""
    claim: str
    quantity: str
    paper: str
    measure: Callable[[dict], Measured]


def _ok(*rows) -> bool:
    return all(r["status"] == "completed" for r in rows)


def _why_not_every_step(stats: st.LevelStats) -> str | None:
    """Why an every-step statistic of eta_t * lambda_t cannot be used here (None: it can)."""
    if not stats.coverage > 0:
        return "not tested: no converged sharpness value in the window"
    if stats.n == 0 or stats.coverage < MIN_COVERAGE:
        return (f"not tested: η_t·λ_t is certified at {stats.coverage:.0%} of the steps of the window; a period-2 "
                f"oscillation needs every step (probes.every_step = true) with >= {MIN_COVERAGE:.0%} converged")
    return None


def _describe(stats: st.LevelStats) -> str:
    return (f"median {stats.median:.3f}, quartiles {stats.q25:.3g}-{stats.q75:.3g}, fraction above 2 "
            f"{stats.above:.2f} over {stats.n} steps in pairs of consecutive steps ({stats.coverage:.0%} of the "
            f"window certified)")


def _armijo_growth(rows) -> Measured:
    arm = rows["armijo"][0]
    g = arm["growth"]
    holds = bool(_ok(arm) and g >= ARMIJO_GROWTH and arm["late_growth"] > 1) if np.isfinite(g) else None
    return g, holds, ("" if holds is not None else "not tested: no converged sharpness value in a window; ") + (
        f"λ: {arm['lambda0']:.3g} at step 0, {arm['lambda10']:.3g} at 10%, {arm['lambda75']:.3g} at 75%, "
        f"{arm['lambda_end']:.3g} at the end; holds if the factor is >= {ARMIJO_GROWTH} and λ still rises over "
        f"the last quarter (λ_end/λ@75% = {arm['late_growth']:.3f})"), arm["accuracy"]


def _armijo_below(rows) -> Measured:
    arm = rows["armijo"][0]
    e = arm["edge"]
    why = _why_not_every_step(e)
    holds = None if why else bool(_ok(arm) and e.median < EDGE and e.above <= ARMIJO_MAX_ABOVE)
    return {"median": e.median, "above 2": e.above}, holds, (why or (
        f"{_describe(e)}; first quarter: {_describe(arm['edge_first_quarter'])}; second half: median "
        f"{arm['edge_second_half'].median:.3f}; median η_t·u.Hu/|u|² along the step (2nd half) "
        f"{arm['median_step_curvature']:.3f}; holds if the median is < 2 and at most "
        f"{ARMIJO_MAX_ABOVE:.0%} of the steps are above 2")), arm["accuracy"]


def _polyak_edge(rows) -> Measured:
    pol = rows["polyak"][0]
    e = pol["edge_second_half"]
    lo, hi = POLYAK_BAND
    why = _why_not_every_step(e)
    holds = None if why else bool(_ok(pol) and lo <= e.median <= hi)
    return {"median": e.median, "above 2": e.above}, holds, (why or (
        f"{_describe(e)}; median η_t·u.Hu/|u|² along the step (2nd half) {pol['median_step_curvature']:.3f}; "
        f"holds if the median is in [{lo:g}, {hi:g}]")), pol["accuracy"]


def _losses(rows) -> str:
    gd = best(rows["gd"])
    names = (("armijo", "Armijo"), ("polyak", "Polyak"), ("pal", "PAL"), ("cdat1", "CDAT σ=1"), ("cdat2", "CDAT σ=2"))
    return (f"final losses: GD (best η={gd['lr']:g}) {gd['final_loss']:.4g}, " +
            ", ".join(f"{label} {rows[k][0]['final_loss']:.4g}" for k, label in names))


def _ratio(a: dict, b: dict) -> float:
    return a["final_loss"] / b["final_loss"]


def _polyak_vs_armijo(rows) -> Measured:
    pol, arm = rows["polyak"][0], rows["armijo"][0]
    return _ratio(pol, arm), bool(_ok(pol) and _ratio(pol, arm) < 1), f"holds if < 1; {_losses(rows)}", None


def _polyak_vs_gd(rows) -> Measured:
    pol, gd = rows["polyak"][0], best(rows["gd"])
    return _ratio(pol, gd), bool(_ok(pol) and _ratio(pol, gd) < 1), (
        f"grid {[r['lr'] for r in rows['gd']]} (diverged members excluded); holds if < 1"), None


def _armijo_vs_gd(rows) -> Measured:
    arm, gd = rows["armijo"][0], best(rows["gd"])
    return _ratio(arm, gd), bool(_ratio(arm, gd) > 1 or not _ok(arm)), "holds if > 1", None


def _cdat2_vs_cdat1(rows) -> Measured:
    c1, c2 = rows["cdat1"][0], rows["cdat2"][0]
    return _ratio(c2, c1), bool(_ok(c2) and _ratio(c2, c1) < 1), (
        f"holds if < 1; sharpness growth λ_end/λ@10%: σ=1 {c1['growth']:.3g}, σ=2 {c2['growth']:.3g}"), None


def _cdat2_edge(rows) -> Measured:
    c1, c2 = rows["cdat1"][0], rows["cdat2"][0]
    e = c2["edge_second_half"]
    why = _why_not_every_step(e)
    top = EDGE * (1 + CDAT_TOLERANCE)
    holds = None if why else bool(_ok(c2) and e.median <= top)
    return e.median, holds, (why or (
        f"{_describe(e)}; holds if the median is <= {top:.3g}. Identity, not tested: η_t·λ_t >= 2 whenever "
        f"g.Hg > 0 and η_t is below its cap (measured below 2 at {c2['below_edge_steps']} of {c2['edge_values']} "
        f"steps: capped steps, g.Hg <= 0 or eigenvalue error); σ=1 (greedy): {_describe(c1['edge_second_half'])}")
    ), combine([c2["accuracy"], c1["accuracy"]])


def full_batch_rules(tag: str = "") -> list[Rule]:
    """The claims of the full-batch comparison, in table order (criteria fixed before the runs)."""
    t = f"[{tag}] " if tag else ""
    every = "every step after step 0"
    pairs = "over disjoint pairs of consecutive steps: both phases of the period-2 oscillation weighed equally"
    return [
        Rule(f"{t}Armijo (full batch, reset to the maximal step at every iteration) keeps increasing the sharpness",
             "λ_end / λ at 10% of the steps (sharpness of the full training loss: median over the last 5% / over "
             "steps 10%-15%)", PAPER, _armijo_growth),
        Rule(f"{t}Armijo stays below the edge of stability (η_t·λ_t < 2), where the sharpness is free to grow",
             f"η_t·λ_t over {every}: median; fraction above 2 ({pairs})", PAPER, _armijo_below),
        Rule(f"{t}Polyak steps (SPS_max, f* = 0) operate at the edge of stability or slightly beyond",
             f"η_t·λ_t over every step of the second half: median; fraction above 2 ({pairs})", PAPER, _polyak_edge),
        Rule(f"{t}Polyak steps outperform Armijo (full batch)", f"{FINAL} Polyak / Armijo", PAPER,
             _polyak_vs_armijo),
        Rule(f"{t}Polyak steps outperform the best constant step size (full batch)",
             f"{FINAL} Polyak / best GD over the grid", PAPER, _polyak_vs_gd),
        Rule(f"{t}Armijo performs poorly in full batch: worse than the best constant step size",
             f"{FINAL} Armijo / best GD over the grid", PAPER, _armijo_vs_gd),
        Rule(f"{t}CDAT on edge (σ=2) outperforms greedy CDAT (σ=1) in full batch",
             f"{FINAL} CDAT σ=2 / CDAT σ=1", PAPER_CDAT, _cdat2_vs_cdat1),
        Rule(f"{t}CDAT σ=2 operates at the edge of stability: η_t·λ_t ≈ 2, not above it "
             f"(η_t·λ_t >= 2 holds by construction)",
             f"η_t·λ_t over every step of the second half: median ({pairs})", PAPER_CDAT, _cdat2_edge),
    ]


def full_batch_claims(rows: dict[str, list[dict]], tag: str = "") -> list[Claim]:
    """Claims of the full-batch comparison; ``rows`` maps a method key to its summary rows."""
    claims = []
    for rule in full_batch_rules(tag):
        value, holds, detail, acc = rule.measure(rows)
        claims.append(Claim(rule.claim, rule.quantity, value, holds, rule.paper, detail, accuracy=acc))
    return claims


def not_run(rules: list[Rule], reason: str) -> list[Claim]:
    """The claims of a setting that did not run: ``holds = None`` and the reason."""
    return [Claim(r.claim, r.quantity, None, None, r.paper, f"not run: {reason}") for r in rules]


MIN_SEEDS = 3
STOCHASTIC_RULE = Rule(
    "[stochastic] the tuners' results depend strongly on the batch size: the comparison between methods changes "
    "with it",
    f"{FINAL} per batch size and method, median over seeds (constant steps: the grid's best η by that median); "
    f"whether a pair of methods ordered the same way in every seed at the smallest batch size is ordered the "
    f"other way in every seed at the largest", PAPER, None)


def _seed_losses(rows: list[dict]) -> tuple[float, dict[int, float]]:
    """(eta, {seed: final loss}) of a method at one batch size: for a grid, the eta of the lowest median over
    seeds (a diverged seed counts as +inf)."""
    by_lr: dict[float, dict[int, float]] = {}
    for r in rows:
        by_lr.setdefault(r["lr"], {})[r["seed"]] = r["final_loss"] if np.isfinite(r["final_loss"]) else np.inf
    lr = min(by_lr, key=lambda x: float(np.median(list(by_lr[x].values()))))
    return lr, by_lr[lr]


def _beats(a: dict[int, float], b: dict[int, float]) -> bool:
    """Method a has a lower final loss than b in every common seed."""
    seeds = set(a) & set(b)
    return bool(seeds) and all(a[s] < b[s] for s in seeds)


def stochastic_claims(rows: dict[int, dict[str, list[dict]]]) -> list[Claim]:
    """``rows``: batch size -> method key -> summary rows (every seed and step size).

    The paper: in the stochastic regime the tuners' outcome depends strongly on the batch size.  Criterion
    (fixed before the runs): holds if some pair of methods is ordered one way in every seed at the smallest
    batch size and the other way in every seed at the largest (>= 3 seeds; with fewer, not tested).
    """
    labels = {m.key: m.label for m in STOCHASTIC}
    small, large = min(rows), max(rows)
    per = {bs: {labels[k]: _seed_losses(rs) for k, rs in by.items()} for bs, by in rows.items()}
    seeds = set.intersection(*(set(losses) for by in per.values() for _, losses in by.values()))
    medians = {bs: {k: float(np.median(list(v.values()))) for k, (_, v) in by.items()} for bs, by in per.items()}

    def orders(bs):
        return [(a, b) for a in per[bs] for b in per[bs] if a != b and _beats(per[bs][a][1], per[bs][b][1])]
    flipped = [(a, b) for a, b in orders(small) if (b, a) in orders(large)]
    spread = "; ".join(
        f"batch {bs}: " + ", ".join(f"{k} {min(v.values()):.3g}-{max(v.values()):.3g}" +
                                    (f" (η={lr:g})" if k == labels["gd"] else "") for k, (lr, v) in by.items())
        for bs, by in per.items())
    order_text = "; ".join(f"batch {bs}: " + (", ".join(f"{a} < {b}" for a, b in orders(bs)) or "none")
                           for bs in (small, large))
    holds = bool(flipped) if len(seeds) >= MIN_SEEDS else None
    detail = (f"{len(seeds)} seeds {sorted(seeds)}; spread (min-max over seeds): {spread}; orders holding in every "
              f"seed: {order_text}; flipped between batch {small} and {large}: "
              f"{', '.join(f'{a} vs {b}' for a, b in flipped) or 'none'}; holds if some pair flips")
    if holds is None:
        detail = f"not tested: fewer than {MIN_SEEDS} seeds; " + detail
    r = STOCHASTIC_RULE
    return [Claim(r.claim, r.quantity, medians, holds, r.paper, detail)]


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

def _title(cfg, setting: str, quick: bool) -> str:
    return quick_title(f"Step-size tuners ({PAPER}): {cfg.model.name} {list(cfg.model.widths)} on {cfg.data.name}, "
                       f"{setting}", quick)


def run_methods(methods, overrides: list[str], out: Path, store: RunStore, progress: bool,
                per_method: dict[str, list[str]] | None = None) -> list[tuple[Method, TrainResult]]:
    results = []
    for method in methods:
        extra = [*overrides, *(per_method or {}).get(method.key, [])]
        cfg = load_recipe(method.recipe, extra)
        results.append((method, train(cfg, results_dir=out, store=store, progress=progress)))
    return results


def _cifar_skip(quick: bool) -> str | None:
    if quick:
        return "--quick runs the full-batch methods on digits only"
    if not os.environ.get("EOSLAB_DATA"):
        return "EOSLAB_DATA is not set (the CIFAR-10 files are needed)"
    return None


def _stochastic_skip(quick: bool, batch_sizes, seeds) -> str | None:
    if quick:
        return "--quick runs the full-batch methods only"
    if not batch_sizes or not seeds:
        return "no batch sizes or seeds given"
    return None


def stochastic_sweep(extra: list[str], out: Path, store: RunStore, progress: bool, batch_sizes, seeds):
    """Every stochastic method at every batch size and seed: (claims, tables, seed-0 results for the figure)."""
    by_batch, sto_rows, tables = {}, {}, []
    for bs in batch_sizes:
        sto_rows[bs] = {m.key: [] for m in STOCHASTIC}
        for seed in seeds:
            results = run_methods(STOCHASTIC, [*extra, f"optimizer.batch_size={bs}", f"seed={seed}"], out, store,
                                  progress)
            by_batch.setdefault(bs, results)
            for m, res in results:
                sto_rows[bs][m.key] += summarise(res, m)
        tables.append(format_table([r for rs in sto_rows[bs].values() for r in rs], f"stochastic, batch size {bs}"))
    return stochastic_claims(sto_rows), tables, by_batch


def reproduce(out_dir: str | Path, *, quick: bool = False, progress: bool = True, store=None,
              overrides: list[str] | None = None, batch_sizes: tuple[int, ...] = BATCH_SIZES,
              seeds: tuple[int, ...] = SEEDS) -> list[Claim]:
    """Run the recipes; write tuners*.png/pdf, table.txt, claims.md and claims.json into ``out_dir``.

    ``overrides`` apply to every recipe (after :data:`QUICK_OVERRIDES` with ``quick``);
    ``batch_sizes`` and ``seeds`` are those of the stochastic sweep (skipped with ``quick`` or when empty).
    Claims of a setting that does not run are rows with ``holds = None`` and the reason.
    """
    out = Path(out_dir)
    extra = [*(QUICK_OVERRIDES if quick else ()), *(overrides or [])]
    cifar_skip, sto_skip = _cifar_skip(quick), _stochastic_skip(quick, batch_sizes, seeds)
    for m in (*FULL_BATCH, *STOCHASTIC):  # every config is valid before anything runs
        load_recipe(m.recipe, extra)
    for m in FULL_BATCH if cifar_skip is None else ():
        load_recipe(m.recipe, [*extra, *CIFAR_OVERRIDES, *([CIFAR_GD_LRS] if m.key == "gd" else [])])
    claims: list[Claim] = []
    tables = []
    with store_in(out, store) as store:
        results = run_methods(FULL_BATCH, extra, out, store, progress)
        rows = {m.key: summarise(res, m) for m, res in results}
        tables.append(format_table([r for rs in rows.values() for r in rs], "full batch"))
        claims += full_batch_claims(rows)
        cfg = results[0][1].config
        save_figure(plot_full_batch(results, _title(cfg, "full batch", quick)), out / "tuners")

        if sto_skip is None:
            sto_claims, sto_tables, by_batch = stochastic_sweep(extra, out, store, progress, batch_sizes, seeds)
            claims += sto_claims
            tables += sto_tables
            cfg = by_batch[batch_sizes[0]][0][1].config
            save_figure(plot_stochastic(by_batch, _title(cfg, f"minibatches, seed {seeds[0]} (loss and sharpness: "
                                                              f"full training set)", quick)), out / "tuners-stochastic")
        else:
            claims += not_run([STOCHASTIC_RULE], sto_skip)

        cifar_rules = full_batch_rules("CIFAR-10-5k")
        if cifar_skip is None:
            try:
                results = run_methods(FULL_BATCH, [*extra, *CIFAR_OVERRIDES], out, store, progress,
                                      per_method={"gd": [CIFAR_GD_LRS]})
            except DataError as e:
                claims += not_run(cifar_rules, str(e))
            else:
                rows = {m.key: summarise(res, m) for m, res in results}
                tables.append(format_table([r for rs in rows.values() for r in rs], "full batch, CIFAR-10-5k"))
                claims += full_batch_claims(rows, "CIFAR-10-5k")
                cfg = results[0][1].config
                save_figure(plot_full_batch(results, _title(cfg, "full batch", quick)), out / "tuners-cifar10")
        else:
            claims += not_run(cifar_rules, cifar_skip)
    write_claims(out, claims, TITLE, quick=quick)
    (out / "table.txt").write_text("\n\n".join(tables) + "\n\n" + TABLE_NOTE)
    return claims
