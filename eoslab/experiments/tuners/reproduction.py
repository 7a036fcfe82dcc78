"""The tuners reproduction: train every method, summarise, claim, and write the outputs.

:func:`reproduce` is what ``eoslab reproduce tuners`` runs
(:data:`eoslab.experiments.base.REPRODUCTIONS`): the full-batch methods, then
(full run) the stochastic sweep and, when ``EOSLAB_DATA`` is set, the
full-batch methods on CIFAR-10-5k.
"""
from __future__ import annotations

import os
from pathlib import Path

from eoslab.errors import DataError
from eoslab.experiments.base import store_in
from eoslab.experiments.claims import Claim, quick_title, write_claims
from eoslab.experiments.tuners.claims import (STOCHASTIC_RULE, full_batch_claims, full_batch_rules, not_run,
                                              stochastic_claims)
from eoslab.experiments.tuners.figures import plot_full_batch, plot_stochastic
from eoslab.experiments.tuners.settings import (BATCH_SIZES, CIFAR_GD_LRS, CIFAR_OVERRIDES, FULL_BATCH, PAPER,
                                                QUICK_OVERRIDES, SEEDS, STOCHASTIC, TITLE, Method)
from eoslab.experiments.tuners.summaries import summarise
from eoslab.experiments.tuners.tables import TABLE_NOTE, format_table
from eoslab.plots import save_figure
from eoslab.store import RunStore
from eoslab.train import TrainResult, train
from eoslab.train.recipes import load_recipe


def _title(cfg, setting: str, quick: bool) -> str:
    return quick_title(f"Step-size tuners ({PAPER}): {cfg.model.name} {list(cfg.model.widths)} on {cfg.data.name}, "
                       f"{setting}", quick)


def run_methods(methods, overrides: list[str], out: Path, store: RunStore, progress: bool,
                per_method: dict[str, list[str]] | None = None, force: bool = False
                ) -> list[tuple[Method, TrainResult]]:
    results = []
    for method in methods:
        extra = [*overrides, *(per_method or {}).get(method.key, [])]
        cfg = load_recipe(method.recipe, extra)
        results.append((method, train(cfg, results_dir=out, store=store, progress=progress, force=force)))
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


def stochastic_sweep(extra: list[str], out: Path, store: RunStore, progress: bool, batch_sizes, seeds,
                     force: bool = False):
    """Every stochastic method at every batch size and seed: (claims, tables, seed-0 results for the figure)."""
    by_batch, sto_rows, tables = {}, {}, []
    for bs in batch_sizes:
        sto_rows[bs] = {m.key: [] for m in STOCHASTIC}
        for seed in seeds:
            results = run_methods(STOCHASTIC, [*extra, f"optimizer.batch_size={bs}", f"seed={seed}"], out, store,
                                  progress, force=force)
            by_batch.setdefault(bs, results)
            for m, res in results:
                sto_rows[bs][m.key] += summarise(res, m)
        tables.append(format_table([r for rs in sto_rows[bs].values() for r in rs], f"stochastic, batch size {bs}"))
    return stochastic_claims(sto_rows), tables, by_batch


def reproduce(out_dir: str | Path, *, quick: bool = False, progress: bool = True, store=None,
              overrides: list[str] | None = None, batch_sizes: tuple[int, ...] = BATCH_SIZES,
              seeds: tuple[int, ...] = SEEDS, force: bool = False) -> list[Claim]:
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
        results = run_methods(FULL_BATCH, extra, out, store, progress, force=force)
        rows = {m.key: summarise(res, m) for m, res in results}
        tables.append(format_table([r for rs in rows.values() for r in rs], "full batch"))
        claims += full_batch_claims(rows)
        cfg = results[0][1].config
        save_figure(plot_full_batch(results, _title(cfg, "full batch", quick)), out / "tuners")

        if sto_skip is None:
            sto_claims, sto_tables, by_batch = stochastic_sweep(extra, out, store, progress, batch_sizes, seeds,
                                                                        force=force)
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
                                      per_method={"gd": [CIFAR_GD_LRS]}, force=force)
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
