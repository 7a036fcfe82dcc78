"""The trainer: an ensemble over step sizes (and seeds), trained as jit-compiled scans with probes.

One config may list several step sizes; its members share the initialisation
(as in Cohen et al. 2021) unless they are given their own seeds
(``Trainer(cfg, seeds=...)``, as the sweep engine does), and train together: the per-member state is
``vmap``-ed and each chunk of ``eval_every`` steps is one compiled
``lax.scan``, so there is no per-step Python loop or host sync.  Between
chunks the host evaluates the probes, writes metrics to the run store and
checkpoints.

Metrics (one series per member, at step t meaning "at theta_t"):

* ``loss``: the loss of the batch used at step t (the full training loss in full-batch mode), every step;
* ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``: at eval steps;
* ``sharpness`` (and ``sharpness_2`` ... for k > 1): top Hessian eigenvalues of
  the training loss (or its fixed subset), warm-started tracker, at eval steps
  or every step; ``sharpness_error`` (the largest eigenvalue error estimate of
  the solve), ``sharpness_converged`` (1 when every estimate met
  ``probes.tol`` relative, else 0: the value is budget-capped), ``sharpness_residual``
  (the rigorous residual bound) and ``sharpness_hvps`` say how accurate and
  costly each estimate was.  Eval-step solves have the budget
  ``probes.eval_max_hvps`` (every-step ones the small ``probes.max_hvps``), and
  run a cold check (a solve from a random block; the larger top value is kept)
  every ``probes.refresh_every`` steps and whenever the tracked value jumped by
  more than ``probes.jump`` or a solve did not converge
  (:class:`~eoslab.curvature.SharpnessTracker`);
* ``effective_sharpness`` = lambda_1(P_t^{-1} H), P_t the rule's preconditioner
  (:mod:`eoslab.rules`, step size included): for the SGD family
  (P = I / eta) it is lr * sharpness; for adaptive rules (diagonal P_t read from
  the optimizer state after the step that produced theta_t) a second
  warm-started tracker on P^{-1/2} H P^{-1/2} measures it, at the same steps as
  ``sharpness`` (not at step 0, where no P exists yet); ``effective_sharpness_error``
  and ``effective_sharpness_converged`` certify it as for ``sharpness``;
* ``edge_ratio`` = effective sharpness / effective threshold (1: at the edge of
  stability; for the SGD family equal to sharpness / raw threshold), ``threshold``
  (the raw-sharpness threshold for the SGD family, the effective one for adaptive
  rules), ``effective_threshold``, ``lr`` (the step size eta; with
  ``optimizer.lr_units = "1/lambda0"`` the config's lr is c and eta = c / lambda_0,
  lambda_0 the member's sharpness at initialisation);
* step-size tuners (:mod:`eoslab.tuners`), at every step: ``step_size`` eta_t =
  |theta_{t+1} - theta_t| / |g_t|, the tuner's own ``tuner_step``, the loss
  and gradient evaluations it spent (``tuner_values``, ``tuner_grads``) and
  ``tuner_success``; at eval steps ``tuned_step_size``, the step the tuner takes
  from theta_t (computed there, not applied), so ``effective_sharpness`` =
  eta_t * lambda_1(H_t) and ``edge_ratio`` = eta_t * lambda_1(H_t) / 2;
* ``step_curvature`` = eta_t * u.H u / |u|^2 along the step u = theta_{t+1} -
  theta_t, at every step (``probes.step_curvature``; one HVP of the step's
  loss; free for the CDAT tuner, which measures it);
* ``line_max_loss`` (``probes.line_points`` = n): at the last step, the highest
  training loss at ``(1 - s) theta_0 + s theta_T``, s = 1/n, 2/n, ..., 1 (the
  loss barrier of Kalra & Barkeshli 2023).

Divergence (NaN, inf, or a loss above ``train.diverge_above``) freezes that
member and is recorded with its step; it never stops the others or crashes.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from eoslab.curvature import SharpnessTracker, hvp
from eoslab.curvature.eigen import default_max_hvps
from eoslab.store import RunStore, config_hash
from eoslab.train.checkpoint import load_checkpoint, save_checkpoint
from eoslab.train.config import RunConfig
from eoslab.train.objective import Problem, build_problem
from eoslab.pytree import tree_sq_norm, tree_vdot
from eoslab.tuners.base import tuner_info

PyTree = Any
INIT_GROUP = 8  # members whose initial cold solves run together (vmapped) in init_carry


class Carry(NamedTuple):
    params: PyTree
    opt_state: PyTree
    tracker: PyTree  # TrackerState, or () without sharpness probes
    ptracker: PyTree  # TrackerState of lambda_1(P^-1 H) for adaptive rules, else ()
    active: jax.Array  # still training (not diverged, not stopped)
    diverged_step: jax.Array  # -1, or the step at which the loss went bad
    lr: jax.Array  # the member's step size eta (c / lambda_0 when optimizer.lr_units = "1/lambda0")
    seed: jax.Array  # the member's seed (initialisation, minibatch order)
    init_params: PyTree  # theta_0, kept for probes.line_points; else ()


@dataclasses.dataclass
class TrainResult:
    """What a finished ensemble produced (the same is in the run store)."""
    config: RunConfig
    run_ids: list[int]
    lrs: tuple[float, ...]
    status: list[str]
    diverged_step: list[int | None]
    metrics: list[dict[str, tuple[np.ndarray, np.ndarray]]]  # per member: name -> (steps, values)
    thresholds: list[float]
    step_sizes: list[float] | None = None  # eta per member (differs from lrs with optimizer.lr_units = "1/lambda0")

    def series(self, member: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.metrics[member].get(name, (np.zeros(0, int), np.zeros(0)))


def _where(cond, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(cond, a, b), new, old)


def _sharpness_names(k: int) -> list[str]:
    return ["sharpness"] + [f"sharpness_{i}" for i in range(2, k + 1)]


class Trainer:
    """Builds the compiled step, chunk and probe functions of one config."""

    def __init__(self, cfg: RunConfig, problem: Problem | None = None, seeds: tuple[int, ...] | None = None):
        self.cfg = cfg
        self.problem = problem or build_problem(cfg)
        self.rule = cfg.optimizer.rule
        self.dtype = self.problem.x_train.dtype
        self.lrs = jnp.asarray(cfg.lrs, self.dtype)
        self.seeds = tuple(int(s) for s in seeds) if seeds is not None else (cfg.seed,) * len(cfg.lrs)
        if len(self.seeds) != len(cfg.lrs):
            raise ValueError(f"{len(self.seeds)} seeds for {len(cfg.lrs)} step sizes; give one seed per member.")
        self.hp = cfg.optimizer.hp
        self.relative_lr = cfg.optimizer.lr_units == "1/lambda0"
        p = cfg.probes
        eval_budget = p.eval_max_hvps or None  # None: the solver's default for the dimension
        dim = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(
            jax.eval_shape(self.problem.model.init, jax.random.PRNGKey(0))))
        trackers = lambda k: (SharpnessTracker(k=k, tol=p.tol, max_hvps=p.max_hvps, cold_max_hvps=eval_budget,
                                               jump=p.jump),
                              SharpnessTracker(k=k, tol=p.tol, max_hvps=eval_budget or default_max_hvps(dim, k),
                                               cold_max_hvps=eval_budget, jump=p.jump))
        # every-step tracker (small budget, no cold branch) and eval-step tracker (full budget, cold checks)
        self.tracker, self.eval_tracker = trackers(p.sharpness_k) if p.sharpness_k > 0 else (None, None)
        self.ptracker, self.eval_ptracker = (trackers(1) if self.tracker is not None and self.rule.adaptive
                                             else (None, None))
        self._chunk = jax.jit(self._chunk_impl)
        self._eval = jax.jit(self._eval_impl)
        self._line = jax.jit(self._line_impl)
        self._init_members = jax.jit(lambda seeds: jax.lax.map(self._init_member, seeds, batch_size=INIT_GROUP))
        self._initial_sharpnesses = jax.jit(lambda p, ts: jax.lax.map(
            lambda a: self.initial_sharpness(*a), (p, ts), batch_size=INIT_GROUP))

    @property
    def num_members(self) -> int:
        return len(self.cfg.lrs)

    def thresholds_for(self, lrs) -> tuple[list[float], list[float]]:
        """(threshold, effective threshold) of each step size: raw 2/eta-style for the SGD family, else effective."""
        eff = [float(self.rule.threshold(float(lr), self.hp)) for lr in lrs]
        raw = (list(eff) if self.rule.adaptive or self.rule.tuner else
               [float(self.rule.raw_threshold(float(lr), self.hp)) for lr in lrs])
        return raw, eff

    # ---- per-member pieces -------------------------------------------------
    def _tx(self, lr) -> optax.GradientTransformation:
        return self.rule.transform(lr, self.hp)

    def preconditioner(self, opt_state, lr) -> PyTree | None:
        """P_t of one member (None for the SGD family, where P = I / lr)."""
        if not self.rule.adaptive:
            return None
        return self.rule.preconditioner(opt_state, lr, self.hp)

    def _init_member(self, seed):
        """theta_0 and the tracker states of one member (a cold solve when sharpness is probed)."""
        prob = self.problem
        params = prob.model.init(jax.random.PRNGKey(seed))
        tracker_state, ptracker_state = (), ()
        if self.tracker is not None:
            _, tracker_state = self.tracker.init(prob.sharpness_loss, params, key=jax.random.PRNGKey(seed + 1))
        if self.ptracker is not None:  # warm start: the top eigenvector of H (P_0 is a scalar)
            guard = tracker_state.vectors[1] if self.tracker.k > 1 else tracker_state.guard  # the next eigenvector
            ptracker_state = tracker_state._replace(vectors=tracker_state.vectors[:1],
                                                    eigenvalues=tracker_state.eigenvalues[:1], guard=guard)
        return params, tracker_state, ptracker_state

    def initial_sharpness(self, params, tracker_state) -> jax.Array:
        """lambda_0 of one member: the tracker's cold solve, or a cold solve of its own without sharpness probes."""
        if self.tracker is not None:
            return tracker_state.eigenvalues[0]
        from eoslab.curvature import top_eigenpairs
        return top_eigenpairs(self.problem.sharpness_loss, params, 1, tol=self.cfg.probes.tol,
                              max_hvps=self.cfg.probes.eval_max_hvps or None).eigenvalues[0]

    def init_carry(self, lrs=None, seeds=None) -> Carry:
        """The carry at step 0 of members with step sizes (or c) ``lrs`` and ``seeds`` (default: the config's).

        Members with the same seed share the initialisation.  With
        ``optimizer.lr_units = "1/lambda0"`` a member's value is c and its step
        size is eta = c / lambda_0, lambda_0 the sharpness of its own theta_0.
        """
        m = self.num_members
        values = np.asarray(self.cfg.lrs if lrs is None else lrs, np.float64)
        seeds = np.asarray(self.seeds if seeds is None else seeds, np.int64)
        if values.shape != (m,) or seeds.shape != (m,):
            raise ValueError(f"init_carry needs {m} step sizes and {m} seeds; got {values.shape} and {seeds.shape}.")
        stack = lambda tree: jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (m, *jnp.shape(a))), tree)
        # cold solves in groups of INIT_GROUP members: a vmap over all of them would hold every member's
        # Lanczos basis at once
        shared = len(set(seeds.tolist())) == 1
        if shared:  # one initialisation, shared
            params, tracker_state, ptracker_state = map(stack, self._init_member(int(seeds[0])))
        else:
            params, tracker_state, ptracker_state = self._init_members(jnp.asarray(seeds, jnp.int32))
        lr = jnp.asarray(values, self.dtype)
        if self.relative_lr:
            if shared:
                lam0 = self.initial_sharpness(jax.tree_util.tree_map(lambda a: a[0], params),
                                              jax.tree_util.tree_map(lambda a: a[0], tracker_state))
            else:
                lam0 = self._initial_sharpnesses(params, tracker_state)
            lr = lr / lam0
        opt_state = jax.vmap(lambda lr_i, p: self._tx(lr_i).init(p))(lr, params)
        init_params = params if self.cfg.probes.line_points > 0 else ()
        return Carry(params, opt_state, tracker_state, ptracker_state, jnp.ones((m,), bool),
                     jnp.full((m,), -1, jnp.int32), lr, jnp.asarray(seeds, jnp.int32), init_params)

    def _batch_indices(self, t, seed):
        bs, n = self.cfg.optimizer.batch_size, self.problem.x_train.shape[0]
        key = jax.random.fold_in(jax.random.PRNGKey(seed + 2), t)
        return jax.random.permutation(key, n)[:bs]

    @property
    def minibatch(self) -> bool:
        bs = self.cfg.optimizer.batch_size
        return bool(bs) and bs < self.problem.x_train.shape[0]

    def step_loss_fn(self, t, seed=None) -> Callable:
        """The loss step t descends: the minibatch loss of step t (of a member's ``seed``), or the full training loss."""
        if self.minibatch:
            idx = self._batch_indices(t, self.cfg.seed if seed is None else seed)
            return lambda p: self.problem.batch_loss(p, idx)
        return self.problem.train_loss

    def _update(self, params, opt_state, lr, loss, grads, loss_fn):
        """One update of the rule; tuners also get the loss, gradient and loss function (optax line-search style)."""
        tx = self._tx(lr)
        if self.rule.tuner:
            return tx.update(grads, opt_state, params, value=loss, grad=grads, value_fn=loss_fn)
        return tx.update(grads, opt_state, params)

    @staticmethod
    def _effective_lr(updates, grads):
        """eta_t = |theta_{t+1} - theta_t| / |g_t| (the tuner's step for the direction -g)."""
        gg = tree_sq_norm(grads)
        return jnp.where(gg > 0, jnp.sqrt(tree_sq_norm(updates) / jnp.where(gg > 0, gg, 1)), 0.0)

    def _tuner_outs(self, updates, opt_state, grads, params, loss_fn) -> dict:
        """Per-step record of a tuner: eta_t, its own step, evaluations spent, success, curvature along the step."""
        info = tuner_info(opt_state)
        eta = self._effective_lr(updates, grads)
        outs = dict(step_size=eta, tuner_step=info.step_size, tuner_values=info.num_values,
                    tuner_grads=info.num_grads, tuner_success=info.success)
        if self.cfg.optimizer.name == "edge":  # CDAT measured u.Hu/|u|^2 along u = -g already
            outs["step_curvature"] = eta * info.curvature
        elif self.cfg.probes.step_curvature:
            outs["step_curvature"] = eta * _curvature_along(loss_fn, params, updates)
        return outs

    def _step(self, carry: Carry, t):
        prob, cfg, lr = self.problem, self.cfg, carry.lr
        track = self.tracker is not None and cfg.probes.every_step
        loss_fn = self.step_loss_fn(t, carry.seed)
        if track and not self.minibatch and prob.sharpness_on_train_loss:
            # The solve linearises grad(train_loss) at theta_t anyway: reuse its loss and gradient.
            res, new_ts, loss, grads = self.tracker.update_with_grad(prob.train_loss, carry.params, carry.tracker)
        else:
            loss, grads = jax.value_and_grad(loss_fn)(carry.params)
            if track:
                res, new_ts = self.tracker.update(prob.sharpness_loss, carry.params, carry.tracker)
        bad = ~jnp.isfinite(loss) | (loss > cfg.train.diverge_above)
        diverged_step = jnp.where(carry.active & bad, t, carry.diverged_step)
        active = carry.active & ~bad
        outs = {"loss": loss}
        tracker_state = carry.tracker
        if track:
            tracker_state = _where(active, new_ts, carry.tracker)
            outs.update(_solve_outs(res))
        ptracker_state = carry.ptracker
        if self.ptracker is not None and cfg.probes.every_step:
            pres, new_ps = self.ptracker.update(prob.sharpness_loss, carry.params, carry.ptracker,
                                                precond=self.preconditioner(carry.opt_state, lr))
            ptracker_state = _where(active, new_ps, carry.ptracker)
            outs.update(_solve_outs(pres, "effective_sharpness"))
        updates, opt_state = self._update(carry.params, carry.opt_state, lr, loss, grads, loss_fn)
        if self.rule.tuner:
            outs.update(self._tuner_outs(updates, opt_state, grads, carry.params, loss_fn))
        elif cfg.probes.step_curvature:
            outs["step_curvature"] = lr * _curvature_along(loss_fn, carry.params, updates)
        params = optax.apply_updates(carry.params, updates)
        new = carry._replace(params=_where(active, params, carry.params),
                             opt_state=_where(active, opt_state, carry.opt_state),
                             tracker=tracker_state, ptracker=ptracker_state, active=active,
                             diverged_step=diverged_step)
        return new, outs

    def _chunk_impl(self, carry: Carry, ts):
        def member(c):
            return jax.lax.scan(lambda cc, t: self._step(cc, t), c, ts)
        return jax.vmap(member)(carry)

    def _eval_impl(self, carry: Carry, t, refresh):
        prob = self.problem

        def member(c):
            m = prob.evaluate(c.params)
            if self.rule.tuner:  # the step the tuner takes from here (computed, not applied)
                loss_fn = self.step_loss_fn(t, c.seed)
                loss, grads = jax.value_and_grad(loss_fn)(c.params)
                updates, _ = self._update(c.params, c.opt_state, c.lr, loss, grads, loss_fn)
                m["tuned_step_size"] = self._effective_lr(updates, grads)
            return m

        def solves(c):
            m = {}
            if self.tracker is not None:
                res, ts = self.eval_tracker.update(prob.sharpness_loss, c.params, c.tracker, refresh=refresh)
                m.update(_solve_outs(res))
                c = c._replace(tracker=_where(c.active, ts, c.tracker))
            if self.ptracker is not None:
                pres, ps = self.eval_ptracker.update(prob.sharpness_loss, c.params, c.ptracker,
                                                     precond=self.preconditioner(c.opt_state, c.lr), refresh=refresh)
                m.update(_solve_outs(pres, "effective_sharpness"))
                c = c._replace(ptracker=_where(c.active, ps, c.ptracker))
            return m, c

        m = jax.vmap(member)(carry)
        if self.tracker is None:
            return m, carry
        m2, carry = self._per_member(solves, carry)
        return {**m, **m2}, carry

    @property
    def sequential_solves(self) -> bool:
        """Whether the members' eigensolves at eval steps run one after another (``lax.map``), not vmapped.

        A vmapped Lanczos loop runs every member for as many Hessian-vector
        products as the slowest member needs, and on the CPU a vmapped product
        costs about as much per member as a single one: there, one after
        another inside the same compiled function is cheaper.  On accelerators
        the members' solves are vmapped.
        """
        return self.num_members > 1 and jax.default_backend() == "cpu"

    def _per_member(self, f, carry):
        return jax.lax.map(f, carry) if self.sequential_solves else jax.vmap(f)(carry)

    def _line_impl(self, carry: Carry):
        """max over s in (0, 1] of the training loss at (1 - s) theta_0 + s theta (probes.line_points points)."""
        prob, n = self.problem, self.cfg.probes.line_points
        s_grid = jnp.arange(1, n + 1, dtype=self.dtype) / n

        def member(c):
            at = lambda s: prob.train_loss(jax.tree_util.tree_map(lambda a, b: a + s * (b - a),
                                                                  c.init_params, c.params))
            losses = jax.lax.map(at, s_grid)
            return {"line_max_loss": jnp.max(jnp.where(jnp.isnan(losses), jnp.inf, losses))}
        return jax.vmap(member)(carry)

    # ---- host side ---------------------------------------------------------
    def run_chunk(self, carry: Carry, start: int, length: int):
        ts = jnp.arange(start, start + length, dtype=jnp.int32)
        return self._chunk(carry, ts)

    def evaluate(self, carry: Carry, t: int = 0, previous: int | None = None):
        """Probes at the parameters of ``carry``, which has taken ``t`` steps (outputs, carry).

        ``previous``: the step of the previous evaluation; the eigensolves run a
        cold check when a multiple of ``probes.refresh_every`` lies in (previous, t].
        """
        every = self.cfg.probes.refresh_every
        refresh = previous is not None and every > 0 and t // every > previous // every
        return self._eval(carry, jnp.asarray(t, jnp.int32), jnp.asarray(refresh))

    def line_probe(self, carry: Carry) -> dict:
        """``line_max_loss`` per member: the highest training loss on the segment from theta_0 to theta (the loss barrier)."""
        if self.cfg.probes.line_points <= 0:
            raise ValueError("line_probe needs probes.line_points >= 1.")
        return self._line(carry)


