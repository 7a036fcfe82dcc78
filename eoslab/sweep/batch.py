"""One batch of a sweep: runs of one shape trained together as one ``vmap``.

A :class:`Batch` is a config *shape* (every key but the step size and the
seed) and its members, each a (step size or c, seed) pair.  :func:`run_batch`
trains them with one :class:`~eoslab.train.Trainer` whose members have
their own seeds (so their own initialisations and minibatch orders) and step
sizes: one compiled scan per chunk of steps for the whole batch.  It returns
every member's status and metric series and never raises: an exception
inside the batch (building the model, running out of memory, ...) makes
every member a ``'failed'`` result with the error, and divergence is a
member's ``'diverged'`` status, as in :func:`eoslab.train.train`.

Batches are padded to ``size`` members (``pad_to``) by repeating the last
member, so batches of one shape compile once; padded members are dropped
from the results.  A process keeps the last few trainers it built
(:func:`trainer_for`), so batches of a shape that arrive one after another
reuse the compiled functions.
"""
from __future__ import annotations

import collections
import dataclasses
import traceback
from typing import Any

import numpy as np

from eoslab.train.config import RunConfig

_CACHE: "collections.OrderedDict[tuple, Any]" = collections.OrderedDict()
_CACHE_SIZE = 4


@dataclasses.dataclass(frozen=True)
class Member:
    key: str  # the point's key in the store (config hash)
    lr: float  # step size, or c with optimizer.lr_units = "1/lambda0"
    seed: int
    config: dict  # the member's full config (scalar lr, its seed)


@dataclasses.dataclass(frozen=True)
class Batch:
    shape: str
    config: dict  # the shape's config as a dict (lr and seed of the first member)
    members: tuple[Member, ...]
    pad_to: int = 0  # run this many members (the last one repeated); 0: as many as there are

    @property
    def size(self) -> int:
        return max(self.pad_to, len(self.members))


@dataclasses.dataclass
class MemberResult:
    key: str
    config: dict
    seed: int
    status: str  # completed | diverged | failed
    diverged_step: int | None
    error: str | None
    metrics: dict[str, tuple[np.ndarray, np.ndarray]]


def trainer_for(cfg: RunConfig, size: int):
    """A :class:`~eoslab.train.Trainer` for ``size`` members of the shape of ``cfg`` (cached per process)."""
    from eoslab.sweep.grid import shape_key
    from eoslab.train.trainer import Trainer
    key = (shape_key(cfg), size)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    tr = Trainer(cfg, seeds=(cfg.seed,) * size)  # size members; each brings its own lr and seed
    _CACHE[key] = tr
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return tr


def run_batch(batch: Batch) -> list[MemberResult]:
    """Train the members of ``batch`` as one vmapped ensemble; one result per (unpadded) member."""
    from eoslab.train.config import config_from_dict
    from eoslab.train.loop import run_loop
    from eoslab.train.sinks import MemorySink
    n = len(batch.members)
    try:
        cfg = config_from_dict(batch.config)
        padded = list(batch.members) + [batch.members[-1]] * (batch.size - n)
        trainer = trainer_for(cfg, len(padded))
        values = [m.lr for m in padded]
        carry = trainer.init_carry(values, [m.seed for m in padded])
        sink = MemorySink(len(padded))
        carry, _ = run_loop(trainer, carry, 0, sink, values=values)
        div = np.asarray(carry.diverged_step)
    except Exception as e:  # a batch that fails is a recorded result for each of its members
        err = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
        return [MemberResult(m.key, m.config, m.seed, "failed", None, err, {}) for m in batch.members]
    out = []
    for i, m in enumerate(batch.members):
        metrics = sink.metrics(i)
        ds = int(div[i])
        out.append(MemberResult(m.key, m.config, m.seed, "diverged" if ds >= 0 else "completed",
                                ds if ds >= 0 else None, None, metrics))
    return out
