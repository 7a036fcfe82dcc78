"""``eoslab.Monitor``: certified sharpness, edge ratio and edge-of-stability events inside your own JAX loop.

The monitor measures, every ``every`` steps of a loop it does not own, what
eoslab's trainer measures with its probes (:mod:`eoslab.probes`, the same
code): the top-k Hessian eigenvalues of ``loss_fn`` with their certificate,
the effective sharpness lambda_1(P_t^{-1} H) of the rule that trains the
model, its threshold, and the edge ratio (1: at the edge of stability).

The rule comes from (:mod:`eoslab.monitor.optimizers`):

* an optax optimizer built with ``optax.inject_hyperparams`` (``optimizer=None``,
  the default, or the optax optimizer itself): the rule and its step size are
  read from ``opt_state``;
* an eoslab rule by name with its step size and hyper-parameters
  (``optimizer="heavy-ball", lr=0.1, beta=0.9``);
* an explicit ``preconditioner(opt_state) -> P`` (a positive pytree like
  params, step size included) and the ``threshold`` of lambda_1(P^{-1} H).

Two ways to call it:

* ``monitor.update(step, params, opt_state=...)`` from a Python loop:
  returns ``None`` between measurements, else a dict of plain floats
  (``sharpness``, ``effective_sharpness``, ``threshold``, ``edge_ratio``,
  ``error``, ``converged``, ``eta``, ``loss``, ...) and ``events`` (the
  messages of the events that fired, :mod:`eoslab.monitor.events`, each
  also printed once).  With ``store`` (a results directory or a
  :class:`~eoslab.store.RunStore`) every measurement and event is a metric
  row of one run, so ``eoslab runs/show/plot/export`` work on it; with
  ``tensorboard`` (a folder) they are also TensorBoard scalars
  ``eoslab/<metric>`` and ``events/<event>`` (:mod:`eoslab.monitor.tensorboard`);
* ``state = monitor.init(params, opt_state)`` and
  ``metrics, state = monitor.measure(state, params, opt_state)``: pure
  functions (state in, state out) for use inside ``jax.jit`` or
  ``lax.scan``; thresholds and the edge ratio then come from
  :meth:`Monitor.finish` on the host.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from eoslab.monitor.events import EventRules
from eoslab.monitor.recording import Recorded, Recorder
from eoslab.monitor.optimizers import RuleOf, rule_by_name, rule_from_optax
from eoslab.probes import MemberFacts, PreconditionedSharpness, ProbeContext, Sharpness, member_facts
from eoslab.probes.base import EvalView
from eoslab.train.config import ProbeConfig

PyTree = Any


class _Explicit:
    """A rule given by its preconditioner function and threshold (the monitor's third way)."""
    adaptive, tuner, name = True, False, "explicit preconditioner"

    def __init__(self, fn: Callable, threshold: float):
        self.fn, self._threshold = fn, float(threshold)

    def preconditioner(self, opt_state, lr, hp):
        return self.fn(opt_state)

    def threshold(self, lr, hp):
        return self._threshold


@dataclasses.dataclass
class MonitorState:
    """The probes' states (warm-started eigenvectors) between measurements."""
    probes: tuple


jax.tree_util.register_dataclass(MonitorState, data_fields=["probes"], meta_fields=[])


class Monitor(Recorded):
    """Sharpness, effective sharpness and edge ratio of a training loop (see the module docstring)."""

    def __init__(self, loss_fn: Callable, *, optimizer: str | None = None, lr: float | None = None, every: int = 10,
                 k: int = 1, tol: float = 1e-3, max_hvps: int = 0, refresh_every: int = 500,
                 batch: Any = None, nesterov: bool = False, eps_in_sqrt: bool = True,
                 preconditioner: Callable | None = None, threshold: float | None = None, store=None,
                 tensorboard: str | Path | None = None,
                 name: str = "monitor", events: EventRules | None = None, verbose: bool = True, seed: int = 0,
                 **hyper):
        if not callable(loss_fn):
            raise TypeError("loss_fn must be a function loss_fn(params) (or loss_fn(params, batch) with batch=...).")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} must be an integer >= 1 (measure every that many steps).")
        if (preconditioner is None) != (threshold is None):
            raise ValueError("give preconditioner and threshold together (P_t including the step size, and the "
                             "threshold of lambda_1(P^-1 H)).")
        if hyper and optimizer is None:
            raise ValueError(f"{sorted(hyper)[0]}= needs optimizer= (an eoslab rule name, e.g. optimizer='adam').")
        if optimizer is not None and not isinstance(optimizer, str):
            if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
                raise TypeError(f"optimizer={optimizer!r} must be an eoslab rule name (e.g. 'adam') or the optax "
                                "optimizer itself, built with optax.inject_hyperparams.")
            if lr is not None or hyper:
                raise ValueError("an optax optimizer carries its own hyper-parameters in its state: drop lr= and "
                                 "the other keywords.")
            optimizer = None  # an optax optimizer: its rule and step size are read from opt_state at each update
        self.loss = (lambda p: loss_fn(p, batch)) if batch is not None else loss_fn
        self.every, self.verbose, self.seed = every, verbose, seed
        self.settings = ProbeConfig(sharpness_k=k, tol=tol, eval_max_hvps=max_hvps, refresh_every=refresh_every)
        if k < 1:
            raise ValueError(f"k={k!r} must be >= 1 (the number of top eigenvalues).")
        self._nesterov, self._eps_in_sqrt = nesterov, eps_in_sqrt
        self.rule_of: RuleOf | None = None
        if preconditioner is not None:
            self.rule_of = RuleOf(_Explicit(preconditioner, threshold), None, injected=False, lr=1.0)
        elif optimizer is not None:
            if lr is None:
                raise ValueError(f"optimizer={optimizer!r} needs lr= (its step size eta).")
            self.rule_of = rule_by_name(optimizer, lr, **hyper)
        self._name = name
        self._rec = Recorder(store=store, tensorboard=tensorboard, name=name, seed=seed, events=events,
                             verbose=verbose, describe=self.describe)
        self._state: MonitorState | None = None
        self._last_step: int | None = None
        self._probes = None

    # ---- the pure functions --------------------------------------------------
    def _build(self, params, opt_state) -> None:
        if self._probes is not None:
            return
        if self.rule_of is None and opt_state is not None:
            self.rule_of = rule_from_optax(opt_state, nesterov=self._nesterov, eps_in_sqrt=self._eps_in_sqrt)
        rule, hp = (self.rule_of.rule, self.rule_of.hp) if self.rule_of is not None else (None, None)
        dim = sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(params))
        ctx = ProbeContext(sharpness_loss=self.loss, train_loss=self.loss, rule=rule, hp=hp, probes=self.settings,
                           dim=dim)
        probes = [Sharpness(ctx)]
        if rule is not None and rule.adaptive:
            probes.append(PreconditionedSharpness(ctx))
        self._probes = tuple(probes)
        self._measure = jax.jit(self.measure)

    def init(self, params: PyTree, opt_state: PyTree = None) -> MonitorState:
        """The monitor's state at ``params``: a cold solve (and the rule, read from ``opt_state`` if needed)."""
        self._build(params, opt_state)
        states: dict[str, PyTree] = {}
        for p in self._probes:
            states[p.name] = p.init(params, jax.random.PRNGKey(self.seed), dict(states))
        return MonitorState(tuple(states[p.name] for p in self._probes))

    def measure(self, state: MonitorState, params: PyTree, opt_state: PyTree = None, refresh=False):
        """(metrics, state) at ``params``: pure, jit- and scan-safe (call :meth:`init` first).

        Metrics: ``loss``, ``eta`` (NaN without a rule), ``sharpness`` ... with
        ``sharpness_error``, ``_residual``, ``_converged``, ``_hvps``, and for
        adaptive rules ``effective_sharpness`` with its certificate.
        """
        dtype = jax.tree_util.tree_leaves(params)[0].dtype
        eta = (jnp.asarray(self.rule_of.eta(opt_state), dtype) if self.rule_of is not None
               else jnp.asarray(jnp.nan, dtype))
        view = EvalView(jnp.asarray(0), params, opt_state, eta, jnp.asarray(self.seed), self.loss,
                        jnp.asarray(refresh))
        metrics, states = {"loss": self.loss(params), "eta": eta}, []
        for probe, s in zip(self._probes, state.probes):
            m, s = probe.at_eval(s, view)
            metrics.update(m)
            states.append(s)
        return metrics, MonitorState(tuple(states))

    def facts(self, eta: float) -> MemberFacts | None:
        """The thresholds at step size ``eta`` (None without a rule)."""
        if self.rule_of is None or not math.isfinite(eta):
            return None
        return member_facts(self.rule_of.rule, self.rule_of.hp, eta)

    def finish(self, step: int, metrics: dict) -> dict:
        """Plain floats of one measurement with the effective sharpness, thresholds and edge ratio (host, float64)."""
        steps = np.asarray([step])
        rows = {k: (steps, np.asarray(v, np.float64).reshape(-1)) for k, v in metrics.items()}
        facts = self.facts(float(rows["eta"][1][0]))
        if facts is not None:
            for probe in self._probes:
                probe.finish(rows, facts)
            rows["threshold"] = (steps, np.asarray([facts.threshold]))
            rows["effective_threshold"] = (steps, np.asarray([facts.effective_threshold]))
        out = {k: float(v[0]) if len(v) else math.nan for k, (_, v) in rows.items()}
        for key in ("effective_sharpness", "threshold", "edge_ratio"):
            out.setdefault(key, math.nan)
        out["error"] = out["sharpness_error"]
        out["converged"] = bool(out["sharpness_converged"])
        return out

    # ---- the Python loop -----------------------------------------------------
    def update(self, step: int, params: PyTree, opt_state: PyTree = None) -> dict | None:
        """Measure at ``step`` if it is a multiple of ``every`` (else None); store it and report the events."""
        step = int(step)
        if step % self.every:
            return None
        if self._state is None:
            self._state = self.init(params, opt_state)
        every = self.settings.refresh_every
        refresh = (self._last_step is not None and every > 0 and step // every > self._last_step // every)
        metrics, self._state = self._measure(self._state, params, opt_state, refresh)
        self._last_step = step
        return self._rec.record(step, self.finish(step, jax.device_get(metrics)))

    def describe(self) -> dict:
        """The monitor's settings as the run's config in the store."""
        rule = self.rule_of
        if rule is None:
            opt = {}
        elif isinstance(rule.rule, _Explicit):
            opt = {"name": rule.rule.name, "threshold": rule.rule.threshold(None, None)}
        else:
            opt = {"name": rule.rule.name, "lr": "injected" if rule.injected else rule.lr,
                   **(dataclasses.asdict(rule.hp) if dataclasses.is_dataclass(rule.hp) else {})}
        return {"name": self._name, "monitor": {"every": self.every, **dataclasses.asdict(self.settings)},
                "optimizer": opt}