def _solve_outs(res, name: str = "sharpness") -> dict:
    """The record of one eigensolve: values, and the certificate of the solve (over its k pairs)."""
    values = res.eigenvalues if name == "sharpness" else res.eigenvalues[0]
    return {name: values, f"{name}_error": jnp.max(res.errors), f"{name}_residual": jnp.max(res.residuals),
            f"{name}_converged": res.converged.astype(values.dtype), f"{name}_hvps": res.num_hvps}


def _member_rows(outs: dict, member: int, steps: np.ndarray, k: int) -> dict:
    """Scan or eval outputs of one member as {metric: (steps, values)}."""
    rows = {}
    for key, arr in outs.items():
        a = np.asarray(arr[member], dtype=np.float64)  # metrics are stored as float64
        if key == "sharpness":
            for i, name in enumerate(_sharpness_names(k)):
                rows[name] = (steps, a[..., i].reshape(-1))
        else:
            rows[key] = (steps, a.reshape(-1))
    return rows


def progress_bar(total: int, initial: int, enabled: bool, *, unit: str = "step", desc: str | None = None):
    """The tqdm bar of training runs and sweeps (on stderr; ``enabled=False`` hides it)."""
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, disable=not enabled, file=sys.stderr, unit=unit, desc=desc,
                dynamic_ncols=True, leave=True)


