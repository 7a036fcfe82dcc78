"""``table.txt`` of the PAL reproduction: the per-profile rows of a run, the final losses of a setting.

The eigenvalue note (:func:`edge_note`) uses certified (converged) eigenvalues
only (:func:`~eoslab.experiments.claims.certified_series`).
"""
from __future__ import annotations

import numpy as np

from eoslab.experiments.claims import certified_series


def format_profiles(tag: str, records: list[dict], minibatch: bool, replay_diff: float) -> str:
    own = "batch" if minibatch else "full"
    lines = [f"[{tag}] per profile (s: distance along d/|d|; R² of a parabola over |s| ≤ μ (w) and |s| ≤ 2 s_t "
             f"(l), 'R²l line' that of a straight line over |s| ≤ 2 s_t; 'batch' is the loss PAL fits"
             f"{'' if minibatch else ' = the full loss'}); replay vs stored run: "
             f"max |Δ per-step loss| = {replay_diff:.3g}",
             f"{'step':>5} {'loss':>9} {'|d|':>8} {'s_t':>8} {'branch':>8} {'vertex':>8} {'s* batch':>9} "
             f"{'s* full':>9} {'s_t/s*':>7} {'R²w batch':>10} {'R²w full':>9} {'R²l batch':>10} {'R²l full':>9} "
             f"{'a_w>0':>6} {'check':>8}"]
    for r in records:
        w, loc = r.get("wide"), r.get("local")
        sb, sf = r.get("minimiser_batch", np.nan), r.get("minimiser_full", np.nan)
        ratio = r["step_taken"] / sb if sb and np.isfinite(sb) and sb > 0 else float("nan")
        get = lambda g, k, n: (g[k][n] if g is not None else float("nan"))
        check = max(abs(r.get("check_l0", np.nan)), abs(r.get("check_lmu", np.nan)))
        lines.append(
            f"{r['step']:>5d} {r['loss']:>9.4g} {r['direction_norm']:>8.3g} {r['step_taken']:>8.4g} "
            f"{r['branch']:>8} {r['pal_vertex']:>8.4g} {sb:>9.4g} {sf:>9.4g} {ratio:>7.3f} "
            f"{get(w, 'r2', own):>10.4f} {get(w, 'r2', 'full'):>9.4f} {get(loc, 'r2', own):>10.4f} "
            f"{get(loc, 'r2', 'full'):>9.4f} {get(loc, 'r2_linear', own):>9.4f} {str(get(w, 'a', own) > 0):>6} "
            f"{check:>8.1e}")
    return "\n".join(lines)


def format_training(label: str, rows: list[tuple[str, float, str]]) -> str:
    lines = [f"[{label}] final training loss", f"{'run':>24} {'final loss':>11} {'notes':>6}"]
    for name, loss, note in rows:
        lines.append(f"{name:>24} {loss:>11.4g} {note}")
    return "\n".join(lines)



def edge_note(metrics: dict) -> str:
    """η_t·λ1/2 at the last eval step whose eigenvalue is certified (converged), with its error estimate."""
    steps, edge, acc = certified_series(metrics, "edge_ratio")
    total = acc.used + acc.unconverged
    if not len(edge):
        return f"η_t·λ1/2: none of {total} eigenvalues certified" if total else "no η_t·λ1/2 measured"
    return (f"η_t·λ1/2 at step {int(steps[-1])} {edge[-1]:.3g} ({acc.used}/{total} certified, relative error "
            f"≤ {acc.max_rel_error:.1e})")
