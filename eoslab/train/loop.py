"""The host loop of training: chunks, evaluations, stops, checkpoints, and one sink for the metrics.

:func:`train` trains the ensemble of a config (:class:`~eoslab.train.trainer.Trainer`)
and stores every member as a run; :func:`run_loop` is its loop, also used by
sweeps, which write to memory instead (:mod:`eoslab.train.sinks`).

Metrics (one series per member, at step t meaning "at theta_t"):

* ``loss``: the loss of the batch used at step t (the full training loss in
  full-batch mode), every step;
* ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``: at eval steps;
* ``eta`` (the member's step size: the config's lr, or c / lambda_0 with
  ``optimizer.lr_units = "1/lambda0"``; a tuner's cap), ``threshold`` (the
  raw-sharpness threshold for the SGD family, the effective one for adaptive
  rules and tuners) and ``effective_threshold``: at eval steps;
* the probes' metrics, named by the probes (:mod:`eoslab.probes`):
  ``sharpness`` ... with certificates, ``effective_sharpness`` and
  ``edge_ratio``; ``step_size`` and the tuner's telemetry; ``step_curvature``;
  ``line_max_loss``; ``gradient_norm``.

Divergence (NaN, inf, or a loss above ``train.diverge_above``) freezes that
member and is recorded with its step; it never stops the others or crashes.
A run stopped by ``train.stop_loss`` or ``train.stop_accuracy`` freezes too.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.errors import InputError
from eoslab.probes import MemberFacts
from eoslab.store import RunStore, config_hash
from eoslab.train.checkpoint import load_checkpoint, save_checkpoint
from eoslab.train.config import RunConfig
from eoslab.train.sinks import MemorySink, Rows, Sink, StoreSink
from eoslab.train.trainer import Carry, Trainer

PyTree = Any
CARRY_FORMAT = 2  # the layout of a checkpointed Carry (its probe states); a checkpoint of another is refused


@dataclasses.dataclass
class TrainResult:
    """What a finished ensemble produced (the same is in the run store).

    ``lrs`` are the config's values of ``optimizer.lr`` (eta, or c with
    ``lr_units = "1/lambda0"``); ``step_sizes`` the members' eta.
    """
    config: RunConfig
    run_ids: list[int]
    lrs: tuple[float, ...]
    status: list[str]
    diverged_step: list[int | None]
    metrics: list[dict[str, tuple[np.ndarray, np.ndarray]]]  # per member: name -> (steps, values)
    thresholds: list[float]
    step_sizes: list[float]
    reused: bool = False  # True: nothing was trained; these are the runs already in the store

    def series(self, member: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.metrics[member].get(name, (np.zeros(0, int), np.zeros(0)))


def member_rows(outs: dict, member: int, steps: np.ndarray) -> Rows:
    """Metrics of a chunk or an evaluation (arrays with the members first) as one member's float64 rows."""
    return {key: (steps, np.asarray(arr[member], dtype=np.float64).reshape(-1)) for key, arr in outs.items()}


def progress_bar(total: int, initial: int, enabled: bool, *, unit: str = "step", desc: str | None = None):
    """The tqdm bar of training runs and sweeps (on stderr; ``enabled=False`` hides it)."""
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, disable=not enabled, file=sys.stderr, unit=unit, desc=desc,
                dynamic_ncols=True, leave=True)


def train(cfg: RunConfig, *, results_dir: str | Path = "results", store: RunStore | None = None,
          progress: bool = True, force: bool = False) -> TrainResult:
    """Train the ensemble of ``cfg``, store every member as a run, and return the results.

    Runs are idempotent and resumable:

    * every member of the same config and seed already finished (completed or
      diverged) in the store: nothing is trained; the stored runs are returned
      (``TrainResult.reused``), unless ``force``, which trains again and then
      replaces them;
    * an unfinished run: a checkpoint is written when the runs start (step 0)
      and then every ``train.checkpoint_every`` steps, so a run killed at any
      moment resumes from its last checkpoint under the same run ids and ends
      with the same metrics as an uninterrupted run.
    """
    results_dir = Path(results_dir)
    trainer = Trainer(cfg)  # loads data and builds the model first: bad input writes nothing
    own_store = store is None
    store = store or RunStore.in_dir(results_dir)
    try:
        if not force:
            stored = stored_result(cfg, store)
            if stored is not None:
                if progress:
                    print(f"runs {', '.join(map(str, stored.run_ids))} of this config are already stored in "
                          f"{store.path} ({', '.join(stored.status)}); pass --force to train them again.",
                          file=sys.stderr)
                return stored
        result = _train(trainer, results_dir, store, progress)
        if force:  # the new runs replace the finished runs of the same config and seed
            for rid in result.run_ids:
                store.delete_earlier(rid, status=["completed", "diverged"])
        return result
    finally:
        if own_store:
            store.close()


