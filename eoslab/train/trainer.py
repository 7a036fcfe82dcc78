"""The compiled side of training: an ensemble of members, the pure step, and the probes.

A :class:`Trainer` holds what one config compiles: the per-member step
(the rule's update and the divergence check), the probes the config turns on
(:mod:`eoslab.probes`), and their evaluation.  Members differ in step size
and seed; they share the initialisation when they share the seed (as in
Cohen et al. 2021).  Their state, a :class:`Carry`, has the members on the
leading axis of every leaf, and each chunk of steps is one compiled
:func:`~eoslab.train.ensemble.scan_members` (a ``vmap`` over members of a
``lax.scan`` over steps), so there is no per-step Python loop or host sync.
The host loop that drives it and writes the metrics is :mod:`eoslab.train.loop`.

**Step sizes.**  ``optimizer.lr`` is the step size eta, or, with
``optimizer.lr_units = "1/lambda0"``, a multiple c of 1 / lambda_0, lambda_0
the sharpness of the member's own theta_0.  It is resolved once per member in
:meth:`Trainer.init_carry`: ``Carry.eta`` is always eta, and
:meth:`Trainer.facts` gives it on the host in float64 with the thresholds
(:class:`~eoslab.probes.MemberFacts`).

**Divergence.**  A loss that is NaN, inf or above ``train.diverge_above``
freezes that member (its parameters, optimizer and probe states stop
changing) and records the step; the others go on.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from eoslab.probes import EvalView, MemberFacts, ProbeContext, Sharpness, StepView, build_probes, member_facts
from eoslab.train.config import RunConfig
from eoslab.train.ensemble import keep_where, scan_members
from eoslab.train.objective import Problem, build_problem

PyTree = Any
INIT_GROUP = 8  # members whose initial cold solves run together (vmapped) in init_carry


class Carry(NamedTuple):
    """The state of an ensemble (members on the leading axis of every leaf)."""
    params: PyTree
    opt_state: PyTree
    probes: tuple  # one state per probe of Trainer.probes
    active: jax.Array  # still training (not diverged, not stopped)
    diverged_step: jax.Array  # -1, or the step at which the loss went bad
    eta: jax.Array  # the member's step size eta (c / lambda_0 with optimizer.lr_units = "1/lambda0")
    seed: jax.Array  # the member's seed (initialisation, minibatch order)


class Trainer:
    """The compiled step, chunk and probe functions of one config, for ``members`` members.

    ``seeds``: one per member (default: the config's seed for each of its
    step sizes).  The members' step sizes are given to :meth:`init_carry`
    (default: the config's).
    """

    def __init__(self, cfg: RunConfig, problem: Problem | None = None, seeds: tuple[int, ...] | None = None):
        self.cfg = cfg
        self.problem = problem or build_problem(cfg)
        self.rule = cfg.optimizer.rule
        self.hp = cfg.optimizer.hp
        self.dtype = self.problem.x_train.dtype
        self.seeds = tuple(int(s) for s in seeds) if seeds is not None else (cfg.seed,) * len(cfg.lrs)
        self.relative_lr = cfg.optimizer.lr_units == "1/lambda0"
        prob = self.problem
        dim = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(
            jax.eval_shape(prob.model.init, jax.random.PRNGKey(0))))
        self.context = ProbeContext(sharpness_loss=prob.sharpness_loss, train_loss=prob.train_loss, rule=self.rule,
                                    hp=self.hp, probes=cfg.probes, dim=dim,
                                    gradient_from_solve=not self.minibatch and prob.sharpness_on_train_loss)
        self.probes = build_probes(self.context)
        self._supplier = next((i for i, p in enumerate(self.probes) if p.supplies_gradient), None)
        self._chunk = jax.jit(lambda carry, ts: scan_members(self._step, carry, ts))
        self._eval = jax.jit(self._eval_impl)
        self._end = jax.jit(self._end_impl)
        self._init_members = jax.jit(lambda seeds: jax.lax.map(self._init_member, seeds, batch_size=INIT_GROUP))
        self._initial_sharpnesses = jax.jit(lambda p, s: jax.lax.map(
            lambda a: self.initial_sharpness(*a), (p, s), batch_size=INIT_GROUP))

    @property
    def num_members(self) -> int:
        return len(self.seeds)

    def probe(self, name: str):
        """The probe called ``name``, or None when the config turns it off."""
        return next((p for p in self.probes if p.name == name), None)

    # ---- step sizes and thresholds ------------------------------------------
    def facts(self, carry: Carry, values=None) -> list[MemberFacts]:
        """Each member's eta and thresholds in float64 on the host.

        ``values``: the lrs the carry was initialised with (default the
        config's); eta is exactly that value in absolute units, and the
        carry's c / lambda_0 (measured on the device) with ``lr_units = "1/lambda0"``.
        """
        if self.relative_lr:
            etas = [float(v) for v in np.asarray(carry.eta, np.float64)]
        else:
            etas = [float(v) for v in (self.cfg.lrs if values is None else values)]
        return [member_facts(self.rule, self.hp, eta) for eta in etas]

    # ---- initialisation -----------------------------------------------------
    def _init_member(self, seed):
        """theta_0 and the probe states of one member (probes built in order; each sees those before it)."""
        params = self.problem.model.init(jax.random.PRNGKey(seed))
        key = jax.random.PRNGKey(seed + 1)
        states: dict[str, PyTree] = {}
        for p in self.probes:
            states[p.name] = p.init(params, key, dict(states))
        return params, tuple(states[p.name] for p in self.probes)

    def initial_sharpness(self, params, states) -> jax.Array:
        """lambda_0 of one member: the sharpness probe's cold solve, or a cold solve of its own without it."""
        for p, s in zip(self.probes, states):
            if isinstance(p, Sharpness):
                return p.initial(s)
        from eoslab.curvature import top_eigenpairs
        return top_eigenpairs(self.problem.sharpness_loss, params, 1, tol=self.cfg.probes.tol,
                              max_hvps=self.cfg.probes.eval_max_hvps or None).eigenvalues[0]

    def init_carry(self, lrs=None, seeds=None) -> Carry:
        """The carry at step 0 of members with lrs ``lrs`` (eta, or c) and ``seeds`` (default: the config's).

        Members with the same seed share the initialisation.  With
        ``optimizer.lr_units = "1/lambda0"`` a member's value is c and its step
        size is eta = c / lambda_0, lambda_0 the sharpness of its own theta_0.
        """
        m = self.num_members
        if lrs is None and len(self.cfg.lrs) != m:
            raise ValueError(f"this trainer has {m} members and the config {len(self.cfg.lrs)} step sizes; "
                             f"give init_carry one lr per member.")
        values = np.asarray(self.cfg.lrs if lrs is None else lrs, np.float64)
        seeds = np.asarray(self.seeds if seeds is None else seeds, np.int64)
        if values.shape != (m,) or seeds.shape != (m,):
            raise ValueError(f"init_carry needs {m} step sizes and {m} seeds; got {values.shape} and {seeds.shape}.")
        stack = lambda tree: jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (m, *jnp.shape(a))), tree)
        first = lambda tree: jax.tree_util.tree_map(lambda a: a[0], tree)
        # cold solves in groups of INIT_GROUP members: a vmap over all of them would hold every member's
        # Lanczos basis at once
        shared = len(set(seeds.tolist())) == 1
        if shared:  # one initialisation, shared
            params, states = map(stack, self._init_member(int(seeds[0])))
        else:
            params, states = self._init_members(jnp.asarray(seeds, jnp.int32))
        eta = jnp.asarray(values, self.dtype)
        if self.relative_lr:
            lam0 = (self.initial_sharpness(first(params), first(states)) if shared
                    else self._initial_sharpnesses(params, states))
            eta = eta / lam0
        opt_state = jax.vmap(lambda e, p: self.rule.transform(e, self.hp).init(p))(eta, params)
        return Carry(params, opt_state, states, jnp.ones((m,), bool), jnp.full((m,), -1, jnp.int32), eta,
                     jnp.asarray(seeds, jnp.int32))

    # ---- the step -----------------------------------------------------------
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

    def update(self, params, opt_state, eta, loss, grads, loss_fn):
        """(updates, new optimizer state) of one step of the rule at step size ``eta``."""
        return self.rule.update(params, opt_state, eta, self.hp, loss, grads, loss_fn)

    def _step(self, carry: Carry, t):
        """One member's step t: loss and gradient, divergence, the update, the every-step probes."""
        loss_fn = self.step_loss_fn(t, carry.seed)
        sup = self._supplier
        if sup is not None:  # the sharpness solve linearises grad(train_loss) at theta_t anyway: reuse it
            loss, grads, *supplied = self.probes[sup].at_step_with_gradient(carry.probes[sup], carry.params)
        else:
            loss, grads = jax.value_and_grad(loss_fn)(carry.params)
        bad = ~jnp.isfinite(loss) | (loss > self.cfg.train.diverge_above)
        diverged_step = jnp.where(carry.active & bad, t, carry.diverged_step)
        active = carry.active & ~bad
        updates, opt_state = self.update(carry.params, carry.opt_state, carry.eta, loss, grads, loss_fn)
        view = StepView(t, carry.params, carry.opt_state, carry.eta, loss_fn, loss, grads, updates, opt_state)
        outs, states = {"loss": loss}, []
        for i, (probe, state) in enumerate(zip(self.probes, carry.probes)):
            if not probe.every_step:
                states.append(state)
                continue
            metrics, new = supplied if i == sup else probe.at_step(state, view)
            outs.update(metrics)
            states.append(keep_where(active, new, state))
        params = optax.apply_updates(carry.params, updates)
        new = carry._replace(params=keep_where(active, params, carry.params),
                             opt_state=keep_where(active, opt_state, carry.opt_state),
                             probes=tuple(states), active=active, diverged_step=diverged_step)
        return new, outs

    # ---- evaluation ---------------------------------------------------------
    def _eval_impl(self, carry: Carry, t, refresh):
        view = lambda c: EvalView(t, c.params, c.opt_state, c.eta, c.seed, self.step_loss_fn(t, c.seed), refresh)

        def measure(c, sequential: bool):
            metrics, states = {}, list(c.probes)
            for i, probe in enumerate(self.probes):
                if probe.sequential == sequential:
                    m, new = probe.at_eval(states[i], view(c))
                    metrics.update(m)
                    states[i] = keep_where(c.active, new, states[i])
            return metrics, tuple(states)

        def light(c):
            m, states = measure(c, False)
            return {**self.problem.evaluate(c.params), **m}, states

        m, states = jax.vmap(light)(carry)
        carry = carry._replace(probes=states)
        if not any(p.sequential for p in self.probes):
            return m, carry
        m2, states = self._per_member(lambda c: measure(c, True), carry)
        return {**m, **m2}, carry._replace(probes=states)

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

    def _end_impl(self, carry: Carry, t):
        def member(c):
            view = EvalView(t, c.params, c.opt_state, c.eta, c.seed, self.step_loss_fn(t, c.seed), False)
            out = {}
            for probe, state in zip(self.probes, c.probes):
                out.update(probe.at_end(state, view))
            return out
        return jax.vmap(member)(carry)

    # ---- host-side calls ----------------------------------------------------
    def run_chunk(self, carry: Carry, start: int, length: int):
        """``length`` steps from step ``start``: (carry, per-step metrics [members, length])."""
        return self._chunk(carry, jnp.arange(start, start + length, dtype=jnp.int32))

    def evaluate(self, carry: Carry, t: int = 0, previous: int | None = None):
        """The evaluation probes at the parameters of ``carry``, which has taken ``t`` steps: (metrics, carry).

        ``previous``: the step of the previous evaluation; the eigensolves run a
        cold check when a multiple of ``probes.refresh_every`` lies in (previous, t].
        """
        every = self.cfg.probes.refresh_every
        refresh = previous is not None and every > 0 and t // every > previous // every
        return self._eval(carry, jnp.asarray(t, jnp.int32), jnp.asarray(refresh))

    def at_end(self, carry: Carry, t: int) -> dict:
        """The probes' measurements after the last step (the loss barrier); {} when none measures there."""
        return self._end(carry, jnp.asarray(t, jnp.int32))
