"""The claims of the tuners reproduction: the full-batch comparison and the stochastic one.

Each full-batch claim is a :class:`Rule`: the paper's statement, the quantity
and a ``measure`` of the summary rows (:mod:`~eoslab.experiments.tuners.summaries`)
by method key.  The criteria are the module constants, fixed before the runs.
Claims on eta_t * lambda_t use every step (``probes.every_step``) and need at
least :data:`MIN_COVERAGE` of the window certified; a claim on eval samples
alone would read an aliased period-2 oscillation, so it is "not tested".
The stochastic claim (:func:`stochastic_claims`) combines the seeds.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from eoslab.experiments import statistics as st
from eoslab.experiments.claims import Claim, combine
from eoslab.experiments.tuners.settings import PAPER, PAPER_CDAT, STOCHASTIC
from eoslab.experiments.tuners.summaries import EDGE, best

# Thresholds of the claims (fixed before the runs).
ARMIJO_GROWTH = 1.5  # lambda at the end / lambda at 10% of the steps
ARMIJO_MAX_ABOVE = 0.25  # "stays below the edge": at most a quarter of the steps above 2
POLYAK_BAND = (1.8, 3.0)  # "at the edge of stability (2) or slightly beyond"
CDAT_TOLERANCE = 0.15  # median eta*lambda at most 15% above 2 (at least 2 is an identity)
MIN_COVERAGE = 0.5  # an every-step statistic needs at least half the steps of its window certified
FINAL = "final training loss (median over the last 10% of the steps)"


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