def train(cfg: RunConfig, *, results_dir: str | Path = "results", store: RunStore | None = None,
          progress: bool = True) -> TrainResult:
    """Train the ensemble of ``cfg``, store every member as a run, and return the results.

    If an unfinished run of the same config and seed has a checkpoint in
    ``results_dir``, training resumes from it and ends with the same metrics
    as an uninterrupted run.
    """
    results_dir = Path(results_dir)
    trainer = Trainer(cfg)  # loads data and builds the model first: bad input writes nothing
    own_store = store is None
    store = store or RunStore.in_dir(results_dir)
    try:
        return _train(trainer, results_dir, store, progress)
    finally:
        if own_store:
            store.close()


def _train(trainer: Trainer, results_dir: Path, store: RunStore, progress: bool) -> TrainResult:
    cfg = trainer.cfg
    group_hash = config_hash(cfg.to_dict())
    group = f"{cfg.name}/{group_hash}"
    ckpt_path = results_dir / "checkpoints" / f"{group_hash}.npz"
    carry = trainer.init_carry()
    start, run_ids = 0, None
    if ckpt_path.exists():
        carry, start, meta = load_checkpoint(ckpt_path, carry)
        run_ids = [int(r) for r in meta["run_ids"]]
        if any(store.get_run(r).status != "running" for r in run_ids):
            run_ids, start, carry = None, 0, trainer.init_carry()
        else:
            for r in run_ids:
                store.delete_metrics_after(r, start)
    if run_ids is None:
        for stale in store.list_runs(status="running", group=group):
            store.finish_run(stale.id, "failed", error="interrupted before its first checkpoint; restarted")
        run_ids = [store.start_run(cfg.member(lr).to_dict(), name=cfg.name, seed=cfg.seed, group=group)
                   for lr in cfg.lrs]

    def emit(member_rows: list[dict]):
        for i, rows in enumerate(member_rows):
            store.log_metrics(run_ids[i], rows)

    def after_eval(t: int, carry: Carry):
        if cfg.train.checkpoint_every and t % cfg.train.checkpoint_every == 0 and t < cfg.train.steps:
            save_checkpoint(ckpt_path, carry, step=t, meta={"run_ids": np.asarray(run_ids)})

    carry, info = run_loop(trainer, carry, start, emit, after_eval=after_eval, progress=progress)
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
    return TrainResult(cfg, run_ids, cfg.lrs, status, div, metrics, info.thresholds, info.lrs)


