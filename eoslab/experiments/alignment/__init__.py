r"""Trajectory alignment at the edge of stability (Song & Yun, NeurIPS 2023).

Claim of the paper: when GD runs at the edge of stability (EoS), trajectories
from different initialisations, written in suitable coordinates ``(p, q)``,
align on one *bifurcation diagram* that does not depend on the
initialisation; proven for a two-layer linear network and a single-neuron
nonlinear network, each trained on one data point.  This reproduction runs
ensembles of such trajectories (one ``vmap`` over members of a ``lax.scan``
over steps), measures their distance to the curve and writes the claims
table.

Modules: :mod:`~eoslab.experiments.alignment.theory` (the derivation: the
1-D map, the curves ``r(p)`` and ``Q(p)``, the exact reduced map),
:mod:`~eoslab.experiments.alignment.simulation` (ensembles of GD
trajectories), :mod:`~eoslab.experiments.alignment.analysis` (what is
measured, the claims), :mod:`~eoslab.experiments.alignment.figures`,
:mod:`~eoslab.experiments.alignment.recipe` (``configs/alignment.toml``,
validated).

``--quick`` takes ``n_init`` = 128 instead of 2000 (every claim is run); its
titles and ``claims.json`` (``"quick": true``) say so.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping

import jax

from eoslab.experiments.alignment.analysis import (
    PAPER,
    claims_for,
    final_sharpness_ratio,
    final_within,
    per_step_metrics,
    summarise,
)
from eoslab.experiments.alignment.figures import figure
from eoslab.experiments.alignment.recipe import default_config, load_config
from eoslab.experiments.alignment.simulation import Ensemble, run_ensemble, run_single
from eoslab.experiments.alignment.theory import (
    bifurcation_q,
    check_alignment,
    coordinates,
    curve_distance,
    curve_q,
    flip_point,
    map_1d,
    period_two_orbit,
    r_curve,
    reduced_step,
)
from eoslab.experiments.base import store_in
from eoslab.experiments.claims import Claim, write_claims
from eoslab.models.toy import make_toy

__all__ = [
    "Ensemble",
    "PAPER",
    "bifurcation_q",
    "check_alignment",
    "claims_for",
    "coordinates",
    "curve_distance",
    "curve_q",
    "default_config",
    "final_sharpness_ratio",
    "final_within",
    "flip_point",
    "load_config",
    "map_1d",
    "per_step_metrics",
    "period_two_orbit",
    "r_curve",
    "reduced_step",
    "reproduce",
    "run_ensemble",
    "run_single",
    "summarise",
]


def reproduce(out_dir, *, quick: bool = False, progress: bool = True, store=None,
              config: Mapping | None = None, overrides: list[str] | None = None, force: bool = False
              ) -> list[Claim]:
    """Run the alignment recipe; write figures, ``claims.md`` and ``claims.json`` into ``out_dir``.

    For each toy model and step size of the recipe (``configs/alignment.toml``,
    overridden by the mapping ``config`` and the ``key=value`` strings
    ``overrides``; ``quick`` uses its ``quick`` settings: :func:`load_config`), GD runs
    from ``n_init`` initialisations, and one run per (model, eta) in ``store``
    (a :class:`eoslab.store.RunStore`; default the store in ``out_dir``)
    records per-step summary metrics.  Computes in float64 (x64 is switched on inside this call
    only).  It has no progress output (``progress`` is accepted for the common signature).
    The simulations take seconds and the figures need every trajectory, so
    they always run; run again, each (model, eta) run replaces its earlier
    run in the store (``force`` is accepted for the common signature).
    """
    del progress, force
    cfg = load_config(config, quick=quick, overrides=overrides)
    out = Path(out_dir)
    with jax.enable_x64(True):
        for name, spec in cfg["models"].items():
            model = make_toy(spec["kind"], **dict(spec.get("options", {})))
            check_alignment(model)
        out.mkdir(parents=True, exist_ok=True)
        claims: list[Claim] = []
        with store_in(out, store) as store:
            for mi, (name, spec) in enumerate(cfg["models"].items()):
                model = make_toy(spec["kind"], **dict(spec.get("options", {})))
                theta0 = model.init(jax.random.fold_in(jax.random.PRNGKey(cfg["seed"]), mi), cfg["n_init"])
                model_results = []
                for eta in spec["etas"]:
                    eta = float(eta)
                    run_cfg = {"experiment": "alignment", "model": name, "kind": spec["kind"],
                               "options": spec.get("options", {}), "eta": eta, "steps": spec["steps"],
                               "n_init": cfg["n_init"], "burn_in": cfg["burn_in"], "quick": quick}
                    run_id = store.start_run(run_cfg, name=f"alignment/{name}/eta={eta:g}",
                                             seed=cfg["seed"], group="alignment")
                    try:
                        t0 = time.perf_counter()
                        ens = run_ensemble(model, theta0, eta, spec["steps"],
                                           divergence_limit=cfg["divergence_limit"])
                        summ = summarise(model, ens, burn_in=cfg["burn_in"], edge_p=cfg["edge_p"],
                                         curve_tol=cfg["curve_tol"], sharpness_tol=cfg["sharpness_tol"])
                        summ["seconds"] = time.perf_counter() - t0
                    except Exception as exc:
                        store.finish_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
                        raise
                    store.log_metrics(run_id, per_step_metrics(model, ens, cfg["edge_p"]))
                    store.finish_run(run_id, "completed")
                    store.delete_earlier(run_id)  # a rerun replaces the earlier run of this (model, eta)
                    model_results.append((ens, summ))
                    claims.extend(claims_for(name, model, summ, cfg))
                figure(name, model, model_results, cfg, out, quick)
    write_claims(out, claims, "Trajectory alignment (Song & Yun 2023)", quick=quick)
    return claims