def _group(cfg: RunConfig) -> str:
    """The store group of an ensemble: its name and the hash of its config."""
    return f"{cfg.name}/{config_hash(cfg.to_dict())}"


def _member_runs(cfg: RunConfig, store: RunStore) -> list:
    """The newest stored run (or None) of each member of ``cfg``: its member config and seed."""
    return [store.find_run(cfg.member(lr).to_dict(), seed=cfg.seed) for lr in cfg.lrs]


def stored_result(cfg: RunConfig, store: RunStore) -> TrainResult | None:
    """The finished runs of every member of ``cfg`` (same config and seed) in ``store``, or None.

    A member whose newest run is unfinished (running, failed) or absent makes
    it None: that ensemble is trained (or resumed).
    """
    records = _member_runs(cfg, store)
    if any(r is None or r.status not in ("completed", "diverged") for r in records):
        return None
    metrics = [store.get_metrics(r.id) for r in records]
    last = lambda m, name: float(m[name][1][-1]) if name in m and len(m[name][1]) else float("nan")  # noqa: E731
    return TrainResult(cfg, [r.id for r in records], cfg.lrs, [r.status for r in records],
                       [r.diverged_step for r in records], metrics, [last(m, "threshold") for m in metrics],
                       [last(m, "eta") for m in metrics], reused=True)


def _train(trainer: Trainer, results_dir: Path, store: RunStore, progress: bool) -> TrainResult:
    cfg = trainer.cfg
    group = _group(cfg)
    ckpt_path = results_dir / "checkpoints" / f"{group.rsplit('/', 1)[1]}.npz"
    carry = trainer.init_carry()
    start, run_ids = 0, None

    def checkpoint(t: int, carry: Carry):
        save_checkpoint(ckpt_path, carry, step=t, meta={"run_ids": np.asarray(run_ids), "carry_format": CARRY_FORMAT})

    if ckpt_path.exists():
        carry, start, meta = load_checkpoint(ckpt_path, carry)
        if int(meta.get("carry_format", 1)) != CARRY_FORMAT:
            raise InputError(f"checkpoint {str(ckpt_path)!r} was written by another version of eoslab; delete it "
                             f"to start the run afresh.")
        run_ids = [int(r) for r in meta["run_ids"]]
        if any(store.get_run(r).status != "running" for r in run_ids):
            run_ids, start, carry = None, 0, trainer.init_carry()
    if run_ids is None:
        # runs killed between their start and their first checkpoint: the same ids start again from step 0
        records = _member_runs(cfg, store)
        if all(r is not None and r.status == "running" and r.group == group for r in records):
            run_ids = [r.id for r in records]
        else:
            run_ids = [store.start_run(cfg.member(lr).to_dict(), name=cfg.name, seed=cfg.seed, group=group)
                       for lr in cfg.lrs]
        for stale in store.list_runs(status="running", group=group):
            if stale.id not in run_ids:
                store.finish_run(stale.id, "failed", error="interrupted; superseded by a restarted run")
        checkpoint(0, carry)  # from here on a killed run resumes under these run ids
    for r in run_ids:  # a resumed run rewrites every step after its checkpoint (step 0: all of them)
        store.delete_metrics_after(r, start if start > 0 else -1)

    def after_eval(t: int, carry: Carry):
        if cfg.train.checkpoint_every and t % cfg.train.checkpoint_every == 0 and t < cfg.train.steps:
            checkpoint(t, carry)

    carry, facts = run_loop(trainer, carry, start, StoreSink(store, run_ids), after_eval=after_eval,
                            progress=progress)
    status, div = [], []
    for i, rid in enumerate(run_ids):
        ds = int(carry.diverged_step[i])
        if ds >= 0:
            store.finish_run(rid, "diverged", diverged_step=ds)
            status.append("diverged"), div.append(ds)
        else:
            store.finish_run(rid, "completed")
            status.append("completed"), div.append(None)
    _save_params(results_dir, run_ids, carry.params)
    if ckpt_path.exists():
        ckpt_path.unlink()
    metrics = [store.get_metrics(r) for r in run_ids]  # the store is the single source of truth
    return TrainResult(cfg, run_ids, cfg.lrs, status, div, metrics, [f.threshold for f in facts],
                       [f.eta for f in facts])




