"""The central flow, the stable flow and the discrete optimizer, side by side (Cohen, Damian et al. 2024).

For an update theta <- theta - P^{-1} grad L (P includes the step size; its
state s has rate ds/dt = r(s, g), :mod:`eoslab.flows.dynamics`), the
*stable flow* is gradient flow in the geometry of P,

    dtheta/dt = -P^{-1} grad L(theta),    ds/dt = r(s, grad L),

and the *central flow* models the time average of the oscillating iterates
at the edge of stability:

    dtheta/dt = -P^{-1} gbar,   gbar = grad L(theta) + 1/2 grad <H(theta), Sigma>,
    ds/dt     = r(s, g) + 1/2 d^2 r/dg^2 [H Sigma H],       Sigma = U X U^T,

where U holds the top eigenvectors of P^{-1} H, normalised so that
U^T P U = I (then U^T H U = diag(lambda)), and the k x k matrix X >= 0 keeps
the flow on the stability boundary: over the next time step dt the slack
A = U^T (cP - H) U (diag(c - lambda) now, c the threshold) must stay PSD,
and X may be non-zero only where it is used up.  A moves with the flow
(U held fixed),

    dA_ij/dt = c u_i^T (dP/dt) u_j - grad(u_i^T H u_j) . dtheta/dt,

affinely in X, so A(t + dt) = alpha + beta[X] and X solves the complementarity
problem of :mod:`eoslab.flows.complementarity`.  The third-derivative terms
D_ij = grad(u_i^T H u_j) come from reverse-over-forward-over-forward
differentiation (one product per pair i <= j); the eigenvectors from
eoslab's warm-started tracker on P^{-1/2} H P^{-1/2}
(:class:`~eoslab.curvature.SharpnessTracker`), a few Hessian-vector products
per measurement.

Momentum (heavy ball, Adam; an extension): the state carries an EMA m of the
averaged gradient, dm/dt = kappa (gbar - m), and dtheta/dt = -P^{-1} m.
The averaging argument is the same (the oscillation is period-2 along U, the
updates are linear in g and m, so only grad L's curvature terms survive the
average), but X reaches theta only through m: the substep moves the state
first and theta with the new m (semi-implicit Euler), which makes
A(t + dt) depend on X at order dt^2 kappa; beta is the Jacobian of A(t + dt)
in svec(X) (exact for first-order rules, whose A(t + dt) is affine in X; at
X = 0 for Adam, whose theta rate m_hat / P(nu) is not).

The time-averaged loss the flow predicts is L(theta) + 1/2 <H, Sigma> =
L(theta) + 1/2 sum_i X_ii lambda_i.

Time: one unit per optimizer step.  Each unit is integrated by Euler
substeps (explicit, or semi-implicit for momentum), as many as the flow's
fastest rate needs: ``ceil(rate / stiffness)``, the rate lambda_max(P^{-1} H)
for first-order rules (at GD's edge, 2, and the default stiffness 0.5 gives
4 substeps) and sqrt(kappa lambda_max) for momentum (2.0 at momentum's edge,
38: 5 substeps), at least ``min_substeps``.  The gradient is
fresh at every substep.  The curvature (U, lambda, D) is measured once per
unit by default and the slack carried between measurements by the same linear
model, A <- alpha + beta[X]; ``refresh="substep"`` measures it at every
substep, and ``third_every`` computes D less often (:class:`CentralFlow`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from eoslab.curvature import SharpnessTracker
from eoslab.errors import InputError
from eoslab.flows.complementarity import smat, solve, svec


class FlowPoint(NamedTuple):
    """The measurements at one instant of a flow (or at one step of the discrete run)."""
    loss: float
    predicted_loss: float  # L + 1/2 <H, Sigma> (central flow); L otherwise
    eigenvalues: np.ndarray  # top-k of P^{-1} H
    X: np.ndarray  # k x k (zeros outside the central flow)
    hvps: int  # Hessian-vector products spent since the last point
    third: int  # third-derivative products spent since the last point
    substeps: int
    converged: bool  # every eigensolve and complementarity solve met its tolerance
    error: float  # the error estimate of eigenvalues[0] (the tracker's residual bound)


@dataclasses.dataclass
class Trajectory:
    """A flow or a discrete run: parameters and measurements at t = 0, 1, ..., T."""
    kind: str  # "central", "stable" or "discrete"
    thetas: list[np.ndarray]
    points: list[FlowPoint]
    diverged: int | None = None  # the unit whose measurements were not finite (the trajectory ends there)
    reason: str = ""
    state: np.ndarray | None = None  # the state s at the last point: ``run(thetas[-1], more, state=state)`` goes on

    def series(self, name: str) -> np.ndarray:
        if name == "sharpness":
            return np.asarray([p.eigenvalues[0] for p in self.points])
        return np.asarray([getattr(p, name) for p in self.points], dtype=np.float64)


def _pairs(k: int):
    i, j = np.triu_indices(k)
    return i, j, np.where(i == j, 1.0, math.sqrt(2.0))


def third_derivatives(loss: Callable, theta: jax.Array, U: jax.Array) -> jax.Array:
    """grad_theta (u_i^T H(theta) u_j) for the pairs i <= j of the rows of U (svec order): [k(k+1)/2, n]."""
    i, j, _ = _pairs(U.shape[0])

    def one(u, v):
        curv = lambda t: jax.jvp(lambda s: jax.jvp(loss, (s,), (v,))[1], (t,), (u,))[1]  # noqa: E731
        return jax.grad(curv)(theta)

    return jax.lax.map(lambda uv: one(*uv), (U[i], U[j]))


class _Unit(NamedTuple):
    """What one unit of time of the central flow returns (measurements are at the unit's start)."""
    theta: jax.Array
    s: jax.Array
    tracker: object
    D: jax.Array  # the third-derivative products last computed, in the basis U_D
    U_D: jax.Array
    loss: jax.Array
    eigenvalues: jax.Array
    X: jax.Array  # the mean over the unit's substeps
    hvps: jax.Array
    converged: jax.Array
    error: jax.Array
    computed: jax.Array  # D was computed in this unit (not carried)


def rotate_pairs(D: jax.Array, R: jax.Array) -> jax.Array:
    """grad(u_a^T H u_b) for u_a = sum_c R_ac v_c, from grad(v_c^T H v_d) (pairs in svec order, no weights).

    Exact at the parameters where D was computed, for vectors in the span of
    the v's: the bilinear form's gradient transforms by congruence,
    M' = R M R^T entrywise in the parameter index.
    """
    k = R.shape[0]
    i, j, _ = _pairs(k)
    M = jnp.zeros((k, k, D.shape[-1]), D.dtype).at[i, j].set(D).at[j, i].set(D)
    M = jnp.einsum("ac,cdn->adn", R, M)
    M = jnp.einsum("bd,adn->abn", R, M)
    return M[i, j]


def _precond(dyn, s: jax.Array, theta: jax.Array) -> jax.Array:
    """P(s) with one entry per parameter (a scalar P broadcast)."""
    return jnp.broadcast_to(dyn.P(s), theta.shape)


MAX_SUBSTEPS = 10_000  # per unit: a flow stiffer than this is recorded as diverged


def _substeps(dyn, lam_max: float, s, stiffness: float, min_substeps: int) -> int:
    """Euler substeps per unit of time: dt * (the flow's fastest rate) <= stiffness, at least ``min_substeps``.

    The fastest rate is lambda_max(P^{-1} H) for first-order rules and
    sqrt(kappa lambda_max) for momentum rules (:mod:`eoslab.flows.dynamics`).
    """
    return max(min_substeps, math.ceil(max(dyn.fastest_rate(lam_max, s), 1e-12) / stiffness))


def _divergence(dyn, point: FlowPoint, theta, s, stiffness: float) -> str:
    """Why a trajectory cannot go on after this point ('' if it can); ``stiffness`` inf: no substeps to bound
    (the discrete run, whose ``s`` is the optimizer's state, not a flow's)."""
    if not (np.isfinite(point.loss) and np.all(np.isfinite(point.eigenvalues))):
        return "the loss or lambda(P^-1 H) is not finite"
    if not np.all(np.isfinite(np.asarray(theta))):
        return "the parameters are not finite"
    if math.isfinite(stiffness) and dyn.fastest_rate(float(point.eigenvalues[0]), s) / stiffness > MAX_SUBSTEPS:
        return (f"lambda_1(P^-1 H) = {point.eigenvalues[0]:.3g} would need more than {MAX_SUBSTEPS} Euler substeps "
                "per unit")
    return ""


def _layout(params):
    """What a compiled function depends on besides its arguments: the parameters' structure, shapes and dtypes."""
    leaves = jax.tree_util.tree_leaves(params)
    return jax.tree_util.tree_structure(params), tuple((np.shape(x), jnp.result_type(x)) for x in leaves)


class _Integrator:
    """What the three trajectories share: the flat loss, the cold first eigensolve, the compiled functions."""

    def __init__(self, loss_fn: Callable, dynamics, *, k: int, tol: float, seed: int, max_hvps: int = 60):
        self.loss_fn, self.dyn, self.k, self.tol, self.seed = loss_fn, dynamics, k, tol, seed
        self.max_hvps = max_hvps
        self._compiled: dict = {}

    def _tracker(self, k: int) -> SharpnessTracker:
        """The warm eigensolver of P^{-1/2} H P^{-1/2}: k pairs, ``tol``, ``max_hvps`` per update.

        The flows default to 60, not the tracker's 20: at the edge the top
        eigenvalues cluster (the central flow holds several at c), and with 20
        most solves there stopped before their error estimate met ``tol``.
        """
        return SharpnessTracker(k=k, tol=self.tol, max_hvps=self.max_hvps)

    def _flat(self, params):
        """The parameters as one vector, and the loss of such a vector."""
        theta, unravel = ravel_pytree(params)
        return theta, (lambda v: self.loss_fn(unravel(v)))

    def _compile(self, params, key, build: Callable):
        """``build()`` once per parameter layout and ``key`` (it closes over the flat loss of that layout)."""
        key = (_layout(params), key)
        if key not in self._compiled:
            self._compiled[key] = build()
        return self._compiled[key]

    def _start(self, theta, g0, state, *, discrete: bool = False):
        """The initial state: ``state`` if given (checked against the dynamics' layout), else the dynamics' own."""
        own = (self.dyn.init if discrete else self.dyn.flow_init)(theta, g0)
        if state is None:
            return own
        state = jnp.asarray(state, theta.dtype)
        what = "optimizer state (dynamics.init)" if discrete else "flow state (dynamics.flow_init)"
        if state.shape != own.shape:
            raise InputError(f"state has shape {tuple(state.shape)}, but {self.dyn.name}'s {what} for these "
                             f"parameters has shape {tuple(own.shape)}; pass a state of that shape, or none.")
        if not bool(jnp.all(jnp.isfinite(state))):
            raise InputError(f"state has non-finite entries; pass a finite {what}, or none.")
        return state

    def _cold(self, loss, theta, s, k: int):
        """The first, cold eigensolve of P(s)^{-1/2} H P(s)^{-1/2}: its result and the tracker state."""
        return self._tracker(k).init(loss, theta, precond=_precond(self.dyn, s, theta),
                                     key=jax.random.PRNGKey(self.seed))


class CentralFlow(_Integrator):
    """The central flow of ``dynamics`` on ``loss_fn`` (see the module docstring).

    ``k``: eigenvectors of P^{-1} H followed (the set grows by one, up to
    ``k_max``, whenever the smallest tracked eigenvalue comes within
    ``grow_margin`` of the threshold); ``tol``: the eigensolves' relative
    accuracy (1e-4 by default, 2e-4 absolute at GD's threshold 2; at the
    edge the top eigenvalues cluster, and a tighter tolerance leaves many
    solves uncertified within ``max_hvps``); ``sdcp_tol``: the
    complementarity solver's.

    ``refresh`` says how often the curvature is measured:

    * ``"substep"``: the eigenvectors (warm tracker) and the k(k+1)/2
      third-derivative products at every Euler substep, the slack measured
      there, A = diag(c - lambda);
    * ``"unit"`` (default): once per unit of time.  Within the unit, U and D
      are held and the slack is carried by its own linear model,
      A <- alpha + beta[X] (the value the complementarity problem predicted for
      the end of the substep), the gradient is fresh at every substep.  The
      measurement at the next unit corrects what the linear model missed.
      ``third_every`` > 1 computes D only every that many units; in between it
      is carried to the new eigenvectors by :func:`rotate_pairs` (exact for a
      basis change inside the span, first order in the parameters' move),
      and computed anyway when an eigenvector has moved out of the span D was
      computed in by more than ``span_tol`` (||u - its projection||, P-norm).

    ``benchmarks/central_flow_cost.py`` measures what each choice costs and how
    far it moves the trajectory from ``refresh="substep"``.
    """

    def __init__(self, loss_fn: Callable, dynamics, *, k: int = 2, k_max: int = 5, tol: float = 1e-4,
                 sdcp_tol: float = 1e-9, stiffness: float = 0.5, min_substeps: int = 1,
                 grow_margin: float = 0.05, refresh: str = "unit", third_every: int = 1, span_tol: float = 1e-2,
                 max_hvps: int = 60, seed: int = 0):
        super().__init__(loss_fn, dynamics, k=k, tol=tol, seed=seed, max_hvps=max_hvps)
        if refresh not in ("unit", "substep"):
            raise InputError(f"refresh={refresh!r} is not a refresh schedule; use 'unit' or 'substep'.")
        if not isinstance(third_every, int) or third_every < 1 or (refresh == "substep" and third_every != 1):
            raise InputError(f"third_every={third_every!r} must be a positive integer (and 1 with "
                             "refresh='substep', which measures everything at every substep).")
        self.k_max, self.sdcp_tol = k_max, sdcp_tol
        self.stiffness, self.min_substeps, self.grow_margin = stiffness, min_substeps, grow_margin
        self.refresh, self.third_every, self.span_tol = refresh, third_every, span_tol

    def _unit_fn(self, loss, k: int):
        """One unit of time in ``n`` Euler substeps, ``fresh``: compute D (else carry it unless it must be computed).

        ``n`` and ``fresh`` are arguments of the compiled program, so it is compiled once per k.
        """
        dyn, thr = self.dyn, self.dyn.threshold
        tracker = self._tracker(k)
        i, j, w = _pairs(k)
        w = jnp.asarray(w)

        def measure(theta, s, tstate, D_base, U_base, fresh):
            p = _precond(dyn, s, theta)
            res, tstate = tracker.update(loss, theta, tstate, precond=p)
            lam = res.eigenvalues
            U = res.eigenvectors / jnp.sqrt(p)  # rows u_i with U P U^T = I and U H U^T = diag(lambda)
            # D is carried from the basis it was computed in, unless it is due or an eigenvector has left that span
            R = (U * p) @ U_base.T  # R_ac = u_a^T P v_c
            outside = jnp.sqrt(jnp.maximum(1.0 - jnp.min(jnp.sum(R * R, axis=1)), 0.0))  # max ||u_a - proj||_P
            computed = fresh | (outside > self.span_tol)

            def recompute():
                D = third_derivatives(loss, theta, U)  # [npairs, n]
                return D, U, D

            D_base, U_base, D = jax.lax.cond(computed, recompute, lambda: (D_base, U_base, rotate_pairs(D_base, R)))
            HU = (U * p) * lam[:, None]  # H u_i = lambda_i P u_i
            return res, tstate, U, D, HU, D_base, U_base, computed

        def euler(theta, s, U, D, HU, A, dt):
            """One substep from slack A = U^T (cP - H) U: solve for X, step; the slack it predicts next."""
            value, g = jax.value_and_grad(loss)(theta)
            G = 0.5 * D * w[:, None]  # row c: d gbar / d x_c, gbar = g + 1/2 grad <H, Sigma>, x = svec(X)

            def second(u, v):  # d^2 r / dg^2 [u, v] (gbar held)
                return jax.jvp(lambda a: jax.jvp(lambda b: dyn.rate(s, b, g), (a,), (v,))[1], (g,), (u,))[1]

            Q = jax.lax.map(lambda ab: second(*ab), (HU[i], HU[j]))  # [npairs, dim s]
            ds_X = 0.5 * Q * w[:, None]  # 1/2 r''[H Sigma H] = 1/2 sum_c x_c w_c Q_c
            dP = lambda ds: jnp.broadcast_to(jax.jvp(dyn.P, (s,), (ds,))[1], theta.shape)  # noqa: E731

            def rates(x):  # dtheta/dt and ds/dt over the substep for the oscillation x = svec(X)
                gbar = g + x @ G
                ds = dyn.rate(s, g, gbar) + x @ ds_X
                return dyn.theta_rate(s + dt * ds if dyn.momentum else s, gbar), ds

            def slack_next(x):  # svec of A(t + dt) = A + dt dA/dt, U held
                dth, ds = rates(x)
                return svec(A + dt * (thr * (U * dP(ds)) @ U.T - smat((D @ dth) * w, k)))

            x0 = jnp.zeros(i.shape, theta.dtype)
            alpha = smat(slack_next(x0), k)
            beta = jax.jacfwd(slack_next)(x0)  # affine in x for first-order rules; linearised at X = 0 for Adam's
            sol = solve(alpha, 0.5 * (beta + beta.T), tol=self.sdcp_tol)
            x = svec(sol.X)
            A_next = alpha + smat(beta @ x, k)
            dth, ds = rates(x)
            return theta + dt * dth, s + dt * ds, 0.5 * (A_next + A_next.T), value, sol.X, sol.converged

        if self.refresh == "substep":
            def unit(theta, s, tstate, D_base, U_base, n, fresh):
                dt = 1.0 / n.astype(theta.dtype)

                def substep(theta, s, tstate):
                    res, tstate, U, D, HU, _, _, _ = measure(theta, s, tstate, D_base, U_base, True)
                    theta, s, _, value, X, sok = euler(theta, s, U, D, HU, jnp.diag(thr - res.eigenvalues), dt)
                    return theta, s, tstate, res, value, X, res.converged & sok

                def body(_, c):  # the substeps after the first, whose measurements the unit reports
                    theta, s, tstate, hv, ok, X_sum = c
                    theta, s, tstate, res, _, X, sok = substep(theta, s, tstate)
                    return theta, s, tstate, hv + res.num_hvps, ok & sok, X_sum + X

                theta, s, tstate, res, value, X, ok = substep(theta, s, tstate)
                theta, s, tstate, hv, ok, X_sum = jax.lax.fori_loop(1, n, body,
                                                                    (theta, s, tstate, res.num_hvps, ok, X))
                return _Unit(theta, s, tstate, D_base, U_base, value, res.eigenvalues, X_sum / n, hv, ok,
                             res.errors[0], jnp.asarray(True))
        else:
            def unit(theta, s, tstate, D_base, U_base, n, fresh):
                dt = 1.0 / n.astype(theta.dtype)
                res, tstate, U, D, HU, D_base, U_base, computed = measure(theta, s, tstate, D_base, U_base, fresh)

                def body(_, c):
                    theta, s, A, ok, X_sum = c
                    theta, s, A, _, X, sok = euler(theta, s, U, D, HU, A, dt)
                    return theta, s, A, ok & sok, X_sum + X

                theta, s, A, value, X, sok = euler(theta, s, U, D, HU, jnp.diag(thr - res.eigenvalues), dt)
                theta, s, _, ok, X_sum = jax.lax.fori_loop(1, n, body, (theta, s, A, res.converged & sok, X))
                return _Unit(theta, s, tstate, D_base, U_base, value, res.eigenvalues, X_sum / n, res.num_hvps,
                             ok, res.errors[0], computed)

        return jax.jit(unit)

    def run(self, params, steps: int, state=None) -> Trajectory:
        """Integrate from ``params`` for ``steps`` units of time; a point at every unit.

        ``state``: the flow's state s to start from (default ``dynamics.flow_init``), e.g. the ``state`` of an
        earlier trajectory, to go on from its end (with a cold eigensolve, fresh third derivatives, and the
        first unit's substeps set by lambda there rather than by the previous unit's).
        """
        theta, loss = self._flat(params)
        g0 = jax.grad(loss)(theta)
        s = self._start(theta, g0, state)
        k = self.k
        res, tstate = self._cold(loss, theta, s, k)
        D_base, U_base = _no_third(k, theta)  # none yet: the first unit computes them
        since = None  # units since D was computed (None: never, or for another k)
        thetas, points = [np.asarray(theta)], []
        lam_max = float(res.eigenvalues[0])
        for t in range(steps + 1):
            n = _substeps(self.dyn, lam_max, s, self.stiffness, self.min_substeps)
            fresh = self.refresh == "substep" or since is None or since + 1 >= self.third_every
            out = self._compile(params, k, lambda: self._unit_fn(loss, k))  # noqa: B023
            out = out(theta, s, tstate, D_base, U_base, jnp.asarray(n), jnp.asarray(fresh))
            npairs = k * (k + 1) // 2
            computed = bool(out.computed)
            third = npairs * n if self.refresh == "substep" else (npairs if computed else 0)
            since = 0 if computed else since + 1
            lam, Xm = np.asarray(out.eigenvalues), np.asarray(out.X)
            pred = float(out.loss) + 0.5 * float(np.sum(np.diag(Xm) * lam))
            points.append(FlowPoint(float(out.loss), pred, lam, Xm, int(out.hvps), third, n, bool(out.converged),
                                    float(out.error)))
            why = _divergence(self.dyn, points[-1], out.theta, out.s, self.stiffness)
            if why:
                return Trajectory("central", thetas, points, diverged=t, reason=why, state=np.asarray(s))
            if t < steps:  # (the last unit only measures)
                theta, s, tstate, D_base, U_base = out.theta, out.s, out.tracker, out.D, out.U_D
                thetas.append(np.asarray(theta))
            lam_max = float(lam[0])
            if lam[-1] >= (1 - self.grow_margin) * self.dyn.threshold and k < self.k_max:
                k += 1  # a new eigenvalue reaches the edge: follow one more
                tstate = _grow(tstate)
                D_base, U_base = _no_third(k, theta)
                since = None
        return Trajectory("central", thetas, points, state=np.asarray(s))


def _no_third(k: int, theta: jax.Array):
    """Placeholders of the right shapes for D and its basis, before the first third-derivative products."""
    return jnp.zeros((k * (k + 1) // 2, theta.size), theta.dtype), jnp.zeros((k, theta.size), theta.dtype)


def _grow(tstate):
    """The tracker state following one more eigenvector: its guard (the next Ritz vector) joins the set."""
    return tstate._replace(vectors=jnp.concatenate([tstate.vectors, tstate.guard[None]]),
                           eigenvalues=jnp.concatenate([tstate.eigenvalues, tstate.eigenvalues[-1:]]))


class StableFlow(_Integrator):
    """Gradient flow in the geometry of P: dtheta/dt = -P^{-1} grad L, ds/dt = r(s, g) (no oscillation).

    The same substeps as :class:`CentralFlow` (``ceil(lambda_max / stiffness)``
    per unit of time); it also tracks the top-k eigenvalues of P^{-1} H, which
    along this flow rise past the threshold (it is the flow the central flow
    is compared with).
    """

    def __init__(self, loss_fn: Callable, dynamics, *, k: int = 2, tol: float = 1e-4, stiffness: float = 0.5,
                 min_substeps: int = 1, max_hvps: int = 60, seed: int = 0):
        super().__init__(loss_fn, dynamics, k=k, tol=tol, seed=seed, max_hvps=max_hvps)
        self.stiffness, self.min_substeps = stiffness, min_substeps

    def _unit_fn(self, loss):
        """One unit of time in ``n`` Euler substeps (an argument: one compiled program)."""
        dyn, tracker = self.dyn, self._tracker(self.k)

        def unit(theta, s, tstate, n):
            value = loss(theta)
            res, tstate = tracker.update(loss, theta, tstate, precond=_precond(dyn, s, theta))
            nf = n.astype(theta.dtype)

            def sub(_, c):
                th, st = c
                g = jax.grad(loss)(th)
                new_st = st + dyn.rate(st, g, g) / nf
                return th + dyn.theta_rate(new_st if dyn.momentum else st, g) / nf, new_st

            theta, s = jax.lax.fori_loop(0, n, sub, (theta, s))
            return theta, s, tstate, value, res.eigenvalues, res.num_hvps, res.converged, res.errors[0]

        return jax.jit(unit)

    def run(self, params, steps: int, state=None) -> Trajectory:
        """Integrate from ``params`` (and ``state``, as :meth:`CentralFlow.run`) for ``steps`` units of time."""
        theta, loss = self._flat(params)
        s = self._start(theta, jax.grad(loss)(theta), state)
        res, tstate = self._cold(loss, theta, s, self.k)
        lam_max = float(res.eigenvalues[0])
        thetas, points = [np.asarray(theta)], []
        for t in range(steps + 1):
            n = _substeps(self.dyn, lam_max, s, self.stiffness, self.min_substeps)
            unit = self._compile(params, None, lambda: self._unit_fn(loss))
            new_theta, new_s, tstate, value, lam, hvps, ok, err = unit(theta, s, tstate, jnp.asarray(n))
            lam = np.asarray(lam)
            points.append(FlowPoint(float(value), float(value), lam, np.zeros((self.k, self.k)), int(hvps), 0, n,
                                    bool(ok), float(err)))
            why = _divergence(self.dyn, points[-1], new_theta, new_s, self.stiffness)
            if why:
                return Trajectory("stable", thetas, points, diverged=t, reason=why, state=np.asarray(s))
            if t < steps:
                theta, s = new_theta, new_s
                thetas.append(np.asarray(theta))
            lam_max = float(lam[0])
        return Trajectory("stable", thetas, points, state=np.asarray(s))


class DiscreteRun(_Integrator):
    """The optimizer itself (``dynamics.update``), with lambda(P^{-1} H) at every step.

    The eigenvalues at step t are those of P(s_{t+1})^{-1} H(theta_t): the
    preconditioner that step applies (for Adam and RMSProp, after their
    second-moment update).
    """

    def __init__(self, loss_fn: Callable, dynamics, *, k: int = 2, tol: float = 1e-4, max_hvps: int = 60,
                 seed: int = 0):
        super().__init__(loss_fn, dynamics, k=k, tol=tol, seed=seed, max_hvps=max_hvps)

    def _step_fn(self, loss):
        dyn, tracker = self.dyn, self._tracker(self.k)

        def step(theta, s, tstate):
            value, g = jax.value_and_grad(loss)(theta)
            new_theta, new_s = dyn.update(theta, s, g)
            res, tstate = tracker.update(loss, theta, tstate, precond=_precond(dyn, new_s, theta))
            return new_theta, new_s, tstate, value, res.eigenvalues, res.num_hvps, res.converged, res.errors[0]

        return jax.jit(step)

    def run(self, params, steps: int, state=None) -> Trajectory:
        """``steps`` steps from ``params`` and the optimizer's ``state`` (default ``dynamics.init``)."""
        theta, loss = self._flat(params)
        g0 = jax.grad(loss)(theta)
        s = self._start(theta, g0, state, discrete=True)
        _, tstate = self._cold(loss, theta, self.dyn.update(theta, s, g0)[1], self.k)
        step = self._compile(params, None, lambda: self._step_fn(loss))

        thetas, points = [np.asarray(theta)], []
        for t in range(steps + 1):
            new_theta, new_s, tstate, value, lam, hvps, ok, err = step(theta, s, tstate)
            points.append(FlowPoint(float(value), float(value), np.asarray(lam), np.zeros((self.k, self.k)),
                                    int(hvps), 0, 1, bool(ok), float(err)))
            why = _divergence(self.dyn, points[-1], new_theta, new_s, math.inf)
            if why:
                return Trajectory("discrete", thetas, points, diverged=t, reason=why, state=np.asarray(s))
            if t < steps:
                theta, s = new_theta, new_s
                thetas.append(np.asarray(theta))
        return Trajectory("discrete", thetas, points, state=np.asarray(s))