@dataclasses.dataclass(frozen=True)
class MemberInfo:
    """Host-side facts of the members of a carry: step sizes eta (after c / lambda_0) and thresholds."""
    lrs: list[float]
    thresholds: list[float]
    effective_thresholds: list[float]


def member_info(trainer: Trainer, carry: Carry, values=None) -> MemberInfo:
    """``values``: the lrs the carry was initialised with (default the config's); exact for absolute units."""
    if trainer.relative_lr:  # eta = c / lambda_0, measured on the device
        lrs = [float(v) for v in np.asarray(carry.lr, np.float64)]
    else:
        lrs = [float(v) for v in (trainer.cfg.lrs if values is None else values)]
    raw, eff = trainer.thresholds_for(lrs)
    return MemberInfo(lrs, raw, eff)


def run_loop(trainer: Trainer, carry: Carry, start: int, emit: Callable[[list[dict]], Any], *,
             values=None, after_eval: Callable[[int, Carry], Any] | None = None, progress: bool = False,
             ) -> tuple[Carry, MemberInfo]:
    """Train ``carry`` from step ``start`` to ``train.steps``, handing every member's metric rows to ``emit``.

    ``emit`` receives one ``{metric: (steps, values)}`` dict per member, chunk
    by chunk and eval by eval (at step 0 first when ``start`` is 0); at the end,
    with ``probes.line_points``, the loss barrier ``line_max_loss`` at the last
    step.  ``after_eval(t, carry)`` runs after each evaluation (checkpoints).
    ``values``: the lrs passed to :meth:`Trainer.init_carry`, if not the config's.
    Members that diverge or meet a stop criterion are frozen; the loop ends
    when all are, or at ``train.steps``.
    """
    cfg = trainer.cfg
    k = cfg.probes.sharpness_k
    info = member_info(trainer, carry, values)
    m = trainer.num_members

    def eval_rows(step: int, outs: dict) -> list[dict]:
        steps = np.asarray([step])
        rows = []
        for i in range(m):
            r = _member_rows(outs, i, steps, k)
            if k > 0:
                _edge_rows(r, trainer, info, i)
            r["threshold"] = (steps, np.asarray([info.thresholds[i]]))
            r["effective_threshold"] = (steps, np.asarray([info.effective_thresholds[i]]))
            r["lr"] = (steps, np.asarray([info.lrs[i]]))
            rows.append(r)
        return rows

    steps_total = cfg.train.steps
    bar = progress_bar(steps_total, start, progress)
    if start == 0:
        outs, carry = trainer.evaluate(carry, 0)
        emit(eval_rows(0, outs))
    t = start
    try:
        while t < steps_total and bool(jnp.any(carry.active)):
            length = min(cfg.train.eval_every - t % cfg.train.eval_every, steps_total - t)
            carry, outs = trainer.run_chunk(carry, t, length)
            steps = np.arange(t, t + length)
            chunk_rows = [_member_rows(outs, i, steps, k) for i in range(m)]
            for i, rows in enumerate(chunk_rows):
                if k > 0 and cfg.probes.every_step:
                    _edge_rows(rows, trainer, info, i)
            t += length
            ev, carry = trainer.evaluate(carry, t, previous=t - length)
            emit(chunk_rows)
            emit(eval_rows(t, ev))
            carry = _apply_stops(cfg, carry, ev)
            if after_eval is not None:
                after_eval(t, carry)
            bar.update(length)
            bar.set_postfix_str(_postfix(ev, info.thresholds, k), refresh=False)
    finally:
        bar.close()
    if cfg.probes.line_points > 0:
        emit(_line_rows(trainer.line_probe(carry), m, t))
    return carry, info


