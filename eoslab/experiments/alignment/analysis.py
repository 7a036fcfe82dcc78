"""What is measured on an ensemble: alignment distances, final sharpness, EoS fraction, and the claims.

Measurement
-----------

An *edge point* is a trajectory point at a step ``t > burn_in`` with
``|p| > edge_p`` (still oscillating).  The alignment distance of a point is
``|q - Q(p)|`` (in ``q``).  An initialisation *reaches EoS* when it did not
diverge, crossed the edge (``min_t q_t < r(0)``: the valley sharpness
``2/(eta q)`` exceeded ``2/eta``) and its final sharpness (largest Hessian
eigenvalue, closed form: exact, no eigensolver and no certificate involved)
is within ``sharpness_tol`` of ``2/eta`` at *both* of the last two steps: at
the edge the sharpness oscillates with period 2, and the last step alone
would be one phase of it.  The alignment distances use every step after
``burn_in`` (both phases).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from eoslab.experiments import statistics as st
from eoslab.experiments.alignment.simulation import Ensemble
from eoslab.experiments.alignment.theory import bifurcation_q, curve_distance, curve_q
from eoslab.experiments.claims import Claim

PAPER = "Song & Yun 2023, Trajectory Alignment: Understanding the Edge of Stability Phenomenon via Bifurcation Theory"


def final_within(sharpness: np.ndarray, eta: float, tol: float) -> np.ndarray:
    """Per initialisation: eta * lambda / 2 within ``tol`` of 1 at *both* of the last two steps.

    At the edge the sharpness oscillates with period 2; the last step alone
    is one phase of it (an aliased sample), so both phases must be at the edge.
    ``sharpness`` is ``[steps + 1, n]`` (closed form: exact).
    """
    last = np.asarray(sharpness[-2:], float) * eta / 2.0
    dev = np.max(np.abs(last - 1.0), axis=0)
    return np.isfinite(dev) & (dev <= tol)


def final_sharpness_ratio(sharpness: np.ndarray, eta: float, tol: float) -> dict:
    """eta * lambda / 2 over the last two steps: median of the per-initialisation two-step mean, min and max over
    both phases, and the fraction of initialisations at the edge in both phases (:func:`final_within`)."""
    last = np.asarray(sharpness[-2:], float) * eta / 2.0
    mean = last.mean(axis=0)
    fin_mean, fin = mean[np.isfinite(mean)], last[np.isfinite(last)]
    nan = float("nan")
    return {"median": float(np.median(fin_mean)) if fin_mean.size else nan,
            "min": float(np.min(fin)) if fin.size else nan,
            "max": float(np.max(fin)) if fin.size else nan,
            "fraction_within_tol": float(np.mean(final_within(sharpness, eta, tol)))}


def summarise(model, ens: Ensemble, *, burn_in: int, edge_p: float, curve_tol: float,
              sharpness_tol: float) -> dict:
    """Alignment distances, final sharpness and EoS fraction of one ensemble (see module docstring)."""
    eta = ens.eta
    steps = np.arange(ens.steps + 1)[:, None]
    p, q = ens.p, ens.q
    edge = (steps > burn_in) & np.isfinite(p) & np.isfinite(q) & (np.abs(p) > edge_p)
    pts_p, pts_q = p[edge], q[edge]
    out: dict[str, Any] = {"eta": eta, "n_init": ens.n, "n_diverged": int(ens.diverged.sum())}
    for order, key in ((1, "slow_manifold"), (0, "r_curve")):
        d_all = np.full(p.shape, np.nan)
        d_all[edge] = np.asarray(curve_distance(model, pts_p, pts_q, eta, order=order))
        stats = st.distances_within(d_all[edge], curve_tol)
        stats["p99_abs_p"] = float(np.percentile(np.abs(pts_p), 99)) if pts_p.size else float("nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # inits without edge points: all-NaN columns
            per_init = np.nanmedian(np.where(edge, d_all, np.nan), axis=0)
        has = np.isfinite(per_init)
        stats["per_init_median"] = float(np.median(per_init[has])) if has.any() else float("nan")
        stats["per_init_max"] = float(np.max(per_init[has])) if has.any() else float("nan")
        stats["n_init_with_edge_points"] = int(has.sum())
        out[key] = stats
    out["final_sharpness_ratio"] = {**final_sharpness_ratio(ens.sharpness, eta, sharpness_tol),
                                    "predicted": float(1.0 / curve_q(model, 0.0, eta, order=1))}
    within = final_within(ens.sharpness, eta, sharpness_tol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        crossed = np.nanmin(q, axis=0) < bifurcation_q(model)
    eos = ~ens.diverged & crossed & within
    out["eos_fraction"] = float(np.mean(eos))
    out["crossed_edge_fraction"] = float(np.mean(crossed))
    return out


def per_step_metrics(model, ens: Ensemble, edge_p: float) -> dict:
    steps = np.arange(ens.steps + 1)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        dist = np.asarray(curve_distance(model, np.nan_to_num(ens.p), ens.q, ens.eta, order=1))
        dist = np.where(np.isfinite(ens.p), dist, np.nan)
        metrics = {
            "median_loss": np.nanmedian(ens.loss, axis=1),
            "median_sharpness": np.nanmedian(ens.sharpness, axis=1),
            "median_sharpness_ratio": np.nanmedian(ens.sharpness, axis=1) * ens.eta / 2.0,
            "median_abs_p": np.nanmedian(np.abs(ens.p), axis=1),
            "median_q": np.nanmedian(ens.q, axis=1),
            "median_curve_distance": np.nanmedian(dist, axis=1),
            "fraction_at_edge": np.mean(np.abs(np.nan_to_num(ens.p)) > edge_p, axis=1),
            "fraction_diverged": np.mean(~np.isfinite(ens.loss), axis=1),
        }
    return {k: (steps, v) for k, v in metrics.items()}


def claims_for(name: str, model, summ: dict, cfg: dict) -> list[Claim]:
    eta = summ["eta"]
    tol, frac = cfg["curve_tol"], cfg["min_fraction"]
    where = f"{name}, eta={eta:g}, {summ['n_init']} inits"
    edge_def = f"points after step {cfg['burn_in']} with |p| > {cfg['edge_p']:g}"
    claims = []
    for key, label in (("r_curve", "the paper's bifurcation curve q = r(p)"),
                       ("slow_manifold", "the slow-manifold curve q = Q(p) (first-order correction of r(p))")):
        s = summ[key]
        holds = bool(s["n_points"] > 0 and s["fraction_within_tol"] >= frac)
        claims.append(Claim(
            claim=f"At EoS, GD trajectories from different initialisations align on {label} [{where}].",
            quantity=f"|q - curve(p)| over {edge_def}: pooled median/p99/max, fraction <= {tol:g}; "
                     "per-initialisation median distance: median and max over initialisations; "
                     "n_points and p99 of |p| of the edge points (the stretch of curve covered)",
            value={k: s[k] for k in ("median", "p99", "max", "fraction_within_tol", "per_init_median",
                                      "per_init_max", "n_points", "p99_abs_p")},
            holds=holds,
            paper=PAPER,
            detail=f"holds if >= {frac:.0%} of edge points lie within {tol:g} in q",
        ))
    fs = summ["final_sharpness_ratio"]
    claims.append(Claim(
        claim=f"Sharpness ends at the edge of stability 2/eta [{where}].",
        quantity="final sharpness * eta / 2 (largest Hessian eigenvalue, closed form: exact) over the last two "
                 "steps (both phases of a period-2 oscillation): median of the two-step mean, min and max over "
                 f"both, fraction of initialisations within {cfg['sharpness_tol']:.0%} in both; predicted 1/Q(0)",
        value=fs,
        holds=bool(fs["fraction_within_tol"] >= frac),
        paper=PAPER,
        detail=f"holds if >= {frac:.0%} of initialisations end within {cfg['sharpness_tol']:.0%} of 2/eta at both "
               "of the last two steps",
    ))
    claims.append(Claim(
        claim=f"GD from these initialisations reaches EoS [{where}].",
        quantity="fraction of initialisations that did not diverge, crossed the edge (min q < r(0)) and end "
                 f"with sharpness within {cfg['sharpness_tol']:.0%} of 2/eta at both of the last two steps",
        value={"eos_fraction": summ["eos_fraction"], "crossed_edge_fraction": summ["crossed_edge_fraction"],
               "n_diverged": summ["n_diverged"]},
        holds=bool(summ["eos_fraction"] >= frac),
        paper=PAPER,
        detail=f"holds if >= {frac:.0%}",
    ))
    return claims
