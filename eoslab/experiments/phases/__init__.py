"""Reproduction of the early-training phase diagram (Kalra & Barkeshli 2023).

With eta = c / lambda_0 (lambda_0 the sharpness at initialisation, measured
per run), SGD training of a ReLU network shows four regimes: (i) an early
transient, (ii) intermediate saturation, (iii) progressive sharpening and
(iv) the edge of stability.  The early transient has a phase diagram in c,
depth d and width w with critical values (each estimated per seed from a
grid of c = 2^x):

* ``c_loss``: the smallest c at which the training loss rises above its
  initial value within the first 10 steps;
* ``c_sharp``: the smallest c at which the sharpness rises above lambda_0
  within the first 10 steps (certified eigenvalues only, see below);
* ``c_barrier``: the smallest c whose *first step* crosses a loss barrier:
  the training loss somewhere on the segment theta_0 -> theta_1 (20 points)
  exceeds L(theta_0).  The table also gives the barrier on theta_0 ->
  theta_10 and theta_0 -> theta_100 (``c_barrier_10``, ``c_barrier_100``; a
  run that diverges counts as crossing one);
* ``c_max``: the largest c that does not diverge (within 100 steps); here the
  grid value below the smallest diverging c.

The paper finds c_loss <= c_sharp <= c_max; c_loss = 2 at small d/w, growing
with d/w, so that a *sharpness-reduction* phase 2 < c < c_loss opens up (the
loss falls while the sharpness drops) as the network gets deeper and
narrower.  The uv model ``f = v.u x / sqrt(n)`` is the analytic check:
c_loss = 2 and c_max = 4 (closed-form sharpness: exact).

The barrier's endpoint.  An earlier version read c_barrier on theta_0 ->
theta_10, and it landed at or above c_max for every (d, w).  A measurement
(d, w) in {(2, 128), (4, 64), (8, 16)}, 2 seeds, c = 2^0 ... 2^6 step 2^0.5,
the loss on 41 points of each segment theta_0 -> theta_T) shows why: by step
10 a run that catapults has come back below L_0, and the segment to theta_10
stays below L_0, so a barrier there appeared only in runs that then diverged
(one exception: an interior barrier at d = 4, w = 64, c = 8 and 11.3, seed
0).  On theta_0 -> theta_1 the barrier appears where the first step raises
the loss, in every case at exactly c_loss (its maximum was always the
endpoint theta_1, never an interior bump).  The segment to theta_1 follows
our reading of the paper (the first step crossing the barrier); the paper's
text could not be consulted here (not in the reference library), so the
endpoint and the claimed order c_sharp <= c_barrier <= c_max are recalled,
not quoted.

Missing runs and eigenvalue certificates.  Critical values are read on the
full grid of the sweep spec: a run that is missing or failed is *missing*
(the values it could decide are undetermined, nan), never a divergence.
c_sharp and the regimes use only certified sharpness values
(:func:`eoslab.experiments.claims.certified_series`: converged solves); a
rise that an uncertified value could hide is undetermined.  Every median in
the tables and claims carries its count n; the order claim compares medians
over the same seeds (those with all three values determined).  A run that
diverges inside the 10-step window counts as a loss and sharpness rise.

What runs (``reproduce``):

1. the uv model (:class:`~eoslab.models.toy.UVModel`, width 512, one data
   point, float64): GD for 1000 steps on a fine grid of c (step 2^0.01) and 8
   initialisations, in one ``vmap``;
2. the sweeps ``configs/sweeps/phases-first.toml`` (1 step, the loss barrier
   on theta_0 -> theta_1), ``phases-early.toml`` (10 steps, the loss and the
   sharpness after every step, the barrier at step 10) and
   ``phases-late.toml`` (100 steps, no sharpness, the barrier at the end)
   over c, d in {2, 4, 8}, w in {16, 64, 128} and 3 seeds on digits (fc-relu
   without bias, init ``kalra``, ``mse-mean``, SGD batch 512;
   :mod:`eoslab.sweep`, resumable);
3. the recipe ``configs/phases.toml``: 3000 SGD steps at d = 4, w = 128 for
   c in {0.5, 1, 2, 4}, with the sharpness after every step, whose certified
   values, averaged over consecutive steps (period 2 at the edge), are cut
   into the four regimes (:func:`classify_regimes`); without ``--quick`` also
   with PyTorch's default init (variance 1/(3 fan_in)).

The regimes do not separate on digits.  A bounded search (d = 4, 3000 steps
-- 600 for ``kalra``, w = 128, SGD 512 -- c in {0.5, 1}, and 2 for PyTorch's
init with SGD, per-step sharpness) found the paper's sequence in none of: init ``kalra`` (w = 32, 128; SGD 512 and full
batch), ``lecun`` (w = 128, SGD 512) and ``pytorch`` (w = 128; SGD 512 and
full batch).  With ``kalra`` and ``lecun`` the sharpness falls in the first
steps and keeps falling or stays flat: eta * lambda ends at 0.08-0.67 of 2
(for c = 0.5, 1), the training loss is below 0.02 within a few hundred steps
and no sharpening follows.  With PyTorch's init (small outputs) the
sharpness rises from the first steps, with no saturation before it, reaches
the edge within 10-30 steps and then drifts below it (eta * lambda 1.3-2.0
at step 3000).  ``mse`` against ``mse-mean`` is no knob: scaling the loss by
k scales lambda_0 by k and eta = c / lambda_0 by 1/k, the same trajectory.
Digits (1500 examples) is too easy for a net of this size to keep its loss
up long enough to sharpen after a saturation; the paper's CIFAR-10 and
MNIST are not available offline here.  The regime claims keep their
criterion and fail (or are not testable while the stored sharpness is not
certified).

``--quick`` takes 2 seeds, d in {2, 8}, w in {16, 128}, c = 2^0, 2^0.5, ...,
2^6 and 800 steps for the regimes (Kalra init only); the claims it does not
run are rows with holds = None and the reason, and its titles and
``claims.json`` (``"quick": true``) say it is a quick run.
"""
from __future__ import annotations