def _line_rows(outs: dict, m: int, t: int) -> list[dict]:
    steps = np.asarray([t])
    return [{"line_max_loss": (steps, np.asarray([float(outs["line_max_loss"][i])]))} for i in range(m)]


def _edge_rows(rows: dict, trainer: Trainer, info: MemberInfo, i: int) -> None:
    """Add ``effective_sharpness`` (SGD family: lr * sharpness) and ``edge_ratio`` to one member's rows."""
    if trainer.rule.tuner:  # eval rows carry the probed eta_t, per-step rows the scan's own eta_t
        steps, lam = rows["sharpness"]
        eta = rows["tuned_step_size" if "tuned_step_size" in rows else "step_size"][1]
        _scaled_effective(rows, eta)
        rows["edge_ratio"] = (steps, rows["effective_sharpness"][1] / info.effective_thresholds[i])
    elif trainer.rule.adaptive:
        for key in ("effective_sharpness", "effective_sharpness_residual", "effective_sharpness_error",
                    "effective_sharpness_converged", "effective_sharpness_hvps"):
            steps, vals = rows[key]
            keep = steps > 0  # no preconditioner exists before the first step
            rows[key] = (steps[keep], vals[keep])
        steps, eff = rows["effective_sharpness"]
        rows["edge_ratio"] = (steps, eff / info.effective_thresholds[i])
    else:
        steps, lam = rows["sharpness"]
        _scaled_effective(rows, info.lrs[i])
        rows["edge_ratio"] = (steps, lam / info.thresholds[i])


