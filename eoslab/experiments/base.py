"""What every reproduction is: a name, its paper, its recipes, and ``reproduce(out, ...)``.

A reproduction is a module of :mod:`eoslab.experiments` with a function

    reproduce(out_dir, *, quick=False, progress=True, store=None, executor=None, **options) -> list[Claim]

that trains its recipes (``configs/<recipe>.toml``), stores the runs in
``store`` (a :class:`~eoslab.store.RunStore`; None: the store in ``out_dir``,
see :func:`store_in`), writes its figures, ``table.txt``, ``claims.md`` and
``claims.json`` into ``out_dir`` and returns its claims.  ``executor`` (an
executor of :mod:`eoslab.sweep`) runs the sweeps of a reproduction that has
any (``sweeps=True``); the others refuse one.  :data:`REPRODUCTIONS` lists them
by their CLI name; adding a reproduction is its module and one line there.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
from pathlib import Path
from typing import Any, Callable, Iterator

from eoslab.errors import InputError


@dataclasses.dataclass(frozen=True)
class Reproduction:
    name: str  # the CLI name: eoslab reproduce NAME
    module: str  # the module whose reproduce() runs it
    paper: str
    recipes: tuple[str, ...]  # its recipes (configs/*.toml), the first the main one
    sweeps: bool = False  # it runs sweeps, so it takes an executor

    def load(self) -> Callable[..., list]:
        """Its ``reproduce`` function."""
        try:
            return importlib.import_module(self.module).reproduce
        except ModuleNotFoundError:
            raise InputError(f"reproduction {self.name!r} is not available in this installation.") from None

    def run(self, out_dir: str | Path, *, quick: bool = False, progress: bool = True, store=None,
            executor=None, **options) -> list:
        """``reproduce(out_dir, ...)``; an executor for a reproduction without sweeps is an InputError."""
        if executor is not None and not self.sweeps:
            raise InputError(f"reproduction {self.name!r} runs no sweep; drop --executor.")
        extra = {"executor": executor} if self.sweeps else {}
        return self.load()(out_dir, quick=quick, progress=progress, store=store, **extra, **options)


REPRODUCTIONS: dict[str, Reproduction] = {r.name: r for r in (
    Reproduction("eos", "eoslab.experiments.eos", "Cohen et al. 2021", ("eos", "eos-momentum", "eos-ce",
                                                                        "eos-cifar10")),
    Reproduction("alignment", "eoslab.experiments.alignment", "Song & Yun 2023", ("alignment",)),
    Reproduction("adaptive-eos", "eoslab.experiments.adaptive_eos", "Cohen et al. 2022",
                 ("adaptive-eos", "adaptive-eos-beta0", "adaptive-eos-rmsprop", "adaptive-eos-frozen",
                  "adaptive-eos-minibatch")),
    Reproduction("tuners", "eoslab.experiments.tuners", "Roulet et al. 2023, 2024",
                 ("tuners-gd", "tuners-armijo", "tuners-polyak", "tuners-pal", "tuners-cdat1", "tuners-cdat2",
                  "tuners-stochastic-gd", "tuners-stochastic-armijo", "tuners-stochastic-polyak")),
    Reproduction("pal", "eoslab.experiments.pal", "Mutschler & Zell 2020",
                 ("pal", "pal-conjugate", "pal-sgd", "pal-ce", "pal-ce-sgd")),
    Reproduction("phases", "eoslab.experiments.phases", "Kalra & Barkeshli 2023", ("phases",), sweeps=True),
    Reproduction("central-flows", "eoslab.experiments.central_flows", "Cohen, Damian et al. 2024", ("eos",)),
)}


def get_reproduction(name: str) -> Reproduction:
    """The reproduction called ``name`` (an unknown name: one sentence listing them)."""
    if name not in REPRODUCTIONS:
        raise InputError(f"unknown reproduction {name!r}; choose one of {', '.join(REPRODUCTIONS)}.")
    return REPRODUCTIONS[name]


@contextlib.contextmanager
def store_in(out_dir: str | Path, store=None) -> Iterator[Any]:
    """``store`` if given (left open), else the run store in ``out_dir`` (closed on exit)."""
    if store is not None:
        yield store
        return
    from eoslab.store import RunStore
    with RunStore.in_dir(out_dir) as own:
        yield own