from pathlib import Path

from eoslab.experiments.base import store_in
from eoslab.experiments.claims import Claim, quick_title, write_claims
from eoslab.experiments.phases.critical import (CRITICAL, EARLY_STEPS, PAPER, Critical, certified_sharpness_rises,
                                                collect, critical_values, first_c, grid_points, last_stable_c,
                                                line_barrier, loss_rises, sharpness_rises, spearman, summarise)
from eoslab.experiments.phases.diagram import (ORDER_QUANTITY, barrier_claim, digits_claims, format_spread,
                                               format_table, not_run, order_analysis, ordering_claim,
                                               ordering_claim_text, plot_early_trajectories, plot_phase_diagram,
                                               small_ratio_claim, trend_claim)
from eoslab.experiments.phases.regimes import (EDGE, FLAT, MIN_CERTIFIED, QUICK_REGIME_STEPS, REGIME_QUANTITY,
                                               REGIME_VARIANTS, REGIMES, certified_regimes, classify_regimes,
                                               log_resample, plot_regimes, regime_claim_text, regime_claims,
                                               regime_verdict, regime_where, regimes_in_order, run_regimes,
                                               two_step_mean)
from eoslab.experiments.phases.sweeps import QUICK_GRID, QUICK_SEEDS, SWEEPS, sweep_spec
from eoslab.experiments.phases.uv import (UV_SEEDS, UV_STEPS, UV_TOLERANCE, UV_WIDTH, plot_uv, uv_claims,
                                          uv_phase_diagram)
from eoslab.experiments.statistics import spread
from eoslab.train.recipes import load_recipe

__all__ = [
    "CRITICAL", "EARLY_STEPS", "EDGE", "FLAT", "MIN_CERTIFIED", "ORDER_QUANTITY", "PAPER", "QUICK_GRID",
    "QUICK_REGIME_STEPS", "QUICK_SEEDS", "REGIMES", "REGIME_QUANTITY", "REGIME_VARIANTS", "SWEEPS", "UV_SEEDS",
    "UV_STEPS", "UV_TOLERANCE", "UV_WIDTH", "Critical", "barrier_claim", "certified_regimes",
    "certified_sharpness_rises", "classify_regimes", "collect", "critical_values", "digits_claims", "first_c",
    "format_spread", "format_table", "grid_points", "last_stable_c", "line_barrier", "log_resample", "loss_rises",
    "not_run", "order_analysis", "ordering_claim", "ordering_claim_text", "plot_early_trajectories",
    "plot_phase_diagram", "plot_regimes", "plot_uv", "regime_claim_text", "regime_claims", "regime_verdict",
    "regime_where", "regimes_in_order", "reproduce", "run_regimes", "sharpness_rises", "small_ratio_claim",
    "spearman", "summarise", "sweep_spec", "trend_claim", "two_step_mean", "uv_claims", "uv_phase_diagram",
]