def _scaled_effective(rows: dict, eta) -> None:
    """``effective_sharpness`` = eta * sharpness (P = I / eta), its error eta * error, the same certificate."""
    steps, lam = rows["sharpness"]
    rows["effective_sharpness"] = (steps, eta * lam)
    rows["effective_sharpness_error"] = (steps, np.abs(eta) * rows["sharpness_error"][1])
    rows["effective_sharpness_converged"] = rows["sharpness_converged"]


def _curvature_along(loss_fn: Callable, params, u) -> jax.Array:
    """u.H u / |u|^2 of ``loss_fn`` at ``params`` (one Hessian-vector product; NaN for u = 0)."""
    uu = tree_sq_norm(u)
    return jnp.where(uu > 0, tree_vdot(u, hvp(loss_fn, params, u)) / jnp.where(uu > 0, uu, 1), jnp.nan)


def _apply_stops(cfg: RunConfig, carry: Carry, ev: dict) -> Carry:
    stop = jnp.zeros_like(carry.active)
    if cfg.train.stop_loss > 0:
        stop = stop | (ev["train_loss"] < cfg.train.stop_loss)
    if cfg.train.stop_accuracy > 0:
        stop = stop | (ev["train_accuracy"] >= cfg.train.stop_accuracy)
    return carry._replace(active=carry.active & ~stop)


def _postfix(ev: dict, thresholds: list[float], k: int) -> str:
    parts = []
    for i, thr in enumerate(thresholds):
        s = f"loss {float(ev['train_loss'][i]):.4g}"
        if "tuned_step_size" in ev and k > 0:
            s += f" ηλ1 {float(ev['tuned_step_size'][i] * ev['sharpness'][i][0]):.4g}/2"
        elif "effective_sharpness" in ev:
            s += f" λ1(P⁻¹H) {float(ev['effective_sharpness'][i]):.4g}/{thr:.3g}"
        elif k > 0:
            s += f" λ1 {float(ev['sharpness'][i][0]):.4g}/{thr:.3g}"
        parts.append(s)
    return " | ".join(parts)


def _save_params(results_dir: Path, run_ids: list[int], params: PyTree) -> None:
    out = results_dir / "params"
    out.mkdir(parents=True, exist_ok=True)
    for i, rid in enumerate(run_ids):
        leaves = jax.tree_util.tree_leaves_with_path(jax.tree_util.tree_map(lambda a: a[i], params))
        np.savez(out / f"run-{rid}.npz", **{jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves})
