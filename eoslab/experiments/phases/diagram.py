"""The digits phase diagram: its table, figures and claims (the order of the critical values, their trend)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from eoslab.experiments.claims import Claim, combine
from eoslab.experiments.phases.critical import PAPER, spearman


PHASE_REGIMES = ("sharpness reduction", "loss catapult", "loss and sharpness catapult", "divergence")
PHASE_COLOURS = ("#cfe1f2", "#fbe6a9", "#f5b99a", "#cfcfcf")  # light fills, so the critical curves read on top
CURVES = (("c_loss", "#1b4f9c", "o", -0.14), ("c_sharp", "#b2182b", "s", 0.0), ("c_max", "black", "v", 0.14))


def seed_regime(c: float, crit) -> int:
    """The regime of one seed at ``c`` from its critical values (the paper's phases; -1: undetermined).

    Divergence above c_max; below it, sharpness reduction for c < c_loss,
    loss catapult for c_loss <= c < c_sharp, loss and sharpness catapult from
    max(c_loss, c_sharp) on (where the measured c_sharp lies below c_loss the
    loss has not yet risen there, so it stays sharpness reduction).  A nan
    (undetermined) value that would decide it makes the regime -1.
    """
    if math.isnan(crit.c_max):
        return -1
    if c > crit.c_max:
        return 3
    if math.isnan(crit.c_loss):
        return -1
    if c < crit.c_loss:
        return 0
    if math.isnan(crit.c_sharp):
        return -1
    return 2 if c >= crit.c_sharp else 1


def _grid_of(rows: list[dict]) -> np.ndarray:
    """The c grid of the rows (``cs`` from :func:`summarise`); else a 2^(k/4) grid over their critical values."""
    cs = sorted({float(c) for r in rows for c in r.get("cs", ())})
    if cs:
        return np.asarray(cs)
    vals = [v for r in rows for k in r.get("per_seed", ()) for v in (k.c_loss, k.c_sharp, k.c_max)
            if np.isfinite(v) and v > 0]
    if not vals:
        return 2.0 ** np.arange(0, 6.01, 0.25)
    lo, hi = math.floor(4 * math.log2(min(vals))) / 4, math.ceil(4 * math.log2(max(vals))) / 4 + 0.25
    return 2.0 ** np.arange(lo, hi + 1e-9, 0.25)


def regime_grid(rows: list[dict]) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """The regime of every grid point of the (d/w, c) plane, from each seed's critical values.

    Returns ``(columns, cs, codes)``: one column per (d, w), ordered by d / w
    (then depth), as dicts with ``depth``, ``width``, ``ratio``; the grid of c;
    and ``codes[column, c]``, the index in :data:`PHASE_REGIMES` of the median
    regime over the seeds where it is determined (regimes are ordered as c
    grows; the lower of the two middle ones for an even count), -1 where no
    seed determines it.
    """
    ordered = sorted(rows, key=lambda r: (r["ratio"], r["depth"]))
    cs = _grid_of(ordered)
    codes = np.full((len(ordered), len(cs)), -1, int)
    for i, r in enumerate(ordered):
        for j, c in enumerate(cs):
            known = sorted(k for k in (seed_regime(float(c), crit) for crit in r.get("per_seed", ())) if k >= 0)
            if known:
                codes[i, j] = known[(len(known) - 1) // 2]
    columns = [dict(depth=r["depth"], width=r["width"], ratio=r["ratio"]) for r in ordered]
    return columns, cs, codes


def _edges(cs: np.ndarray) -> np.ndarray:
    """Cell edges of a geometric grid: the geometric midpoints, and half a step beyond each end."""
    if len(cs) == 1:
        return np.array([cs[0] / 2 ** 0.125, cs[0] * 2 ** 0.125])
    mid = np.sqrt(cs[:-1] * cs[1:])
    return np.concatenate([[cs[0] ** 2 / mid[0]], mid, [cs[-1] ** 2 / mid[-1]]])


def plot_phase_diagram(rows: list[dict], *, title: str = ""):
    """The early-training phase diagram in the (d/w, c) plane, as in Kalra & Barkeshli (2023, Fig. 2).

    Each measured grid point (one column per (d, w), ordered by d / w; one row
    per c of the sweep) is a cell filled with its regime (:func:`regime_grid`:
    sharpness reduction, loss catapult, loss and sharpness catapult,
    divergence; hatched where undetermined), and on top the critical curves
    c_loss, c_sharp and c_max: the median over seeds with the min-max range
    as error bars (a value beyond the grid is left out), and the line c = 2.
    Where a seed did not diverge up to the grid's largest c, its c_max is
    only a lower bound: that column's c_max marker is drawn open.
    ``rows``: :func:`~eoslab.experiments.phases.critical.summarise`.  Returns
    the figure.
    """
    from fractions import Fraction

    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    columns, cs, codes = regime_grid(rows)
    by_key = {(r["depth"], r["width"]): r for r in rows}
    ordered = [by_key[(c["depth"], c["width"])] for c in columns]
    fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    ax.patch.set_facecolor("white")
    ax.patch.set_hatch("////")  # undetermined cells are left unfilled: the hatched background shows
    ax.patch.set_edgecolor("0.75")
    x = np.arange(len(columns), dtype=float)
    ye = _edges(cs)
    mesh = ax.pcolormesh(np.arange(len(columns) + 1) - 0.5, ye, np.ma.masked_less(codes.T, 0),
                         cmap=ListedColormap(PHASE_COLOURS), norm=BoundaryNorm(np.arange(-0.5, 4.0), 4),
                         shading="flat", zorder=1, edgecolors="none")
    mesh.set_rasterized(True)
    handles = [Patch(facecolor=PHASE_COLOURS[k], edgecolor="0.5", lw=0.5, label=name)
               for k, name in enumerate(PHASE_REGIMES)]
    if (codes < 0).any():
        handles.append(Patch(facecolor="white", edgecolor="0.6", hatch="////", lw=0.5, label="undetermined"))
    for name, colour, marker, offset in CURVES:
        med = np.array([r[name]["median"] for r in ordered])
        lo = np.array([r[name]["min"] for r in ordered])
        hi = np.array([r[name]["max"] for r in ordered])
        fin = np.isfinite(med)
        lo, hi = np.where(np.isfinite(lo), lo, med), np.where(np.isfinite(hi), hi, med)  # beyond the grid
        ax.errorbar(x[fin] + offset, med[fin], yerr=[med[fin] - lo[fin], hi[fin] - med[fin]], color=colour,
                    marker=marker, ms=5.5, mec="white", mew=0.6, ls="-", lw=1.5, elinewidth=1.0, capsize=2.5,
                    zorder=4)
        handles.append(Line2D([], [], color=colour, marker=marker, ms=5.5, mec="white", lw=1.5,
                              label=f"{name} (median, min–max)"))
        if name == "c_max":  # no seed diverged up to the top of the grid: c_max is only known to be at least that
            bound = fin & (hi >= cs[-1])
            if bound.any():
                ax.plot(x[bound] + offset, med[bound], ls="none", marker=marker, ms=7, mfc="white", mec=colour,
                        mew=1.2, zorder=5)
                handles.append(Line2D([], [], ls="none", marker=marker, ms=7, mfc="white", mec=colour, mew=1.2,
                                      label="c_max ≥ (a seed did not\ndiverge up to the top c)"))
    ax.axhline(2.0, color="0.25", ls="--", lw=1.0, zorder=3)
    handles.append(Line2D([], [], color="0.25", ls="--", lw=1.0, label="c = 2"))
    ax.set_xlim(-0.5, len(columns) - 0.5)
    ax.set_ylim(ye[0], ye[-1])
    ax.set_yscale("log", base=2)
    powers = [2.0 ** k for k in range(math.ceil(math.log2(ye[0])), math.floor(math.log2(ye[-1])) + 1)]
    ax.set_yticks(powers, [f"{p:g}" for p in powers])
    ax.yaxis.set_minor_locator(plt.NullLocator())
    ax.set_xticks(x, [f"{Fraction(c['depth'], c['width'])}\n({c['depth']}, {c['width']})" for c in columns])
    ax.tick_params(axis="x", length=0, labelsize=9)
    ax.set_xlabel("d / w   (depth d, width w)")
    ax.set_ylabel("c = η λ₀")
    fig.legend(handles=handles, loc="outside right center", fontsize=8.5, frameon=False,
               title="regime (median over seeds)", title_fontsize=9, alignment="left")
    fig.suptitle(title or "early-training phase diagram", fontsize=10)
    return fig


def plot_early_trajectories(entry: dict, seed: int, cs: Sequence[float], *, title: str = ""):
    """Loss and lambda_t / lambda_0 over the first steps for representative c (one colour per c)."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    by_c = entry["runs"][seed]
    for c in cs:
        r = by_c[c]
        loss, lam = r.get("early_loss", []), r.get("early_sharpness", [])
        if len(loss):
            a.plot(np.arange(len(loss)), loss, marker=".", label=f"c = {c:.3g}")
        if len(lam):
            b.plot(np.arange(len(lam)), np.asarray(lam) / lam[0], marker=".", label=f"c = {c:.3g}")
    a.set_yscale("log")
    a.set_xlabel("step")
    a.set_ylabel("train loss (MSE, mean over outputs)")
    b.set_xlabel("step")
    b.set_ylabel(r"$\lambda_t / \lambda_0$")
    b.set_yscale("log")
    b.axhline(1.0, color="k", lw=0.8, ls=":")
    a.legend(fontsize=8.5)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def format_spread(s: dict) -> str:
    """``median [min, max] n=k`` (and how many were undetermined)."""
    if s["n"] == 0:
        return f"— n=0" + (f" ({s['missing']} undetermined)" if s.get("missing") else "")
    text = f"{s['median']:.3g} [{s['min']:.3g}, {s['max']:.3g}] n={s['n']}"
    return text + (f" ({s['missing']} undetermined)" if s.get("missing") else "")


def format_table(rows: list[dict]) -> str:
    names = ("c_loss", "c_sharp", "c_barrier", "c_max", "c_barrier_10", "c_barrier_100")
    head = f"{'d':>3} {'w':>4} {'d/w':>7}  " + " ".join(f"{n:>30}" for n in names) + "  ordered"
    lines = ["critical values: median [min, max] over the n seeds where each is determined (inf: above the grid, "
             "-inf: below it; undetermined: a run missing or its sharpness not certified); c_barrier on "
             "theta_0 -> theta_1, c_barrier_10 / _100 on theta_0 -> theta_10 / theta_100 (a diverged run counts "
             "as a barrier); ordered: seeds with c_loss <= c_sharp <= c_max / seeds where all three are determined",
             head]
    for r in sorted(rows, key=lambda r: r["ratio"]):
        lines.append(f"{r['depth']:>3} {r['width']:>4} {r['ratio']:>7.4f}  "
                     + " ".join(f"{format_spread(r[n]):>30}" for n in names)
                     + f"  {r['ordered_seeds']}/{r['order_n']} (of {r['seeds']})")
    return "\n".join(lines)


def not_run(claim: str, quantity: str, reason: str) -> Claim:
    """The row of a claim this mode does not run: present, with holds = None and the reason."""
    return Claim(claim, quantity, "not run", None, PAPER, reason)


def ordering_claim_text(label: str, d: int, w: int) -> str:
    return f"[{label}, d={d}, w={w}] c_loss <= c_sharp <= c_max"


ORDER_QUANTITY = "medians of c_loss, c_sharp, c_max over the seeds where all three are determined"


def ordering_claim(r: dict, label: str) -> Claim:
    """c_loss <= c_sharp <= c_max on the medians over the same seeds (n printed); None when no seed has all three."""
    o, n = r["order"], r["order_n"]
    holds = bool(o["c_loss"] <= o["c_sharp"] <= o["c_max"]) if n else None
    return Claim(
        ordering_claim_text(label, r["depth"], r["width"]), ORDER_QUANTITY,
        dict(o, n=n), holds, PAPER,
        f"medians over the n={n} of {r['seeds']} seeds where all three are determined; ordered in "
        f"{r['ordered_seeds']}/{n} of them; each over its own determined seeds: c_loss {format_spread(r['c_loss'])}, "
        f"c_sharp {format_spread(r['c_sharp'])}, c_max {format_spread(r['c_max'])}"
        + ("" if n else "; not testable: no seed with all three determined (c_sharp needs certified "
                         "eigenvalues at steps 0-10, c_max every run up to the first divergence)")
        + order_analysis(o),
        accuracy=r.get("accuracy"))


def order_analysis(o: dict) -> str:
    """Why the order c_loss <= c_sharp <= c_max fails, read off the medians (empty when it holds)."""
    notes = []
    for name in ("c_loss", "c_sharp"):
        if o[name] > o["c_max"]:
            notes.append(f"{name} lies above c_max: on this grid the first early rise comes only with a run that "
                         f"diverges within 100 steps (a catapult window narrower than the grid step)")
    if o["c_loss"] > o["c_sharp"]:
        notes.append("the sharpness rises within 10 steps at a smaller c than the loss")
    return "".join(f"; {n}" for n in notes)


def trend_claim(rows: list[dict], label: str) -> Claim:
    """c_loss grows with d/w: Spearman rho > 0 of the median c_loss against d/w, and larger at the largest d/w."""
    usable = sorted((r for r in rows if r["c_loss"]["n"] > 0), key=lambda r: r["ratio"])
    claim = f"[{label}] c_loss grows with d/w (the sharpness-reduction phase 2 < c < c_loss opens up)"
    quantity = "Spearman correlation of median c_loss with d/w; c_loss at the smallest and largest d/w"
    per = "; ".join(f"d/w={r['ratio']:.3g}: {format_spread(r['c_loss'])}" for r in usable)
    if len(usable) < 3:
        return Claim(claim, quantity, math.nan, None, PAPER,
                     f"not testable: {len(usable)} (d, w) with a determined c_loss, a rank correlation needs 3; "
                     + per)
    rho = spearman([r["ratio"] for r in usable], [r["c_loss"]["median"] for r in usable])
    small, large = usable[0], usable[-1]
    holds = bool(np.isfinite(rho) and rho > 0 and large["c_loss"]["median"] > small["c_loss"]["median"])
    return Claim(claim, quantity, rho, holds, PAPER, f"holds if rho > 0 and c_loss(largest) > c_loss(smallest); "
                 + per)


def small_ratio_claim(rows: list[dict], label: str) -> Claim:
    """c_loss is about 2 at the smallest d/w: its median within [1.5, 2.9] (the grid's resolution)."""
    small = min(rows, key=lambda r: r["ratio"])
    s = small["c_loss"]
    holds = bool(1.5 <= s["median"] <= 2.9) if s["n"] else None
    return Claim(
        f"[{label}] c_loss is about 2 at the smallest d/w",
        "median c_loss at the smallest d/w (the c grid's resolution is its ratio 2^0.25 or 2^0.5)",
        s["median"], holds, PAPER,
        f"d={small['depth']}, w={small['width']}: {format_spread(s)}; holds if in [1.5, 2.9]")


def barrier_claim(rows: list[dict], label: str) -> Claim:
    """c_sharp <= c_barrier <= c_max on the medians over the seeds where all four values are determined."""
    tested, ordered, equal_loss, b10_above = 0, 0, 0, 0
    parts = []
    for r in sorted(rows, key=lambda r: r["ratio"]):
        crit = [c for c in r["per_seed"] if not any(np.isnan((c.c_sharp, c.c_barrier, c.c_max, c.c_loss)))]
        if not crit:
            parts.append(f"d={r['depth']}, w={r['width']}: n=0")
            continue
        med = {n: float(np.median([getattr(c, n) for c in crit])) for n in ("c_sharp", "c_barrier", "c_max")}
        tested += 1
        ordered += med["c_sharp"] <= med["c_barrier"] <= med["c_max"]
        equal_loss += sum(c.c_barrier == c.c_loss for c in crit)
        parts.append(f"d={r['depth']}, w={r['width']}: c_sharp {med['c_sharp']:.3g}, c_barrier "
                     f"{med['c_barrier']:.3g}, c_max {med['c_max']:.3g} (n={len(crit)})")
        b10 = r["c_barrier_10"]
        b10_above += bool(b10["n"] and r["c_max"]["n"] and b10["median"] > r["c_max"]["median"])
    seeds = sum(len([c for c in r["per_seed"] if not any(np.isnan((c.c_sharp, c.c_barrier, c.c_max, c.c_loss)))])
                for r in rows)
    return Claim(
        f"[{label}] c_sharp <= c_barrier <= c_max",
        "(d, w) where the medians (over the seeds with all of them determined) are ordered; c_barrier: the "
        "smallest c whose first step crosses a loss barrier (training loss on theta_0 -> theta_1 above L_0)",
        f"{ordered}/{tested}", bool(ordered == tested) if tested else None, PAPER,
        "; ".join(parts) + f"; c_barrier = c_loss in {equal_loss}/{seeds} seeds"
        + (" (the first step's barrier is its loss rise, so c_sharp <= c_barrier fails wherever c_sharp > c_loss, "
           "the paper's own order)" if seeds and equal_loss == seeds and ordered < tested else "")
        + f"; on theta_0 -> theta_10 (the former definition) the median barrier lies above c_max in "
        f"{b10_above}/{len(rows)} (d, w)",
        accuracy=combine(r.get("accuracy") for r in rows))


def digits_claims(rows: list[dict], label: str) -> list[Claim]:
    """The claims of the digits sweeps: the order per (d, w), the d/w trend, c_loss near 2, the barrier."""
    claims = [ordering_claim(r, label) for r in sorted(rows, key=lambda r: r["ratio"])]
    return claims + [trend_claim(rows, label), small_ratio_claim(rows, label), barrier_claim(rows, label)]
