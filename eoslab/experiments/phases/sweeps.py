"""The three digits sweeps of the phase diagram (``configs/sweeps/phases-*.toml``) and their quick grid."""
from __future__ import annotations

import dataclasses

from eoslab.train.recipes import RECIPES_DIR

QUICK_GRID = {"optimizer.lr": {"from": 1, "to": 64, "num": 13, "spacing": "log"},
              "model.depth": [2, 8], "model.width": [16, 128]}
QUICK_SEEDS = 2

SWEEPS = ("phases-first", "phases-early", "phases-late")


def sweep_spec(name: str, *, quick: bool = False, grid: dict | None = None, seeds: int | None = None,
               overrides: list[str] | None = None):
    """The grid spec ``configs/sweeps/{name}.toml``; ``quick`` takes :data:`QUICK_GRID` and :data:`QUICK_SEEDS`.

    ``grid`` (axis -> values, as in a grid spec), ``seeds`` (a count) and
    ``overrides`` (``key=value`` on the base config) replace them (tests,
    exploration).
    """
    from eoslab.sweep import grid_from_dict, load_grid
    from eoslab.train.config import apply_overrides
    spec = load_grid(RECIPES_DIR / "sweeps" / f"{name}.toml")
    axes_from = dict(QUICK_GRID) if quick else {}
    axes_from.update(grid or {})
    axes = tuple((k, grid_from_dict({"grid": {k: axes_from[k]}}).axes[0][1]) if k in axes_from else (k, v)
                 for k, v in spec.axes)
    n_seeds = seeds if seeds is not None else (QUICK_SEEDS if quick else None)
    changes = dict(axes=axes)
    if n_seeds is not None:
        changes["seeds"] = tuple(range(n_seeds))
    if overrides:
        changes["base"] = apply_overrides(spec.base, list(overrides))
    if quick:
        changes["name"] = f"{spec.name}-quick"
    return dataclasses.replace(spec, **changes)