def reproduce(out_dir: str | Path, *, quick: bool = False, progress: bool = True, store=None, executor=None,
              overrides: list[str] | None = None, grid: dict | None = None, seeds: int | None = None,
              sweep_overrides: list[str] | None = None, uv: dict | None = None, force: bool = False) -> list[Claim]:
    """Run the uv check, the three digits sweeps and the regime runs; write figures, table.txt and the claims.

    ``overrides`` apply to the regime recipe (after ``--quick``'s), ``grid`` /
    ``seeds`` / ``sweep_overrides`` to the sweeps (:func:`sweep_spec`), ``uv``
    to :func:`uv_phase_diagram`; they exist to make small runs (tests).  Every
    claim of the full run is in the table: those a mode does not run are rows
    with holds = None and the reason.
    """
    import jax

    from eoslab.plots import save_figure
    from eoslab.sweep import run_sweep, sweep_runs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    claims: list[Claim] = []
    tables = []

    # 1. the uv model (closed-form sharpness)
    with jax.enable_x64(True):
        uvd = uv_phase_diagram(**(uv or {}))
    claims += uv_claims(uvd)
    save_figure(plot_uv(uvd, title=quick_title(f"uv model, width {uvd['width']}: c_loss = 2, c_max = 4", quick)),
                out / "phases-uv")
    per_seed = uvd["per_seed"]
    tables.append("uv model (width {w}, {n} initialisations): c_loss {cl}, c_sharp {cs}, c_max {cm}".format(
        w=uvd["width"], n=len(per_seed), cl=format_spread(spread([c.c_loss for c in per_seed])),
        cs=format_spread(spread([c.c_sharp for c in per_seed])), cm=format_spread(spread([c.c_max for c in per_seed]))))

    # 2. the sweeps
    specs = [sweep_spec(n, quick=quick, grid=grid, seeds=seeds, overrides=sweep_overrides) for n in SWEEPS]
    with store_in(out, store) as runs:
        for spec in specs:
            summary = run_sweep(spec, store=runs, executor=executor, progress=progress, force=force)
            tables.append(summary.line())
        collected = collect(*(sweep_runs(runs, spec.name) for spec in specs), expected=grid_points(specs[1]))
    rows = summarise(collected)
    label = "digits, fc-relu, SGD 512"
    claims += digits_claims(rows, label)
    full = sweep_spec("phases-early")
    full_dw = [(d, w) for d in dict(full.axes)["model.depth"] for w in dict(full.axes)["model.width"]]
    ran = {(r["depth"], r["width"]) for r in rows}
    claims += [not_run(ordering_claim_text(label, d, w), ORDER_QUANTITY,
                       f"--quick runs d in {sorted({k[0] for k in ran})}, w in {sorted({k[1] for k in ran})}")
               for d, w in full_dw if (d, w) not in ran]
    tables.append(format_table(rows))
    save_figure(plot_phase_diagram(rows, title=quick_title(f"phase diagram: {label}, mse-mean", quick)),
                out / "phases-diagram")
    widest = max(collected, key=lambda k: k[0] / k[1])
    entry = collected[widest]
    seed = min(entry["runs"])
    cs_all = sorted(entry["runs"][seed])
    rep = [min(cs_all, key=lambda c: abs(c - x)) for x in (cs_all[0], 2.5, 6, 16, 45)]
    title = f"first {EARLY_STEPS} steps, d={widest[0]}, w={widest[1]}, seed {seed}"
    save_figure(plot_early_trajectories(entry, seed, sorted(set(rep)), title=quick_title(title, quick)),
                out / "phases-early-trajectories")

    # 3. the regimes (the paper's init; without --quick also PyTorch's default init)
    for label_r, extra in REGIME_VARIANTS:
        if quick and extra:
            cfg = load_recipe("phases", list(extra))
            where = regime_where(label_r, cfg)
            claims += [not_run(regime_claim_text(where, c), REGIME_QUANTITY, "--quick runs the Kalra init only")
                       for c in cfg.lrs]
            continue
        with store_in(out, store) as runs:
            got, line = run_regimes(out, label_r, list(extra) + list(overrides or []), quick=quick,
                                    progress=progress, title_quick=quick, store=runs, force=force)
        claims += got
        tables.append(line)
    write_claims(out, claims, "Early-training phase diagram (Kalra & Barkeshli 2023): claims", quick=quick)
    (out / "table.txt").write_text("\n\n".join(tables) + "\n")
    return claims
