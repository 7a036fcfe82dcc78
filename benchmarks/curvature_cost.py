"""Cost of the top Hessian eigenvalue: eoslab Lanczos (cold and warm) vs power iteration vs ARPACK.

Measured side by side in one run, on an fc-tanh MLP on digits trained by
full-batch gradient descent towards the edge of stability:

1. cold Lanczos (eoslab, random start): the number of Hessian-vector products
   (HVPs) at which the top Ritz value first is within ``target`` (1e-4) relative
   error of the reference, read off one long run by the Lanczos prefix property
   (the Ritz values after m steps are the eigenvalues of the leading m x m block
   of T), and what ``top_eigenpairs`` spends with its own stopping rule
   (relative residual <= 1e-4) and the error it reaches;
2. warm Lanczos one GD step later, started from the converged top eigenvector
   at the previous iterate (prefix property again), what
   ``SharpnessTracker.update`` spends from the same vector with its own rule,
   and a tracker chained along the whole run from its own previous vectors;
3. power iteration as PyHessian does it (random start, v <- Hv/|Hv|, estimate
   v.Hv, stop at relative change < 1e-3, at most 100 iterations; it returns
   the estimate *before* the last product), and the HVPs it needs for 1e-4;
4. ``scipy.sparse.linalg.eigsh(k=1, which="LA")`` (ARPACK) on the same product
   wrapped in a float64 LinearOperator, counting matvecs;
5. the reference: float64 model and data, eoslab Lanczos to relative residual
   < 1e-10 (|theta - lambda| <= residual, so this bounds its error), with the
   residual re-checked by an explicit float64 HVP;
6. wall time of one HVP (eoslab's linearised operator and plain jvp-of-grad)
   against one gradient, and of each method's own solve.

Timings run with the BLAS/LAPACK thread pool limited to one thread
(threadpoolctl), because Lanczos' convergence test calls LAPACK's eigh on the
small tridiagonal matrix and a multi-threaded OpenBLAS fighting XLA's own
threads for a few shared cores makes that call 10-100x slower and erratic.
One extra row times the cold solve with the default BLAS threads, to show it.

Every solver works in float32 (JAX's default, what users run) on the same
linearised operator (the computation of ``eoslab.curvature.flat_operator``), so
HVP counts and wall times compare the algorithms, not the products; each also
pays one linearisation (about one gradient) that the counts leave out.

    cd /work/main && .venv/bin/python benchmarks/curvature_cost.py [--quick] [--json PATH]
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import platform
import statistics
import sys

from _common import code_version
import time
from pathlib import Path
from typing import Any, Callable

import jax

jax.config.update("jax_enable_x64", True)  # for the float64 reference only; solvers stay float32

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh  # noqa: E402

from eoslab.curvature import (SharpnessTracker, TrackerState, flat_operator, hvp,  # noqa: E402
                              top_eigenpairs, tridiag_sym)
from eoslab.data import load_dataset  # noqa: E402
from eoslab.losses import make_loss_fn  # noqa: E402
from eoslab.models import make_model  # noqa: E402

try:  # a dependency of scikit-learn, hence always there with eoslab
    import threadpoolctl
except ImportError:  # pragma: no cover
    threadpoolctl = None


def blas_threads() -> int | None:
    """Current size of the BLAS thread pool (None if threadpoolctl is missing)."""
    if threadpoolctl is None:
        return None
    sizes = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    return max(sizes) if sizes else None


def blas_limit(n: int | None):
    """Context manager limiting the BLAS thread pool to n threads (no-op if n is None)."""
    if threadpoolctl is None or n is None:
        import contextlib
        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(n, user_api="blas")


@dataclasses.dataclass(frozen=True)
class Config:
    widths: tuple[int, ...] = (128,)
    loss: str = "mse"
    seed: int = 0
    eta: float = 0.3  # 2/eta = 6.7; sharpness starts near 5.5 and rises to it within ~150 steps
    steps: int = 300
    points: int = 30  # measurement points t (evenly spaced in 1..steps)
    target: float = 1e-4  # relative eigenvalue error to reach
    ref_tol: float = 1e-10  # relative residual of the float64 reference
    ref_max_hvps: int = 250
    cold_steps: int = 100  # length of the long cold Lanczos run (prefix property)
    warm_steps: int = 30  # length of the long warm Lanczos run
    power_tol: float = 1e-3  # PyHessian's default
    power_max_iter: int = 100  # PyHessian's default
    power_budget: int = 1000  # how far power iteration is followed to see it reach `target`
    eigsh_tols: tuple[float, ...] = (0.0, 1e-4, 1e-2)  # 0 is scipy's default (machine precision)
    eigsh_budget: int = 3000  # matvecs after which an eigsh run is abandoned
    solve_repeats: int = 2  # timed repeats of each method's own solve, per point
    blas_threads: int | None = 1  # BLAS pool size while timing (None: leave as it is)
    small_budget: int = 40  # max_hvps of the extra cold top_eigenpairs row (same answer, smaller buffers)
    micro_repeats: int = 300  # timed repeats of grad / HVP (interleaved)
    hvp_target: float = 2.5  # HVP <= 2.5 gradients
    cold_target: float = 20  # cold Lanczos <= 20 HVPs to 1e-4
    warm_target: float = 5  # warm (median) <= 5 HVPs to 1e-4

    @staticmethod
    def quick() -> "Config":
        return Config(points=8, solve_repeats=1, micro_repeats=60, power_budget=600)


# ----------------------------------------------------------------------------- problem


@dataclasses.dataclass
class Problem:
    loss32: Callable
    loss64: Callable
    unravel: Callable  # flat float32 vector -> params pytree
    trajectory: np.ndarray  # (steps + 1, dim) float32 params theta_0..theta_T
    losses: np.ndarray  # (steps + 1,) training loss at each theta_t
    dim: int
    n_train: int

    def params(self, t: int):
        return self.unravel(jnp.asarray(self.trajectory[t]))

    def params64(self, t: int):
        return jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), self.params(t))


def build_problem(cfg: Config) -> Problem:
    ds = load_dataset("digits")
    kwargs = dict(input_shape=(64,), num_outputs=10, widths=cfg.widths)
    model32 = make_model("fc-tanh", **kwargs)
    # a float64 *model* (not only float64 params): a float32 module casts its activations back to float32
    model64 = make_model("fc-tanh", dtype="float64", **kwargs)
    loss32 = make_loss_fn(model32, cfg.loss, ds.x_train, ds.y_train)
    loss64 = make_loss_fn(model64, cfg.loss, ds.x_train.astype(np.float64), ds.y_train.astype(np.float64))
    flat0, unravel = ravel_pytree(model32.init(cfg.seed))
    assert flat0.dtype == jnp.float32

    @jax.jit
    def train(flat):
        def step(theta, _):
            value, g = jax.value_and_grad(lambda f: loss32(unravel(f)))(theta)
            return theta - cfg.eta * g, (theta, value)
        last, (path, values) = jax.lax.scan(step, flat, None, length=cfg.steps)
        return jnp.concatenate([path, last[None]]), jnp.concatenate([values, loss32(unravel(last))[None]])

    path, values = jax.device_get(train(flat0))
    if not np.all(np.isfinite(path)):
        sys.exit(f"GD with eta={cfg.eta} diverged; lower eta.")
    return Problem(loss32, loss64, unravel, np.asarray(path), np.asarray(values), int(flat0.shape[0]),
                   int(ds.x_train.shape[0]))



def measurement_points(cfg: Config) -> list[int]:
    return sorted({int(round(x)) for x in np.linspace(cfg.steps / cfg.points, cfg.steps, cfg.points)})


# ----------------------------------------------------------------------------- reference


@dataclasses.dataclass
class Reference:
    values: np.ndarray  # (k,) float64, descending
    vector: np.ndarray  # (dim,) float64, top eigenvector
    residual: float  # max over pairs of ||H y - theta y|| / lambda_1, explicit float64 HVPs
    hvps: int
    converged: bool


def reference(problem: Problem, t: int, cfg: Config, k: int) -> Reference:
    p64 = problem.params64(t)
    res = top_eigenpairs(problem.loss64, p64, k, tol=cfg.ref_tol, max_hvps=cfg.ref_max_hvps,
                         key=jax.random.PRNGKey(10_000 + t))
    vecs = jax.vmap(lambda v: ravel_pytree(v)[0])(res.eigenvectors)
    explicit = max(float(jnp.linalg.norm(ravel_pytree(hvp(problem.loss64, p64, res_vec))[0] - lam * vec))
                   for res_vec, vec, lam in ((jax.tree_util.tree_map(lambda a: a[i], res.eigenvectors), vecs[i],
                                              res.eigenvalues[i]) for i in range(k)))
    values = np.asarray(res.eigenvalues, np.float64)
    assert values.dtype == np.float64
    return Reference(values, np.asarray(vecs[0]), explicit / abs(values[0]), int(res.num_hvps),
                     bool(res.converged))


# ----------------------------------------------------------------------------- solvers


def prefix_top_ritz(alpha: np.ndarray, beta: np.ndarray, steps: int) -> np.ndarray:
    """Top Ritz value after m = 1..steps Lanczos steps: the largest eigenvalue of T[:m, :m]."""
    a, b = np.asarray(alpha, np.float64), np.asarray(beta, np.float64)
    out = np.empty(steps)
    for m in range(1, steps + 1):
        t = np.diag(a[:m]) + np.diag(b[:m - 1], 1) + np.diag(b[:m - 1], -1)
        out[m - 1] = np.linalg.eigvalsh(t)[-1]
    return out


def first_hit(errors: np.ndarray, target: float) -> int | None:
    """1-based index of the first error <= target (HVPs spent), or None."""
    hits = np.flatnonzero(np.asarray(errors) <= target)
    return int(hits[0]) + 1 if hits.size else None


def pyhessian_stop(rayleigh: np.ndarray, tol: float, max_iter: int) -> tuple[int, float]:
    """(HVPs, returned estimate) of PyHessian's ``eigenvalues()`` loop on a Rayleigh-quotient sequence.

    It keeps the previous estimate, breaks when |prev - new| / (|prev| + 1e-6) < tol
    and returns the previous one; after ``max_iter`` products it returns the last.
    """
    eig = rayleigh[0]
    for j in range(1, max_iter):
        if abs(eig - rayleigh[j]) / (abs(eig) + 1e-6) < tol:
            return j + 1, float(eig)
        eig = rayleigh[j]
    return max_iter, float(eig)


class _Budget(Exception):
    pass


class Solvers:
    """Jitted float32 solvers on the linearised Hessian of one loss (compiled once, reused at every point)."""

    def __init__(self, problem: Problem, cfg: Config, default_blas_threads: int | None = None):
        self.cfg = cfg
        self.default_blas_threads = default_blas_threads
        loss, unravel = problem.loss32, problem.unravel
        self.loss, self.dim = loss, problem.dim

        def lanczos(params, v0, steps):
            op = flat_operator(loss, params)
            tri = tridiag_sym(op.matvec, v0, steps)  # tol = 0: run all steps
            return tri.alpha, tri.beta, tri.num_steps

        self.lanczos = jax.jit(lanczos, static_argnums=2)

        def power_trace(params, v0, lam_ref, target, min_iter, max_iter):
            """Rayleigh quotients v_j.H v_j of power iteration until both j >= min_iter and the
            error reached target (or max_iter)."""
            op = flat_operator(loss, params)

            def cond(c):
                j, _, _, hit = c
                return (j < max_iter) & ~(hit & (j >= min_iter))

            def body(c):
                j, v, r, hit = c
                w = op.matvec(v)
                rq = jnp.vdot(v, w)
                hit = hit | (jnp.abs(rq - lam_ref) <= target * jnp.abs(lam_ref))
                return j + 1, w / jnp.linalg.norm(w), r.at[j].set(rq), hit

            init = (jnp.asarray(0), v0 / jnp.linalg.norm(v0), jnp.zeros((max_iter,), v0.dtype), jnp.asarray(False))
            j, _, r, _ = jax.lax.while_loop(cond, body, init)
            return r, j

        self.power_trace = jax.jit(power_trace, static_argnums=(4, 5))

        def power_pyhessian(params, v0):
            """PyHessian's loop, as a user would run it (timed): returns (estimate, HVPs)."""
            op = flat_operator(loss, params)
            tol, max_iter = cfg.power_tol, cfg.power_max_iter

            def cond(c):
                i, _, _, done = c
                return (i < max_iter) & ~done

            def body(c):
                i, v, eig, _ = c
                w = op.matvec(v)
                tmp = jnp.vdot(v, w)
                stop = (i > 0) & (jnp.abs(eig - tmp) / (jnp.abs(eig) + 1e-6) < tol)
                return i + 1, w / jnp.linalg.norm(w), jnp.where(stop, eig, tmp), stop

            init = (jnp.asarray(0), v0 / jnp.linalg.norm(v0), jnp.asarray(0.0, v0.dtype), jnp.asarray(False))
            i, _, eig, _ = jax.lax.while_loop(cond, body, init)
            return eig, i

        self.power_pyhessian = jax.jit(power_pyhessian)

        # eoslab.curvature.flat_operator's matvec, split so that a linearisation can be a jit argument:
        # the linearised map is a jax.tree_util.Partial whose structure is the same at every point.
        self.linearize = jax.jit(lambda params: jax.linearize(jax.grad(loss), params)[1])
        self.apply = jax.jit(lambda lin, v: ravel_pytree(lin(unravel(v)))[0])
        self.grad = jax.jit(jax.grad(loss))
        self.plain_hvp = jax.jit(lambda params, v: hvp(loss, params, v))

    def start(self, key) -> jax.Array:
        """The random start vector top_eigenpairs draws from ``key`` (shared by every cold method)."""
        return jax.random.normal(key, (self.dim,), jnp.float32)

    def eigsh(self, lin, v0: np.ndarray, tol: float) -> tuple[float, int, str]:
        """ARPACK on the float32 product, float64 numpy in and out: (value, matvecs, status)."""
        count = [0]

        def matvec(x):
            count[0] += 1
            if count[0] > self.cfg.eigsh_budget:
                raise _Budget
            y = self.apply(lin, jnp.asarray(np.ravel(x), jnp.float32))
            return np.asarray(y, np.float64)

        op = LinearOperator((self.dim, self.dim), matvec=matvec, dtype=np.float64)
        try:
            values = eigsh(op, k=1, which="LA", tol=tol, v0=v0)[0]
            return float(values[0]), count[0], "converged"
        except ArpackNoConvergence as e:
            value = float(e.eigenvalues[0]) if len(e.eigenvalues) else math.nan
            return value, count[0], "maxiter"
        except _Budget:
            return math.nan, count[0] - 1, f"stopped at {self.cfg.eigsh_budget} matvecs"