def run_loop(trainer: Trainer, carry: Carry, start: int, sink: Sink, *, values=None,
             after_eval: Callable[[int, Carry], Any] | None = None, progress: bool = False,
             ) -> tuple[Carry, list[MemberFacts]]:
    """Train ``carry`` from step ``start`` to ``train.steps``, writing every member's metrics to ``sink``.

    Rows go to the sink chunk by chunk and evaluation by evaluation (at step 0
    first when ``start`` is 0), and at the end the probes' final measurements
    (the loss barrier).  Each probe completes its rows on the host
    (:meth:`~eoslab.probes.Probe.finish`) with the member's facts.
    ``after_eval(t, carry)`` runs after each evaluation (checkpoints).
    ``values``: the lrs passed to :meth:`Trainer.init_carry`, if not the config's.
    Members that diverge or meet a stop criterion are frozen; the loop ends
    when all are, or at ``train.steps``.
    """
    cfg = trainer.cfg
    facts = trainer.facts(carry, values)
    m = trainer.num_members

    def rows_of(outs: dict, steps: np.ndarray, *, at_eval: bool) -> list[Rows]:
        rows = [member_rows(outs, i, steps) for i in range(m)]
        for i, r in enumerate(rows):
            for probe in trainer.probes:
                probe.finish(r, facts[i])
            if at_eval:
                for name, value in (("threshold", facts[i].threshold),
                                    ("effective_threshold", facts[i].effective_threshold), ("eta", facts[i].eta)):
                    r[name] = (steps, np.asarray([value]))
        return rows

    bar = progress_bar(cfg.train.steps, start, progress)
    if start == 0:
        outs, carry = trainer.evaluate(carry, 0)
        sink.write(rows_of(outs, np.asarray([0]), at_eval=True))
    t = start
    try:
        while t < cfg.train.steps and bool(jnp.any(carry.active)):
            length = min(cfg.train.eval_every - t % cfg.train.eval_every, cfg.train.steps - t)
            carry, outs = trainer.run_chunk(carry, t, length)
            chunk_rows = rows_of(outs, np.arange(t, t + length), at_eval=False)
            t += length
            ev, carry = trainer.evaluate(carry, t, previous=t - length)
            eval_rows = rows_of(ev, np.asarray([t]), at_eval=True)
            sink.write(chunk_rows)
            sink.write(eval_rows)
            carry = _apply_stops(cfg, carry, ev)
            if after_eval is not None:
                after_eval(t, carry)
            bar.set_postfix_str(_postfix(eval_rows), refresh=False)  # the values at the counter's step
            if t < cfg.train.steps and bool(jnp.any(carry.active)):
                bar.update(length)
            else:
                bar.n = t  # the last line is drawn once, by close()
    finally:
        bar.close()
    end = trainer.at_end(carry, t)
    if end:
        sink.write([member_rows(end, i, np.asarray([t])) for i in range(m)])
    return carry, facts


def _postfix(rows: list[Rows]) -> str:
    """The progress bar's text: each member's training loss and edge ratio (1: at the edge of stability)."""
    parts = []
    for r in rows:
        s = f"loss {r['train_loss'][1][-1]:.4g}"
        if "edge_ratio" in r and len(r["edge_ratio"][1]):
            s += f" edge {r['edge_ratio'][1][-1]:.3g}"
        parts.append(s)
    return " | ".join(parts)


def _apply_stops(cfg: RunConfig, carry: Carry, ev: dict) -> Carry:
    stop = jnp.zeros_like(carry.active)
    if cfg.train.stop_loss > 0:
        stop = stop | (ev["train_loss"] < cfg.train.stop_loss)
    if cfg.train.stop_accuracy > 0:
        stop = stop | (ev["train_accuracy"] >= cfg.train.stop_accuracy)
    return carry._replace(active=carry.active & ~stop)


def _save_params(results_dir: Path, run_ids: list[int], params: PyTree) -> None:
    out = results_dir / "params"
    out.mkdir(parents=True, exist_ok=True)
    for i, rid in enumerate(run_ids):
        leaves = jax.tree_util.tree_leaves_with_path(jax.tree_util.tree_map(lambda a: a[i], params))
        np.savez(out / f"run-{rid}.npz", **{jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves})
