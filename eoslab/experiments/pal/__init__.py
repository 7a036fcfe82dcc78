r"""Reproduction of the parabolic approximation line search, PAL (Mutschler & Zell 2020).

The paper's empirical basis: the minibatch loss along the (normalised)
update direction, l(s) = L_batch(theta_t + s d_t/|d_t|), is locally almost a
parabola and mostly convex, so the parabola PAL fits from l(0), l'(0) and
l(mu) puts its step near the minimum of the line; PAL (step alpha = 1/0.6
times the vertex, capped at s_max) then trains about as well as tuned SGD.

Setting: fc-tanh [200, 200] on digits (1,500 training examples; flat inputs:
the configs have no image option for digits, so no CNN), float32, PAL with
the published defaults (``configs/pal.toml``: mu = 1, alpha = 1/0.6,
s_max = 3.16) and its conjugate variant (beta = 0.4,
``configs/pal-conjugate.toml``), MSE (0.5 sum over outputs, mean over
examples) and cross-entropy (``configs/pal-ce.toml``, 300 steps), with
minibatches of 128 and in full batch (``optimizer.batch_size=0``); the
constant-step baselines (``configs/pal-sgd.toml``, ``configs/pal-ce-sgd.toml``)
train a grid of step sizes spaced ~3x apart.

``--quick``: the MSE settings only (PAL and PAL beta=0.4 with minibatches, PAL
in full batch, and their baselines), 500 steps, 8 profiles per run, seed 0
only (its minibatch claims say "1 seed (0) only").  The full run adds PAL
beta=0.4 in full batch and the cross-entropy settings, 1000 steps (CE: 300)
and 12 profiles per run, and runs seeds 0, 1 and 2 in the minibatch settings.
The claims of the runs ``--quick`` skips are rows of its table with holds = None and the reason; its titles and
``claims.json`` (``"quick": true``) say it is a quick run.  The claims rest on
line profiles and losses, not on eigenvalues; the table's eta_t * lambda_1 / 2
uses certified (converged) eigenvalues only.

The package, one concept a module:

* :mod:`~eoslab.experiments.pal.settings`: the settings (recipes, overrides,
  seeds) and the configs they make;
* :mod:`~eoslab.experiments.pal.profiler`: the replay of a trained PAL run and
  the line profiles along its update direction (the grids, the exact
  minimiser, the straight-line control);
* :mod:`~eoslab.experiments.pal.claims`: the summary of a run's profiles and
  its claims, with their thresholds;
* :mod:`~eoslab.experiments.pal.tables` and
  :mod:`~eoslab.experiments.pal.figures`: ``table.txt`` and the figures;
* :mod:`~eoslab.experiments.pal.reproduction`: :func:`reproduce`, the whole
  reproduction (registered in :data:`eoslab.experiments.base.REPRODUCTIONS`).
"""
from eoslab.experiments.pal.claims import (CONVEX_FRACTION, LOSS_FACTOR, R2_MEDIAN, R2_P10, RATIO_FACTOR,
                                           claim_texts, claims_for_run, final_loss, not_run_claims,
                                           summarise_profiles)
from eoslab.experiments.pal.figures import plot_profiles, plot_training
from eoslab.experiments.pal.profiler import (LOCAL_HALF, MAX_ROWS_PER_CHUNK, WIDE_PER_MU, Profiler, exact_minimiser,
                                             linear_r2, profile_run, profile_steps, replay_chunk, wide_grid)
from eoslab.experiments.pal.reproduction import reproduce
from eoslab.experiments.pal.settings import (FULL_PROFILES, PAPER, QUICK_PROFILES, QUICK_STEPS, SEEDS, SETTINGS,
                                             PalRun, Setting)
from eoslab.experiments.pal.tables import edge_note, format_profiles, format_training

__all__ = [
    "CONVEX_FRACTION", "FULL_PROFILES", "LOCAL_HALF", "LOSS_FACTOR", "MAX_ROWS_PER_CHUNK", "PAPER", "QUICK_PROFILES",
    "QUICK_STEPS", "R2_MEDIAN", "R2_P10", "RATIO_FACTOR", "SEEDS", "SETTINGS", "WIDE_PER_MU", "PalRun", "Profiler",
    "Setting", "claim_texts", "claims_for_run", "edge_note", "exact_minimiser", "final_loss", "format_profiles",
    "format_training", "linear_r2", "not_run_claims", "plot_profiles", "plot_training", "profile_run",
    "profile_steps", "replay_chunk", "reproduce", "summarise_profiles", "wide_grid",
]
