"""The PAL reproduction: train every setting's runs and baselines, profile them, write the outputs.

:func:`reproduce` is what ``eoslab reproduce pal`` runs
(:data:`eoslab.experiments.base.REPRODUCTIONS`).  The minibatch settings run
every seed of :data:`~eoslab.experiments.pal.settings.SEEDS` (``--quick``: the
first); their claims combine the seeds with
:func:`~eoslab.experiments.claims.across_seeds`; the figures show the first
seed.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from eoslab.experiments.base import store_in
from eoslab.experiments.claims import Claim, across_seeds, quick_title, write_claims
from eoslab.experiments.pal.claims import claims_for_run, final_loss, not_run_claims, summarise_profiles
from eoslab.experiments.pal.figures import plot_profiles, plot_training
from eoslab.experiments.pal.profiler import profile_run
from eoslab.experiments.pal.settings import (FULL_PROFILES, QUICK_PROFILES, SEEDS, SETTINGS, recipe_config,
                                             run_overrides)
from eoslab.experiments.pal.tables import edge_note, format_profiles, format_training
from eoslab.jsonable import jsonable
from eoslab.plots import save_figure
from eoslab.train import train


def _slug(text: str) -> str:
    keep = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in text.lower().replace("β", "beta"))
    return "-".join(part for part in keep.split("-") if part)


def reproduce(out_dir: str | Path, *, quick: bool = False, progress: bool = True, store=None,
              overrides: list[str] | None = None, settings: tuple[str, ...] | None = None,
              seeds: tuple[int, ...] = SEEDS, force: bool = False) -> list[Claim]:
    """Train, profile and write pal-*.png/pdf, profiles.json, table.txt, claims.md and claims.json into ``out_dir``.

    ``settings``: keys of :data:`SETTINGS` to run (default: all, or the quick ones with ``quick``);
    ``seeds``: those of the minibatch settings (``quick``: the first only).
    """
    out = Path(out_dir)
    t_start = time.perf_counter()
    chosen = [s for s in SETTINGS if (s.key in settings if settings is not None else (s.quick or not quick))]
    if not chosen:
        raise ValueError(f"no setting among {settings}; choose from {', '.join(s.key for s in SETTINGS)}.")
    if not seeds:
        raise ValueError("no seeds given; pass at least one, e.g. seeds=(0, 1, 2).")
    num_profiles = QUICK_PROFILES if quick else FULL_PROFILES
    claims: list[Claim] = []
    tables: list[str] = []
    panels: list[dict] = []
    dump: dict = {"grids": {"wide": "s in [-mu, max(2 mu, 1.25 s_max)], spacing mu/20; fit |s| <= mu",
                            "local": "s in [-2 s_t, 2 s_t], 41 points; fit on all of it"}, "runs": {}}
    with store_in(out, store) as store:
        for setting in SETTINGS:
            if setting not in chosen:
                why = (f"not selected (settings={list(settings)})" if settings is not None else
                       "--quick runs the MSE settings only")
                claims += [c for run in setting.runs for c in not_run_claims(setting, run, why)]
                continue
            runs = [r for r in setting.runs if r.quick or not quick]
            stochastic = recipe_config(setting.runs[0].recipe, run_overrides(setting, None, quick, overrides),
                                       setting.suffix).optimizer.batch_size > 0
            run_seeds = (tuple(seeds)[:1] if quick else tuple(seeds)) if stochastic else (None,)
            if any(o.split("=", 1)[0].strip() == "seed" for o in overrides or []):
                run_seeds = (None,)  # the caller chose the seed
            per_run: dict[str, list[list[Claim]]] = {r.label: [] for r in runs}
            train_rows = []
            for seed in run_seeds:
                user = ([] if seed is None else [f"seed={seed}"]) + list(overrides or [])
                base_cfg = recipe_config(setting.baseline, run_overrides(setting, None, quick, user), setting.suffix)
                base = train(base_cfg, results_dir=out, store=store, progress=progress, force=force)
                grid_losses = {float(lr): final_loss(base, i) for i, lr in enumerate(base.lrs)}
                done = {k: v for k, v in grid_losses.items() if np.isfinite(v)}
                best = min(done.items(), key=lambda kv: kv[1]) if done else (float("nan"), float("nan"))
                pal_results = []
                seed_tag = "" if seed is None else f", seed {seed}"
                first_seed = seed == run_seeds[0]  # the figures show the first seed (or the only run)
                for run in runs:
                    cfg = recipe_config(run.recipe, run_overrides(setting, run, quick, user),
                                        setting.suffix + run.suffix)
                    tag = f"{setting.label}, {run.label}"
                    result = train(cfg, results_dir=out, store=store, progress=progress, force=force)
                    pal_results.append((run.label, result))
                    records, minibatch, replay_diff = profile_run(cfg, result, num_profiles)
                    summary = summarise_profiles(records, cfg.optimizer.hp.alpha, minibatch)
                    pal_loss = final_loss(result, 0)
                    per_run[run.label].append(
                        claims_for_run(f"[{tag}]", summary, cfg.optimizer.hp.alpha, pal_loss, best, grid_losses))
                    tables.append(format_profiles(tag + seed_tag, records, minibatch, replay_diff))
                    eta = result.series(0, "step_size")[1]
                    note = (f"median η_t over the second half {np.median(eta[len(eta) // 2:]):.3g}, "
                            + edge_note(result.metrics[0]))
                    train_rows.append((run.label + seed_tag, pal_loss, note))
                    key = _slug(f"{setting.key}-{run.label}") + ("" if seed is None else f"-seed{seed}")
                    if first_seed:
                        save_figure(plot_profiles(tag, records, minibatch, cfg.optimizer.hp.alpha, quick=quick),
                                    out / f"pal-profiles-{_slug(f'{setting.key}-{run.label}')}")
                    dump["runs"][key] = dict(label=tag, setting=setting.key, seed=cfg.seed, run_id=result.run_ids[0],
                                             baseline_run_ids=list(base.run_ids), config=cfg.to_dict(),
                                             minibatch=minibatch,
                                             summary=summary, replay_max_abs_loss_diff=replay_diff,
                                             final_loss=pal_loss, profiles=records)
                for i, lr in enumerate(base.lrs):
                    train_rows.append((f"constant η={lr:g}{seed_tag}", grid_losses[float(lr)], base.status[i]))
                if first_seed:
                    panels.append(dict(label=setting.label, loss=base_cfg.loss.name, pal=pal_results, baseline=base))
            for run in setting.runs:
                if run not in runs:
                    claims += not_run_claims(setting, run, f"--quick runs {', '.join(r.label for r in runs)} here")
                elif run_seeds == (None,):
                    claims += per_run[run.label][0]
                else:
                    claims += across_seeds(per_run[run.label], run_seeds)
            tables.append(format_training(setting.label, train_rows))
    save_figure(plot_training(panels, title=quick_title("PAL (Mutschler & Zell 2020) and constant steps: training",
                                                        quick)), out / "pal-training")
    (out / "profiles.json").write_text(json.dumps(jsonable(dump)) + "\n")
    elapsed = time.perf_counter() - t_start
    (out / "table.txt").write_text("\n\n".join(tables) + f"\n\n(total {elapsed:.0f} s)\n")
    write_claims(out, claims, "Parabolic approximation line search (Mutschler & Zell 2020): claims", quick=quick)
    return claims
