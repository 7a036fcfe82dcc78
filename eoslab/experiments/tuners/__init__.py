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

The package, one concept a module:

* :mod:`~eoslab.experiments.tuners.settings`: the methods (recipes), the
  stochastic sweep's batch sizes and seeds, the ``--quick`` and CIFAR
  overrides;
* :mod:`~eoslab.experiments.tuners.summaries`: one row per member of a run
  (losses, certified sharpness, eta_t * lambda_t statistics, cost per step);
* :mod:`~eoslab.experiments.tuners.claims`: the full-batch and stochastic
  claims, their criteria fixed in module constants;
* :mod:`~eoslab.experiments.tuners.tables` and
  :mod:`~eoslab.experiments.tuners.figures`: ``table.txt`` and the figures;
* :mod:`~eoslab.experiments.tuners.reproduction`: :func:`reproduce`, the whole
  reproduction (registered in :data:`eoslab.experiments.base.REPRODUCTIONS`).
"""
from eoslab.experiments.tuners.claims import (ARMIJO_GROWTH, ARMIJO_MAX_ABOVE, CDAT_TOLERANCE, FINAL, MIN_COVERAGE,
                                              MIN_SEEDS, POLYAK_BAND, STOCHASTIC_RULE, Rule, full_batch_claims,
                                              full_batch_rules, not_run, stochastic_claims)
from eoslab.experiments.tuners.figures import plot_full_batch, plot_stochastic
from eoslab.experiments.tuners.reproduction import reproduce, run_methods, stochastic_sweep
from eoslab.experiments.tuners.settings import (BATCH_SIZES, CIFAR_GD_LRS, CIFAR_OVERRIDES, FULL_BATCH, PAPER,
                                                PAPER_CDAT, QUICK_OVERRIDES, SEEDS, STOCHASTIC, TITLE, Method)
from eoslab.experiments.tuners.summaries import EDGE, LAMBDA_WINDOW, best, certified_edge, summarise, summarise_member
from eoslab.experiments.tuners.tables import TABLE_NOTE, format_table

__all__ = [
    "ARMIJO_GROWTH", "ARMIJO_MAX_ABOVE", "BATCH_SIZES", "CDAT_TOLERANCE", "CIFAR_GD_LRS", "CIFAR_OVERRIDES", "EDGE",
    "FINAL", "FULL_BATCH", "LAMBDA_WINDOW", "MIN_COVERAGE", "MIN_SEEDS", "PAPER", "PAPER_CDAT", "POLYAK_BAND",
    "QUICK_OVERRIDES", "SEEDS", "STOCHASTIC", "STOCHASTIC_RULE", "TABLE_NOTE", "TITLE", "Method", "Rule", "best",
    "certified_edge", "format_table", "full_batch_claims", "full_batch_rules", "not_run", "plot_full_batch",
    "plot_stochastic", "reproduce", "run_methods", "stochastic_claims", "stochastic_sweep", "summarise",
    "summarise_member",
]