def timed(fn: Callable, *args, repeats: int = 1) -> tuple[Any, float]:
    """(output, median wall seconds) of ``fn(*args)`` over ``repeats`` calls, each synchronised."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


# ----------------------------------------------------------------------------- one measurement point


def rel(value: float, lam: float) -> float:
    return abs(float(value) - lam) / abs(lam)


def measure_point(problem: Problem, solvers: Solvers, cfg: Config, t: int) -> dict:
    ref, ref_prev = reference(problem, t, cfg, k=2), reference(problem, t - 1, cfg, k=1)
    lam = float(ref.values[0])
    params = problem.params(t)
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed + 1), t)
    v0 = solvers.start(key)
    reps = cfg.solve_repeats
    rec: dict[str, Any] = dict(t=t, loss=float(problem.losses[t]), lambda1=lam, lambda2=float(ref.values[1]),
                               gap_ratio=float(ref.values[1] / ref.values[0]),
                               two_over_eta=2 / cfg.eta, lambda1_prev=float(ref_prev.values[0]),
                               ref_residual=max(ref.residual, ref_prev.residual),
                               ref_hvps=ref.hvps, ref_converged=ref.converged and ref_prev.converged)

    # 1. cold Lanczos: long run (prefix property) and top_eigenpairs with its own rule
    alpha, beta, m = jax.device_get(solvers.lanczos(params, v0, cfg.cold_steps))
    ritz = prefix_top_ritz(alpha, beta, int(m))
    errs = np.abs(ritz - lam) / abs(lam)
    res, sec = timed(lambda: top_eigenpairs(problem.loss32, params, 1, key=key), repeats=reps)
    own = int(res.num_hvps)
    rec["cold"] = dict(to_target=first_hit(errs, cfg.target), hvps=own, err=rel(res.eigenvalues[0], lam),
                       converged=bool(res.converged), float32_floor=float(errs.min()),
                       prefix_err_at_own_stop=float(errs[own - 1]) if own <= len(errs) else None, seconds=sec)
    # the same solve with a smaller buffer (max_hvps), and with the default BLAS thread pool
    res_small, sec = timed(lambda: top_eigenpairs(problem.loss32, params, 1, key=key, max_hvps=cfg.small_budget),
                           repeats=reps)
    rec["cold_small_buffer"] = dict(hvps=int(res_small.num_hvps), err=rel(res_small.eigenvalues[0], lam),
                                    converged=bool(res_small.converged), seconds=sec)
    with blas_limit(solvers.default_blas_threads):  # slow and erratic on few shared cores: one repeat
        res_blas, sec = timed(lambda: top_eigenpairs(problem.loss32, params, 1, key=key))
    rec["cold_default_blas"] = dict(hvps=int(res_blas.num_hvps), err=rel(res_blas.eigenvalues[0], lam),
                                    converged=bool(res_blas.converged), seconds=sec)

    # 2. warm Lanczos from the converged top eigenvector at theta_{t-1}
    w0 = jnp.asarray(ref_prev.vector, jnp.float32)
    alpha, beta, m = jax.device_get(solvers.lanczos(params, w0, cfg.warm_steps))
    werrs = np.abs(prefix_top_ritz(alpha, beta, int(m)) - lam) / abs(lam)
    tracker = SharpnessTracker(tol=1e-4)  # as strict as the cold solve's default
    state = TrackerState(w0[None], jnp.asarray(ref_prev.values[:1], jnp.float32), jnp.asarray(0, jnp.int32),
                         jax.random.PRNGKey(cfg.seed + 3))
    (res, _), sec = timed(lambda: tracker.update(problem.loss32, params, state), repeats=reps)
    rec["warm"] = dict(to_target=first_hit(werrs, cfg.target), hvps=int(res.num_hvps),
                       err=rel(res.eigenvalues[0], lam), converged=bool(res.converged),
                       rayleigh_err=float(werrs[0]), seconds=sec)
    loose = SharpnessTracker()  # its defaults (tol=1e-3), also the trainer's probes.tol
    (res, _), sec = timed(lambda: loose.update(problem.loss32, params, state), repeats=reps)
    rec["warm_tol1e3"] = dict(hvps=int(res.num_hvps), err=rel(res.eigenvalues[0], lam),
                              converged=bool(res.converged), seconds=sec)

    # 3. power iteration, PyHessian style
    r, j = jax.device_get(solvers.power_trace(params, v0, lam, cfg.target, cfg.power_max_iter, cfg.power_budget))
    r = np.asarray(r[:int(j)], np.float64)
    stop, estimate = pyhessian_stop(r, cfg.power_tol, cfg.power_max_iter)
    (est_t, hvps_t), sec = timed(solvers.power_pyhessian, params, v0, repeats=reps)
    rec["power"] = dict(to_target=first_hit(np.abs(r - lam) / abs(lam), cfg.target), hvps=stop,
                        err=rel(estimate, lam), timed_run_agrees=int(hvps_t) == stop, seconds=sec)

    # 4. ARPACK on the same product
    v0_64 = np.asarray(v0, np.float64)
    rec["eigsh"] = {}
    for tol in cfg.eigsh_tols:
        def run():
            lin = solvers.linearize(params)
            return solvers.eigsh(lin, v0_64, tol)
        (value, mv, status), sec = timed(run, repeats=reps)
        rec["eigsh"][repr(tol)] = dict(hvps=mv, err=rel(value, lam), status=status, seconds=sec)
    hits = [e["hvps"] for e in rec["eigsh"].values() if e["err"] <= cfg.target]
    rec["eigsh_best_to_target"] = min(hits) if hits else None
    return rec


def chained_tracker(problem: Problem, cfg: Config, points: list[int], refs: dict[int, float]) -> dict:
    """SharpnessTracker along the whole run, each update from its own previous vector."""
    tracker = SharpnessTracker(tol=1e-4)
    res, state = tracker.init(problem.loss32, problem.params(0), key=jax.random.PRNGKey(cfg.seed + 2))
    jax.block_until_ready(tracker.update(problem.loss32, problem.params(0), state))  # compile outside the clock
    hvps, errs, seconds = [], [], []
    for t in range(1, cfg.steps + 1):
        (res, state), sec = timed(lambda: tracker.update(problem.loss32, problem.params(t), state))
        hvps.append(int(res.num_hvps))
        seconds.append(sec)
        if t in refs:
            errs.append(rel(res.eigenvalues[0], refs[t]))
    return dict(hvps=hvps, err_at_points=errs,
                expensive_steps=[t + 1 for t, h in enumerate(hvps) if h > cfg.cold_target],
                seconds=statistics.median(seconds))


# ----------------------------------------------------------------------------- HVP vs gradient


def micro_timings(problem: Problem, solvers: Solvers, cfg: Config) -> dict:
    params = problem.params(cfg.steps // 2)
    flat_v = jax.random.normal(jax.random.PRNGKey(cfg.seed + 4), (problem.dim,), jnp.float32)
    v = problem.unravel(flat_v)
    lin = solvers.linearize(params)
    ref = flat_operator(problem.loss32, params).matvec(flat_v)  # eoslab's own matvec, for the check below
    check = float(jnp.linalg.norm(solvers.apply(lin, flat_v) - ref) / jnp.linalg.norm(ref))
    fns = {
        "gradient": (solvers.grad, (params,)),
        "hvp_linearised": (solvers.apply, (lin, flat_v)),
        "hvp_jvp_of_grad": (solvers.plain_hvp, (params, v)),
        "linearisation": (solvers.linearize, (params,)),
    }
    for fn, args in fns.values():
        jax.block_until_ready(fn(*args))
    times = {name: [] for name in fns}
    for _ in range(cfg.micro_repeats):  # interleaved, so load from other processes hits all alike
        for name, (fn, args) in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    # amortised cost of one Lanczos step (HVP + full reorthogonalisation), from the long cold run
    v0 = solvers.start(jax.random.PRNGKey(cfg.seed + 5))
    _, long = timed(solvers.lanczos, params, v0, cfg.cold_steps, repeats=max(3, cfg.solve_repeats))
    med["lanczos_step"] = (long - med["linearisation"]) / cfg.cold_steps
    out = {f"{k}_ms": 1e3 * s for k, s in med.items()}
    out.update({f"{k}_over_gradient": s / med["gradient"] for k, s in med.items() if k != "gradient"})
    out["matvec_matches_flat_operator_rel"] = check
    return out


# ----------------------------------------------------------------------------- report


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _fmt_int(xs: list, budget: int | None = None) -> str:
    vals = [x for x in xs if x is not None]
    missing = len(xs) - len(vals)
    if not vals:
        return f"> {budget}" if budget else "-"
    s = f"{_med(vals):g} ({max(vals)})"
    return s + (f" [{missing} >{budget}]" if missing else "")


def _fmt_err(xs: list) -> str:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return f"{_med(xs):.1e} ({max(xs):.1e})" if xs else "-"


def summarise(records: list[dict], chain: dict, cfg: Config, default_blas: int | None) -> list[dict]:
    col = lambda key, field: [r[key][field] for r in records]  # noqa: E731
    cold_sec = _med(col("cold", "seconds"))
    rows = [
        dict(method="Lanczos cold (top_eigenpairs)", to_target=col("cold", "to_target"), budget=cfg.cold_steps,
             hvps=col("cold", "hvps"), err=col("cold", "err"), seconds=cold_sec),
        dict(method=f"  same, max_hvps={cfg.small_budget}", to_target=[], budget=None,
             hvps=col("cold_small_buffer", "hvps"), err=col("cold_small_buffer", "err"),
             seconds=_med(col("cold_small_buffer", "seconds"))),
        dict(method=f"  same, default BLAS threads ({default_blas})", to_target=[], budget=None,
             hvps=col("cold_default_blas", "hvps"), err=col("cold_default_blas", "err"),
             seconds=_med(col("cold_default_blas", "seconds"))),
        dict(method="Lanczos warm (SharpnessTracker, tol=1e-4)", to_target=col("warm", "to_target"),
             budget=cfg.warm_steps, hvps=col("warm", "hvps"), err=col("warm", "err"),
             seconds=_med(col("warm", "seconds"))),
        dict(method="  same, tol=1e-3 (tracker and trainer default)", to_target=[], budget=None,
             hvps=col("warm_tol1e3", "hvps"), err=col("warm_tol1e3", "err"),
             seconds=_med(col("warm_tol1e3", "seconds"))),
        dict(method="  tracker chained every step", to_target=[], budget=None,
             hvps=chain["hvps"], err=chain["err_at_points"], seconds=chain["seconds"]),
        dict(method="Power iteration (PyHessian)", to_target=col("power", "to_target"), budget=cfg.power_budget,
             hvps=col("power", "hvps"), err=col("power", "err"), seconds=_med(col("power", "seconds"))),
    ]
    best = [r["eigsh_best_to_target"] for r in records]
    for tol in cfg.eigsh_tols:
        e = [r["eigsh"][repr(tol)] for r in records]
        rows.append(dict(method=f"scipy eigsh tol={tol:g}", to_target=best, budget=cfg.eigsh_budget,
                         hvps=[x["hvps"] for x in e], err=[x["err"] for x in e],
                         seconds=_med([x["seconds"] for x in e]),
                         not_converged=sum(x["status"] != "converged" for x in e)))
    for row in rows:
        row["time_ratio"] = row["seconds"] / cold_sec
    return rows


def print_report(problem: Problem, cfg: Config, records: list[dict], chain: dict, rows: list[dict],
                 micro: dict, targets: dict, default_blas: int | None) -> None:
    n = len(records)
    print("=" * 100)
    print("eoslab curvature cost benchmark: HVPs and wall time to the top Hessian eigenvalue")
    print("=" * 100)
    print(f"model      fc-tanh, widths {cfg.widths}, {problem.dim} parameters; loss {cfg.loss} "
          f"(1/2 sum over outputs, mean over examples)")
    print(f"data       digits, {problem.n_train} training examples, full batch; seed {cfg.seed}")
    print(f"precision  float32 solvers and HVPs (JAX default); reference in float64 (float64 model and data)")
    print(f"trajectory GD, eta={cfg.eta} (2/eta={2 / cfg.eta:.3f}), {cfg.steps} steps; {n} measurement points "
          f"t={records[0]['t']}..{records[-1]['t']}")
    print(f"eoslab     {code_version()}")
    print(f"target     relative error |theta - lambda_1| / lambda_1 <= {cfg.target:g}")
    print(f"machine    {platform.machine()}, {jax.devices()[0].platform}, {os.cpu_count()} cores, "
          f"jax {jax.__version__}, scipy {scipy.__version__}; BLAS threads while timing: "
          f"{cfg.blas_threads or 'default'} (default here: {default_blas})")
    print(f"reference  eoslab Lanczos on the float64 Hessian, relative residual <= {cfg.ref_tol:g} requested; "
          f"max explicit relative residual ||H y - theta y||/lambda_1 = "
          f"{max(r['ref_residual'] for r in records):.1e} (bounds its relative error); "
          f"{sum(r['ref_converged'] for r in records)}/{n} converged, median {_med([r['ref_hvps'] for r in records]):g} HVPs")
    print()
    print("Per point. cold: HVPs to 1e-4 (prefix property), top_eigenpairs' HVPs and error at its own stop;")
    print("warm: HVPs to 1e-4 from the converged v_1(t-1), SharpnessTracker.update's HVPs and error; pow: power")
    print("iteration's HVPs to 1e-4, PyHessian's stop and error; eigsh: matvecs and error per tol.")
    head = (f"{'t':>4} {'loss':>7} {'lam1':>7} {'lam2/1':>6} | {'cold':>4} {'own':>3} {'err':>7} | "
            f"{'warm':>4} {'trk':>3} {'err':>7} | {'pow':>4} {'own':>3} {'err':>7} | "
            + " | ".join(f"eigsh {tol:g}".rjust(13) for tol in cfg.eigsh_tols))
    print(head)
    print("-" * len(head))
    for r in records:
        pw = r["power"]["to_target"]
        eig = " | ".join(f"{e['hvps']:>4} {e['err']:.1e}" + ("*" if e["status"] != "converged" else " ")
                         for e in r["eigsh"].values())
        print(f"{r['t']:>4} {r['loss']:>7.4f} {r['lambda1']:>7.4f} {r['gap_ratio']:>6.4f} | "
              f"{r['cold']['to_target'] or '>' + str(cfg.cold_steps):>4} {r['cold']['hvps']:>3} "
              f"{r['cold']['err']:>7.1e} | {r['warm']['to_target'] or '>' + str(cfg.warm_steps):>4} "
              f"{r['warm']['hvps']:>3} {r['warm']['err']:>7.1e} | {pw if pw else '>' + str(cfg.power_budget):>4} "
              f"{r['power']['hvps']:>3} {r['power']['err']:>7.1e} | {eig}")
    if any(e["status"] != "converged" for r in records for e in r["eigsh"].values()):
        print(f"(* eigsh did not converge: ARPACK maxiter, or abandoned after {cfg.eigsh_budget} matvecs)")
    gaps = [r["gap_ratio"] for r in records]
    print(f"gap lambda_2/lambda_1: min {min(gaps):.4f}, median {_med(gaps):.4f}, max {max(gaps):.4f}; "
          f"lambda_1 from {min(r['lambda1'] for r in records):.3f} to {max(r['lambda1'] for r in records):.3f}")
    print()
    print("Side by side, median (max) over the measurement points:")
    head = f"{'method':<40} {'HVPs to 1e-4':>14} {'HVPs at own stop':>17} {'rel.err at own stop':>20} {'wall ms':>8} {'vs cold':>7}"
    print(head)
    print("-" * len(head))
    for row in rows:
        to = _fmt_int(row["to_target"], row["budget"]) if row["to_target"] else "-"
        print(f"{row['method']:<40} {to:>14} {_fmt_int(row['hvps']):>17} {_fmt_err(row['err']):>20} "
              f"{1e3 * row['seconds']:>8.2f} {row['time_ratio']:>6.2f}x")
    print(f"HVP counts leave out the one linearisation (~1 gradient) every method pays; wall times include it.")
    print(f"eigsh 'HVPs to 1e-4' is the fewest matvecs of the tols tried that reached it (ARPACK cannot be")
    print(f"stopped part way). Warm rows start from the converged top eigenvector at theta_(t-1); the chained")
    print(f"tracker runs all {cfg.steps} steps from its own previous vectors (HVPs over all updates, errors at "
          f"the points; updates spending > {cfg.cold_target:g} HVPs at steps {chain['expensive_steps'] or 'none'}).")
    cold = records
    print(f"cold float32 floor (best error over {cfg.cold_steps} Lanczos steps): median "
          f"{_med([r['cold']['float32_floor'] for r in cold]):.1e}, max {max(r['cold']['float32_floor'] for r in cold):.1e}; "
          f"converged by their own rule: top_eigenpairs {sum(r['cold']['converged'] for r in cold)}/{n}, "
          f"tracker {sum(r['warm']['converged'] for r in records)}/{n}")
    agree = [abs(r["cold"]["err"] - r["cold"]["prefix_err_at_own_stop"]) for r in cold
             if r["cold"]["prefix_err_at_own_stop"] is not None]
    print(f"checks: top_eigenpairs' value vs the long run's prefix Ritz value at the same step: max |diff| "
          f"{max(agree):.1e} (relative); PyHessian timed loop stops where the recorded sequence says at "
          f"{sum(r['power']['timed_run_agrees'] for r in records)}/{n} points; linearised matvec vs "
          f"flat_operator: {micro['matvec_matches_flat_operator_rel']:.1e}")
    print()
    print("Wall time of one product (jitted, median of "
          f"{cfg.micro_repeats} interleaved repeats, ratio to one gradient):")
    labels = {"gradient": "gradient (jax.grad)",
              "hvp_linearised": "HVP, linearised operator (eoslab flat_operator matvec)",
              "hvp_jvp_of_grad": "HVP, jvp of grad (eoslab.curvature.hvp)",
              "linearisation": "linearisation, once per solve (jax.linearize of grad)",
              "lanczos_step": f"Lanczos step incl. reorthogonalisation ({cfg.cold_steps}-row buffer)"}
    for name, label in labels.items():
        ratio = 1.0 if name == "gradient" else micro[name + "_over_gradient"]
        print(f"  {label:<64} {micro[name + '_ms']:7.3f} ms  {ratio:5.2f}x")
    print()
    print("Targets:")
    for t in targets.values():
        print(f"  [{'met' if t['met'] else 'NOT met'}] {t['what']}: {t['value']}")


def evaluate_targets(records: list[dict], micro: dict, cfg: Config) -> dict:
    cold = [r["cold"]["to_target"] for r in records]
    warm = [r["warm"]["to_target"] for r in records]
    worst = lambda xs, b: max(x if x is not None else b + 1 for x in xs)  # noqa: E731
    cold_med = statistics.median(x if x is not None else cfg.cold_steps + 1 for x in cold)
    warm_med = statistics.median(x if x is not None else cfg.warm_steps + 1 for x in warm)
    cold_own = [r["cold"]["hvps"] for r in records]
    warm_own = [r["warm_tol1e3"]["hvps"] for r in records]
    hvp = micro["hvp_linearised_over_gradient"]
    plain = micro["hvp_jvp_of_grad_over_gradient"]
    return {
        "cold": dict(what=f"cold Lanczos HVPs to {cfg.target:g} <= {cfg.cold_target:g}",
                     value=f"median {cold_med:g}, max {worst(cold, cfg.cold_steps)}, "
                           f"within target at {sum(x is not None and x <= cfg.cold_target for x in cold)}/{len(cold)} points",
                     met=cold_med <= cfg.cold_target, median=cold_med),
        "cold_own_rule": dict(what=f"cold, HVPs top_eigenpairs spends by its own rule <= {cfg.cold_target:g}",
                              value=f"median {statistics.median(cold_own):g}, max {max(cold_own)}",
                              met=statistics.median(cold_own) <= cfg.cold_target,
                              median=statistics.median(cold_own)),
        "warm": dict(what=f"warm Lanczos median HVPs to {cfg.target:g} <= {cfg.warm_target:g}",
                     value=f"median {warm_med:g}, max {worst(warm, cfg.warm_steps)}",
                     met=warm_med <= cfg.warm_target, median=warm_med),
        "warm_own_rule": dict(what=f"warm, median HVPs SharpnessTracker.update (default tol=1e-3) spends by its own rule <= {cfg.warm_target:g}",
                              value=f"median {statistics.median(warm_own):g}, max {max(warm_own)}",
                              met=statistics.median(warm_own) <= cfg.warm_target,
                              median=statistics.median(warm_own)),
        "hvp": dict(what=f"HVP <= {cfg.hvp_target:g} x gradient",
                    value=f"linearised {hvp:.2f}x, jvp-of-grad {plain:.2f}x",
                    met=hvp <= cfg.hvp_target, ratio=hvp),
    }


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(x) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 measurement points and fewer timing repeats")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--seed", type=int, default=0, help="seed of the init and start vectors (default 0)")
    args = parser.parse_args(argv)
    cfg = dataclasses.replace(Config.quick() if args.quick else Config(), seed=args.seed)

    t_start = time.perf_counter()
    default_blas = blas_threads()
    with blas_limit(cfg.blas_threads):
        problem = build_problem(cfg)
        solvers = Solvers(problem, cfg, default_blas)
        points = measurement_points(cfg)
        measure_point(problem, solvers, cfg, points[0])  # compile everything outside the clocks; discarded
        records = []
        for t in points:
            records.append(measure_point(problem, solvers, cfg, t))
            print(f"  point t={t} done ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr, flush=True)
        chain = chained_tracker(problem, cfg, points, {r["t"]: r["lambda1"] for r in records})
        micro = micro_timings(problem, solvers, cfg)
    rows = summarise(records, chain, cfg, default_blas)
    targets = evaluate_targets(records, micro, cfg)
    print_report(problem, cfg, records, chain, rows, micro, targets, default_blas)
    elapsed = time.perf_counter() - t_start
    print(f"\n(total {elapsed:.0f} s)")

    if args.json:
        out = dict(
            benchmark="curvature_cost",
            conditions=dict(model="fc-tanh", widths=list(cfg.widths), num_params=problem.dim, dataset="digits",
                            n_train=problem.n_train, loss=cfg.loss, dtype="float32", reference_dtype="float64",
                            eta=cfg.eta, steps=cfg.steps, jax=jax.__version__, scipy=scipy.__version__,
                            platform=jax.devices()[0].platform, machine=platform.machine(),
                            cpu_count=os.cpu_count(), eoslab=code_version(), blas_threads_timing=cfg.blas_threads,
                            blas_threads_default=default_blas),
            config=dataclasses.asdict(cfg),
            targets=targets,
            hvp_timing=micro,
            methods=[{k: v for k, v in row.items()} for row in rows],
            chained_tracker=chain,
            points=records,
            seconds=elapsed,
        )
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_jsonable(out), indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
