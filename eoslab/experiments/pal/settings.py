"""The settings of the PAL reproduction: which recipes run, with which overrides, seeds and lengths.

A :class:`Setting` is a loss and batch regime (MSE or cross-entropy, batch 128
or full batch) with its PAL runs (:class:`PalRun`: PAL and its conjugate
variant, ``optimizer.beta=0.4``) and the recipe of its constant-step baseline
grid.  ``quick`` marks what ``--quick`` runs.  :func:`recipe_config` and
:func:`run_overrides` turn them into the :class:`~eoslab.train.RunConfig` of a
run: the setting's and the run's overrides, then ``--quick``'s
(:data:`QUICK_STEPS`), then the caller's, which win.
"""
from __future__ import annotations

import dataclasses

from eoslab.train import RunConfig
from eoslab.train.recipes import load_recipe

PAPER = "Mutschler & Zell 2020"

QUICK_STEPS = 500
QUICK_PROFILES = 8
SEEDS = (0, 1, 2)  # minibatch settings (--quick: the first only)
FULL_PROFILES = 12


@dataclasses.dataclass(frozen=True)
class PalRun:
    recipe: str
    label: str
    overrides: tuple[str, ...] = ()
    suffix: str = ""  # appended to the config name
    quick: bool = False


@dataclasses.dataclass(frozen=True)
class Setting:
    key: str
    label: str
    runs: tuple[PalRun, ...]
    baseline: str  # recipe of the constant-step grid
    overrides: tuple[str, ...] = ()
    suffix: str = ""
    quick: bool = False


CONJ = ("optimizer.beta=0.4",)
SETTINGS = (
    Setting("mse-minibatch", "MSE, batch 128",
            (PalRun("pal", "PAL", quick=True), PalRun("pal-conjugate", "PAL β=0.4", quick=True)), "pal-sgd",
            quick=True),
    Setting("mse-fullbatch", "MSE, full batch",
            (PalRun("pal", "PAL", quick=True), PalRun("pal-conjugate", "PAL β=0.4")), "pal-sgd",
            ("optimizer.batch_size=0",), "-fullbatch", quick=True),
    Setting("ce-minibatch", "CE, batch 128",
            (PalRun("pal-ce", "PAL"), PalRun("pal-ce", "PAL β=0.4", CONJ, "-conjugate")), "pal-ce-sgd"),
    Setting("ce-fullbatch", "CE, full batch", (PalRun("pal-ce", "PAL"),), "pal-ce-sgd",
            ("optimizer.batch_size=0",), "-fullbatch"),
)


def recipe_config(recipe: str, overrides: list[str], suffix: str) -> RunConfig:
    """The recipe with ``overrides``, its name extended by ``suffix`` (so each setting's runs are told apart)."""
    cfg = load_recipe(recipe, overrides)
    return dataclasses.replace(cfg, name=cfg.name + suffix) if suffix else cfg


def run_overrides(setting: Setting, run: PalRun | None, quick: bool, user: list[str] | None) -> list[str]:
    """The setting's and run's overrides, then --quick's, then the caller's (which win)."""
    out = list(setting.overrides) + (list(run.overrides) if run else [])
    if quick:
        out.append(f"train.steps={QUICK_STEPS}")
    return out + list(user or [])
