"""Cost and accuracy of the top Hessian eigenvalue: eoslab cold and warm vs power iteration vs ARPACK.

Measured side by side in one run, on an fc-tanh MLP (9,610 parameters) on
digits, MSE, trained by full-batch gradient descent with eta = 0.3 towards the
edge of stability (2/eta = 6.67; the relative top gap (lambda_1 - lambda_2) /
lambda_1 stays within a few percent along the run).  At every measurement
point t and for every seed (a fresh random start vector, shared by all cold
methods):

1. eoslab cold: ``top_eigenpairs(k=1, tol=...)`` from a random start, at
   tol 1e-3 and 1e-4.  ``tol`` is eigenvalue accuracy: the solve stops when its
   error estimate (``EigenResult.errors``: r^2/gap where the Ritz gap is
   resolved, else the residual r) is <= tol * |lambda|.  Printed: HVPs spent,
   the relative error reached against the truth, the reported estimate
   (``errors / |lambda|``), the rigorous residual, and ``converged``.  Beside
   it, from one long Lanczos run from the same start vector, the HVPs after
   which the top Ritz value first is within 1e-4 of the truth (the Lanczos
   prefix property): what an oracle stopping rule would spend.
2. eoslab warm: ``SharpnessTracker(tol=...)`` chained along the whole GD run
   (``init`` at theta_0, then ``update(..., refresh=False)`` at every step, the
   trainer's hot path) at tol 1e-3 and 1e-4: HVPs per step (median, mean, max),
   the relative error at the measurement points, and how many updates were
   not converged.
3. power iteration as PyHessian does it (random start, v <- Hv/|Hv|, estimate
   v.Hv, stop when the relative change is < 1e-3, at most 100 iterations; it
   returns the estimate *before* the last product): HVPs and error at its own
   stop, and the HVPs after which its estimate first is within 1e-4 (followed
   up to ``power_budget`` products; timed with that oracle stop).
4. ``scipy.sparse.linalg.eigsh(k=1, which="LA")`` (ARPACK) on the same product
   wrapped in a float64 ``LinearOperator``, at scipy's default tol (0: machine
   precision) and at tol=1e-4, counting matvecs.
5. ratios at comparable accuracy (HVPs and wall time), and the targets of
   issue 12: 1e-4 relative in <= 20 HVPs cold at every seed, at the points
   whose top gap is >= 4% (the target's setting) and at every point, and a
   median <= 5 HVPs per warm step at tol 1e-4.

**Truth.**  Float64 model and data at the same (float32) parameters.  At every
point, eoslab's Lanczos in float64 (k = 2, tol 1e-12) with its residual
re-checked by an explicit float64 HVP (some eigenvalue lies within it).  At a
few points (``dense_points``; the smallest gap and the last point first) the
dense float64 Hessian (HVPs over the identity in chunks, 9,610 x 9,610) checks
that value independently: its Rayleigh quotient at the Lanczos vector is a
lower bound on lambda_1, and a successful Cholesky factorisation of
sigma I - H with sigma = theta (1 + delta) proves that no eigenvalue lies above
sigma, so lambda_1 is bracketed by the dense matrix alone (a Lanczos run that
missed the top eigenvalue would fail this).  The bracket costs one Cholesky
(about 15 s here); a full ``scipy.linalg.eigh(H, subset_by_index=...)`` of the
9,610 x 9,610 matrix took about 4 minutes per point on the 2 shared cores this
was written on (building H about 2.5 minutes), so it is opt-in
(``--dense-eigh``), and then its top eigenvalues are printed beside the
Lanczos ones.

Every solver works in float32 (JAX's default, what users run) on the same
linearised operator (the computation of ``eoslab.curvature.flat_operator``), so
HVP counts and wall times compare the algorithms, not the products; each pays
one linearisation (about one gradient) that the HVP counts leave out and the
wall times include.  Timings run with the BLAS/LAPACK thread pool limited to
one thread (threadpoolctl): the small eigenproblems inside Lanczos call
LAPACK, and a multi-threaded OpenBLAS fighting XLA's threads for a few shared
cores makes those calls slow and erratic.  Every timed function is compiled
before the clock starts (one untimed round at the first point).

    cd /work/main && .venv/bin/python benchmarks/curvature_cost.py [--quick] [--json PATH]
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable

from _common import benchmark_parser, code_version, write_json

import jax

jax.config.update("jax_enable_x64", True)  # for the float64 truth only; the solvers stay float32

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.linalg  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402
from scipy.linalg import lapack  # noqa: E402
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh  # noqa: E402

from eoslab.curvature import SharpnessTracker, flat_operator, hvp, top_eigenpairs  # noqa: E402
from eoslab.curvature.block_lanczos import block_lanczos  # noqa: E402
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
        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(n, user_api="blas")


@dataclasses.dataclass(frozen=True)
class Config:
    widths: tuple[int, ...] = (128,)
    loss: str = "mse"
    seed: int = 0
    eta: float = 0.3  # 2/eta = 6.67; the sharpness starts near 5.5 and reaches it within ~150 steps
    steps: int = 300
    points: int = 10  # measurement points t, evenly spaced in 1..steps
    seeds: int = 5  # random start vectors per point (cold methods)
    tols: tuple[float, ...] = (1e-3, 1e-4)  # eoslab tol (eigenvalue accuracy), cold and warm
    target: float = 1e-4  # relative eigenvalue error of the targets
    cold_target: int = 20  # cold: 1e-4 in <= 20 HVPs, every seed and point
    target_gap: float = 0.04  # the target's setting: a top gap (lambda_1 - lambda_2)/lambda_1 of 4% (and above)
    warm_target: float = 5  # warm: median <= 5 HVPs per step at tol 1e-4
    ref_tol: float = 1e-12  # float64 Lanczos truth
    ref_max_hvps: int = 400
    dense_points: int = 2  # points with a dense float64 Hessian check
    dense_chunk: int = 128  # HVPs per vmapped batch when building the dense Hessian
    dense_deltas: tuple[float, ...] = (1e-9, 1e-6, 1e-3)  # Cholesky of theta (1 + delta) I - H, first success
    dense_eigh: bool = False  # also scipy.linalg.eigh of the dense Hessian (about 4 minutes per point here)
    oracle_steps: int = 60  # length of the long cold Lanczos run (prefix property)
    power_tol: float = 1e-3  # PyHessian's default
    power_max_iter: int = 100  # PyHessian's default
    power_budget: int = 1000  # how far power iteration is followed to see it reach `target`
    eigsh_tols: tuple[float, ...] = (0.0, 1e-4)  # 0 is scipy's default (machine precision)
    eigsh_budget: int = 2000  # matvecs after which an eigsh run is abandoned
    blas_threads: int | None = 1  # BLAS pool size while timing (None: leave as it is)
    micro_repeats: int = 100  # timed repeats of gradient / HVP / linearisation (interleaved)
    small_buffer: int = 30  # max_hvps of an extra cold row at the target tol: same HVPs, smaller Lanczos buffer

    @staticmethod
    def quick() -> "Config":
        return Config(points=4, dense_points=1, power_budget=600, micro_repeats=30)


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


def rel(value: float, lam: float) -> float:
    return abs(float(value) - lam) / abs(lam)


# ----------------------------------------------------------------------------- truth


def lanczos_truth(problem: Problem, t: int, cfg: Config) -> dict:
    """Float64 eoslab Lanczos (k = 2, tol ref_tol) with the residuals re-checked by explicit float64 HVPs."""
    p64 = problem.params64(t)
    res = top_eigenpairs(problem.loss64, p64, 2, tol=cfg.ref_tol, max_hvps=cfg.ref_max_hvps,
                         key=jax.random.PRNGKey(10_000 + t))
    values = np.asarray(res.eigenvalues, np.float64)
    assert values.dtype == np.float64
    residuals = []
    for i in range(2):
        y = jax.tree_util.tree_map(lambda a: a[i], res.eigenvectors)
        hy = ravel_pytree(hvp(problem.loss64, p64, y))[0]
        residuals.append(float(jnp.linalg.norm(hy - values[i] * ravel_pytree(y)[0])))
    lam1, lam2 = float(values[0]), float(values[1])
    gap = lam1 - lam2
    return dict(t=t, lambda1=lam1, lambda2=lam2, rel_gap=gap / lam1, hvps=int(res.num_hvps),
                converged=bool(res.converged), residual_rel=residuals[0] / abs(lam1),
                residual2_rel=residuals[1] / abs(lam1),
                # Kato-Temple style: with the rest of the spectrum >= gap - r2 away, the error is <= r^2 / that
                error_bound_rel=min(residuals[0], residuals[0] ** 2 / max(gap - residuals[1], 1e-300)) / abs(lam1),
                vector=np.asarray(ravel_pytree(jax.tree_util.tree_map(lambda a: a[0], res.eigenvectors))[0]))


def dense_hessian(problem: Problem, t: int, chunk: int) -> np.ndarray:
    """The float64 Hessian at theta_t as a dense (dim, dim) array: linearised HVPs over the identity."""
    flat, unravel64 = ravel_pytree(problem.params64(t))
    n = flat.shape[0]
    lin = jax.linearize(jax.grad(lambda f: problem.loss64(unravel64(f))), flat)[1]
    batch = jax.jit(jax.vmap(lin))
    h = np.empty((n, n), np.float64)
    for i in range(0, n, chunk):
        cols = np.asarray(batch(jnp.eye(min(chunk, n - i), n, i, dtype=jnp.float64)))  # rows: H e_j
        h[i:i + cols.shape[0]] = cols
    return h


def dense_check(problem: Problem, truth: dict, cfg: Config) -> dict:
    """Bracket lambda_1 with the dense float64 Hessian: y.H.y <= lambda_1 < theta (1 + delta) (Cholesky)."""
    t0 = time.perf_counter()
    h = dense_hessian(problem, truth["t"], cfg.dense_chunk)
    build = time.perf_counter() - t0
    asym = float(np.linalg.norm(h - h.T) / np.linalg.norm(h))
    h = (h + h.T) / 2
    n = h.shape[0]
    theta, y = truth["lambda1"], truth["vector"]
    hy = h @ y
    rq = float(y @ hy / (y @ y))
    out = dict(t=truth["t"], build_seconds=build, asymmetry_rel=asym, rayleigh=rq,
               rayleigh_minus_theta_rel=(rq - theta) / abs(theta),
               dense_residual_rel=float(np.linalg.norm(hy - theta * y)) / abs(theta),
               upper=None, delta=None, cholesky_seconds=0.0)
    for delta in cfg.dense_deltas:  # first shift at which sigma I - H is positive definite
        sigma = theta + delta * abs(theta)
        t0 = time.perf_counter()
        _, info = lapack.dpotrf(sigma * np.eye(n) - h, lower=True, overwrite_a=True, clean=False)
        out["cholesky_seconds"] += time.perf_counter() - t0
        if info == 0:
            out.update(upper=sigma, delta=delta)
            break
    # lambda_1 lies in [rq, upper]; the Lanczos value theta is that close to it
    out["bracket_rel"] = None if out["upper"] is None else (out["upper"] - rq) / abs(theta)
    out["theta_in_bracket"] = out["upper"] is not None and rq - 1e-12 * abs(theta) <= theta <= out["upper"]
    if cfg.dense_eigh:
        t0 = time.perf_counter()
        top = scipy.linalg.eigh(h, subset_by_index=[n - 3, n - 1], eigvals_only=True, overwrite_a=True,
                                check_finite=False)[::-1]
        out.update(eigh_top=[float(v) for v in top], eigh_seconds=time.perf_counter() - t0,
                   eigh_minus_theta_rel=(float(top[0]) - theta) / abs(theta),
                   eigh_lambda2_minus_lanczos_rel=(float(top[1]) - truth["lambda2"]) / abs(theta))
    return out


def dense_choice(truths: list[dict], count: int) -> list[int]:
    """Points for the dense check: the smallest gap, the last point, then the others from the end."""
    order = [min(truths, key=lambda r: r["rel_gap"])["t"]] + [r["t"] for r in reversed(truths)]
    picked: list[int] = []
    for t in order:
        if t not in picked:
            picked.append(t)
    return sorted(picked[:count])


# ----------------------------------------------------------------------------- solvers


class _Budget(Exception):
    pass


def pyhessian_stop(rayleigh: np.ndarray, tol: float, max_iter: int) -> tuple[int, float]:
    """(HVPs, returned estimate) of PyHessian's ``eigenvalues()`` loop on a Rayleigh-quotient sequence.

    It keeps the previous estimate, breaks when |prev - new| / (|prev| + 1e-6) < tol
    and returns the previous one; after ``max_iter`` products it returns the last.
    """
    eig = rayleigh[0]
    for j in range(1, min(max_iter, len(rayleigh))):
        if abs(eig - rayleigh[j]) / (abs(eig) + 1e-6) < tol:
            return j + 1, float(eig)
        eig = rayleigh[j]
    return min(max_iter, len(rayleigh)), float(eig)


def prefix_top_ritz(t_full: np.ndarray, steps: int) -> np.ndarray:
    """Top Ritz value after m = 1..steps Lanczos steps: the largest eigenvalue of T[:m, :m]."""
    t = np.asarray(t_full, np.float64)
    t = (t + t.T) / 2
    return np.array([np.linalg.eigvalsh(t[:m, :m])[-1] for m in range(1, steps + 1)])


def first_hit(errors: np.ndarray, target: float) -> int | None:
    """1-based index of the first error <= target (HVPs spent), or None."""
    hits = np.flatnonzero(np.asarray(errors) <= target)
    return int(hits[0]) + 1 if hits.size else None


class Solvers:
    """Jitted float32 solvers on the linearised Hessian of one loss (compiled once, reused at every point)."""

    def __init__(self, problem: Problem, cfg: Config):
        self.cfg = cfg
        loss, unravel = problem.loss32, problem.unravel
        self.loss, self.dim = loss, problem.dim

        def long_lanczos(params, v0, steps):
            """Lanczos without a stopping test (tol = 0): T_m = Q^T A Q for the prefix property."""
            op = flat_operator(loss, params)
            kr = block_lanczos(op.matvec, v0[None], steps)
            return kr.coeffs[:steps, :steps], kr.num_steps

        self.long_lanczos = jax.jit(long_lanczos, static_argnums=2)

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

    def start(self, key) -> jax.Array:
        """The random start vector ``top_eigenpairs(k=1, key=key)`` draws (shared by every cold method)."""
        _, sub = jax.random.split(key)
        block_key, _ = jax.random.split(sub)
        return jax.random.normal(block_key, (1, self.dim), jnp.float32)[0]

    def eigsh(self, params, v0: np.ndarray, tol: float) -> tuple[float, int, str]:
        """ARPACK on the float32 product, float64 numpy in and out: (value, matvecs, status)."""
        lin = self.linearize(params)
        count = [0]

        def matvec(x):
            count[0] += 1
            if count[0] > self.cfg.eigsh_budget:
                raise _Budget
            return np.asarray(self.apply(lin, jnp.asarray(np.ravel(x), jnp.float32)), np.float64)

        op = LinearOperator((self.dim, self.dim), matvec=matvec, dtype=np.float64)
        try:
            values = eigsh(op, k=1, which="LA", tol=tol, v0=v0)[0]
            return float(values[0]), count[0], "converged"
        except ArpackNoConvergence as e:
            value = float(e.eigenvalues[0]) if len(e.eigenvalues) else math.nan
            return value, count[0], "maxiter"
        except _Budget:
            return math.nan, count[0] - 1, f"abandoned at {self.cfg.eigsh_budget} matvecs"


def timed(fn: Callable, *args) -> tuple[Any, float]:
    """(output, wall seconds) of one synchronised call ``fn(*args)``."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


# ----------------------------------------------------------------------------- cold solves at one point


def measure_cold(problem: Problem, solvers: Solvers, cfg: Config, t: int, lam: float, gap: float,
                 seed: int) -> dict:
    """Every cold method from the same random start at theta_t; errors against the float64 truth lam."""
    params = problem.params(t)
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed + 1), 1000 * t + seed)
    v0 = solvers.start(key)
    rec: dict[str, Any] = dict(t=t, seed=seed, rel_gap=gap)

    for tol in cfg.tols:
        res, sec = timed(lambda: top_eigenpairs(problem.loss32, params, 1, tol=tol, key=key))
        rec[f"eoslab_{tol:g}"] = dict(hvps=int(res.num_hvps), err=rel(res.eigenvalues[0], lam),
                                      estimate=float(res.errors[0]) / abs(lam),
                                      residual=float(res.residuals[0]) / abs(lam),
                                      converged=bool(res.converged), value=float(res.eigenvalues[0]), seconds=sec)

    # the same solve with a smaller buffer (max_hvps): the same products, less work per step
    res, sec = timed(lambda: top_eigenpairs(problem.loss32, params, 1, tol=cfg.target, key=key,
                                            max_hvps=cfg.small_buffer))
    rec["eoslab_small_buffer"] = dict(hvps=int(res.num_hvps), err=rel(res.eigenvalues[0], lam),
                                      estimate=float(res.errors[0]) / abs(lam), converged=bool(res.converged),
                                      seconds=sec)

    # the same Krylov space, run on: HVPs after which the top Ritz value first is within target
    tm, m = jax.device_get(solvers.long_lanczos(params, v0, cfg.oracle_steps))
    errs = np.abs(prefix_top_ritz(tm, int(m)) - lam) / abs(lam)
    own = rec[f"eoslab_{cfg.target:g}"]
    rec["oracle"] = dict(hvps=first_hit(errs, cfg.target), float32_floor=float(errs.min()),
                         same_space=(abs(float(errs[own["hvps"] - 1]) - own["err"])
                                     if own["hvps"] <= len(errs) else None))

    # power iteration: the recorded sequence (at least PyHessian's 100 products) and two timed runs
    r, j = jax.device_get(solvers.power_trace(params, v0, lam, cfg.target, cfg.power_max_iter, cfg.power_budget))
    r = np.asarray(r[:int(j)], np.float64)
    stop, estimate = pyhessian_stop(r, cfg.power_tol, cfg.power_max_iter)
    (est_t, hvps_t), sec = timed(solvers.power_pyhessian, params, v0)
    rec["power_pyhessian"] = dict(hvps=stop, err=rel(estimate, lam), seconds=sec, timed_hvps=int(hvps_t))
    to_target = first_hit(np.abs(r - lam) / abs(lam), cfg.target)
    (_, j_t), sec = timed(solvers.power_trace, params, v0, lam, cfg.target, 1, cfg.power_budget)
    rec["power_to_target"] = dict(hvps=to_target, err=rel(r[to_target - 1], lam) if to_target else math.nan,
                                  seconds=sec if to_target else math.nan,
                                  timed_hvps=int(j_t) if to_target else None)

    v0_64 = np.asarray(v0, np.float64)
    for tol in cfg.eigsh_tols:
        (value, mv, status), sec = timed(solvers.eigsh, params, v0_64, tol)
        rec[f"eigsh_{tol:g}"] = dict(hvps=mv, err=rel(value, lam), status=status, seconds=sec,
                                     converged=status == "converged")
    return rec


# ----------------------------------------------------------------------------- warm tracker


def chained_tracker(problem: Problem, cfg: Config, tol: float, truth: dict[int, float]) -> dict:
    """SharpnessTracker(tol) along the whole run: init at theta_0, update(refresh=False) at every step."""
    tracker = SharpnessTracker(tol=tol)
    _, state = tracker.init(problem.loss32, problem.params(0), key=jax.random.PRNGKey(cfg.seed + 2))
    jax.block_until_ready(tracker.update(problem.loss32, problem.params(0), state))  # compile outside the clock
    hvps, conv, suspect, seconds, at_points = [], [], [], [], []
    for t in range(1, cfg.steps + 1):
        (res, state), sec = timed(lambda: tracker.update(problem.loss32, problem.params(t), state))
        hvps.append(int(res.num_hvps))
        conv.append(bool(res.converged))
        suspect.append(bool(state.suspect))
        seconds.append(sec)
        if t in truth:
            lam = truth[t]
            at_points.append(dict(t=t, err=rel(res.eigenvalues[0], lam), estimate=float(res.errors[0]) / abs(lam),
                                  converged=bool(res.converged), hvps=int(res.num_hvps)))
    return dict(tol=tol, max_hvps=tracker.max_hvps, hvps=hvps, converged=conv, suspect=suspect,
                at_points=at_points, seconds=seconds, unconverged=sum(not c for c in conv),
                unconverged_steps=[t + 1 for t, c in enumerate(conv) if not c],
                at_budget=sum(h >= tracker.max_hvps for h in hvps),
                first_suspect=next((t + 1 for t, s in enumerate(suspect) if s), None))


# ----------------------------------------------------------------------------- HVP vs gradient


def micro_timings(problem: Problem, solvers: Solvers, cfg: Config) -> dict:
    params = problem.params(cfg.steps // 2)
    flat_v = jax.random.normal(jax.random.PRNGKey(cfg.seed + 4), (problem.dim,), jnp.float32)
    lin = solvers.linearize(params)
    ref = flat_operator(problem.loss32, params).matvec(flat_v)  # eoslab's own matvec, for the check below
    check = float(jnp.linalg.norm(solvers.apply(lin, flat_v) - ref) / jnp.linalg.norm(ref))
    fns = {"gradient": (solvers.grad, (params,)), "hvp": (solvers.apply, (lin, flat_v)),
           "linearisation": (solvers.linearize, (params,))}
    for fn, args in fns.values():
        jax.block_until_ready(fn(*args))
    times = {name: [] for name in fns}
    for _ in range(cfg.micro_repeats):  # interleaved, so load from other processes hits all alike
        for name, (fn, args) in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    out = {f"{k}_ms": 1e3 * s for k, s in med.items()}
    out.update({f"{k}_over_gradient": s / med["gradient"] for k, s in med.items() if k != "gradient"})
    out["matvec_matches_flat_operator_rel"] = check
    return out


# ----------------------------------------------------------------------------- summary


def _clean(xs) -> list:
    return [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]


def _med(xs):
    xs = _clean(xs)
    return statistics.median(xs) if xs else None


def summarise(cold: list[dict], chains: list[dict], cfg: Config) -> dict:
    """One row per method: HVPs (median, mean, max), errors, estimates, converged, wall time."""
    def row(name, key, kind="cold"):
        recs = [c[key] for c in cold]
        hv = [r["hvps"] for r in recs]
        return dict(method=name, kind=kind, n=len(recs), hvps=hv, hvps_missing=sum(h is None for h in hv),
                    err=[r["err"] for r in recs], estimate=[r.get("estimate") for r in recs],
                    converged=[r.get("converged") for r in recs], seconds=[r.get("seconds") for r in recs])

    rows = {}
    for tol in cfg.tols:
        rows[f"eoslab_{tol:g}"] = row(f"eoslab cold, tol={tol:g}", f"eoslab_{tol:g}")
    rows["small_buffer"] = row(f"  same, max_hvps={cfg.small_buffer} (default 100)", "eoslab_small_buffer")
    oracle = [c["oracle"]["hvps"] for c in cold]
    rows["oracle"] = dict(method=f"  Lanczos, first within {cfg.target:g} (oracle stop)", kind="cold", n=len(cold),
                          hvps=oracle, hvps_missing=sum(h is None for h in oracle), err=[], estimate=[],
                          converged=[], seconds=[])
    for ch in chains:
        pts = ch["at_points"]
        rows[f"warm_{ch['tol']:g}"] = dict(
            method=f"eoslab warm, tol={ch['tol']:g} (per step)", kind="warm", n=len(ch["hvps"]), hvps=ch["hvps"],
            hvps_missing=0, err=[p["err"] for p in pts], estimate=[p["estimate"] for p in pts],
            converged=ch["converged"], seconds=ch["seconds"])
    rows["power_pyhessian"] = row(f"power iteration, PyHessian stop ({cfg.power_tol:g})", "power_pyhessian")
    rows["power_to_target"] = row(f"power iteration, to {cfg.target:g} (oracle stop)", "power_to_target")
    for tol in cfg.eigsh_tols:
        label = "scipy eigsh, tol=0 (default)" if tol == 0 else f"scipy eigsh, tol={tol:g}"
        rows[f"eigsh_{tol:g}"] = row(label, f"eigsh_{tol:g}")
    for r in rows.values():
        hv = _clean(r["hvps"])
        r.update(hvps_median=_med(hv), hvps_mean=statistics.fmean(hv) if hv else None, hvps_max=max(hv) if hv else None,
                 err_median=_med(r["err"]), err_max=max(_clean(r["err"])) if _clean(r["err"]) else None,
                 estimate_median=_med(r["estimate"]), seconds_median=_med(r["seconds"]),
                 n_converged=sum(bool(c) for c in r["converged"] if c is not None),
                 n_flag=len([c for c in r["converged"] if c is not None]))
    return rows


def ratios(rows: dict, cfg: Config) -> list[dict]:
    """Other method / eoslab at comparable accuracy: HVPs (medians) and wall time (medians)."""
    lo, hi = f"eoslab_{max(cfg.tols):g}", f"eoslab_{min(cfg.tols):g}"
    pairs = [
        ("power_pyhessian", lo, "PyHessian power (own stop) / eoslab cold tol=1e-3"),
        ("power_to_target", hi, "power to 1e-4 (oracle stop) / eoslab cold tol=1e-4"),
        (f"eigsh_{1e-4:g}", hi, "eigsh tol=1e-4 / eoslab cold tol=1e-4"),
        (f"eigsh_{0.0:g}", hi, "eigsh default tol / eoslab cold tol=1e-4"),
        (hi, f"warm_{min(cfg.tols):g}", "eoslab cold tol=1e-4 / warm tol=1e-4 per step"),
        (lo, f"warm_{max(cfg.tols):g}", "eoslab cold tol=1e-3 / warm tol=1e-3 per step"),
        (hi, "small_buffer", f"eoslab cold tol=1e-4, max_hvps=100 / ={cfg.small_buffer}"),
    ]
    out = []
    for num, den, label in pairs:
        if num not in rows or den not in rows:
            continue
        a, b = rows[num], rows[den]
        div = lambda x, y: x / y if x is not None and y else None  # noqa: E731
        out.append(dict(label=label, hvps=div(a["hvps_median"], b["hvps_median"]),
                        seconds=div(a["seconds_median"], b["seconds_median"]),
                        err_num=a["err_median"], err_den=b["err_median"],
                        missing=a["hvps_missing"]))
    return out


def evaluate_targets(rows: dict, cold: list[dict], cfg: Config) -> dict:
    key = f"eoslab_{cfg.target:g}"
    recs = [c[key] for c in cold]
    within = [r["hvps"] <= cfg.cold_target and r["err"] <= cfg.target for r in recs]
    seeds_ok = {}
    for c, ok in zip(cold, within):
        seeds_ok[c["seed"]] = seeds_ok.get(c["seed"], True) and ok
    warm = rows.get(f"warm_{cfg.target:g}")
    gap = {c["t"]: c["rel_gap"] for c in cold}
    fails = [(c["t"], c["seed"], r["hvps"], r["err"], c["oracle"]["hvps"]) for c, r, ok in zip(cold, recs, within)
             if not ok]
    fail_text = "; failing: " + ", ".join(
        f"t={t} seed {s} ({h} HVPs, error {e:.1e}, gap {gap[t]:.3f}, oracle stop {o or '>' + str(cfg.oracle_steps)})"
        for t, s, h, e, o in fails) if fails else ""
    at_gap = [(c["t"], ok) for c, ok in zip(cold, within) if c["rel_gap"] >= cfg.target_gap]
    return {
        "cold_at_gap": dict(what=f"cold top_eigenpairs(tol={cfg.target:g}): error <= {cfg.target:g} in <= "
                                 f"{cfg.cold_target} HVPs at every seed and at every point whose top gap is >= "
                                 f"{cfg.target_gap:.0%} (the target's setting)",
                            value=f"{sum(ok for _, ok in at_gap)}/{len(at_gap)} solves at "
                                  f"{len({t for t, _ in at_gap})} points",
                            met=bool(at_gap) and all(ok for _, ok in at_gap)),
        "cold": dict(what=f"cold top_eigenpairs(tol={cfg.target:g}): error <= {cfg.target:g} in <= "
                          f"{cfg.cold_target} HVPs at every seed and point",
                     value=f"{sum(within)}/{len(within)} solves; HVPs max {max(r['hvps'] for r in recs)}, "
                           f"error max {max(r['err'] for r in recs):.1e}; seeds meeting it at every point "
                           f"{sum(seeds_ok.values())}/{len(seeds_ok)}; converged "
                           f"{sum(r['converged'] for r in recs)}/{len(recs)}{fail_text}",
                     met=all(within), failing=fails),
        "warm": dict(what=f"warm SharpnessTracker(tol={cfg.target:g}): median <= {cfg.warm_target:g} HVPs per step",
                     value=(f"median {warm['hvps_median']:g}, mean {warm['hvps_mean']:.2f}, max {warm['hvps_max']} "
                            f"over {warm['n']} steps; error at the points max {warm['err_max']:.1e}"),
                     met=warm["hvps_median"] <= cfg.warm_target) if warm else dict(what="warm", value="not run",
                                                                                   met=False),
    }


# ----------------------------------------------------------------------------- report


def _e(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1e}"


def _g(x, fmt="g") -> str:
    return "-" if x is None else format(x, fmt)


def print_report(problem: Problem, cfg: Config, truths: list[dict], dense: list[dict], cold: list[dict],
                 chains: list[dict], rows: dict, rats: list[dict], micro: dict, targets: dict,
                 default_blas: int | None) -> None:
    pts = [r["t"] for r in truths]
    print("=" * 110)
    print("eoslab curvature cost: the top Hessian eigenvalue, eoslab cold and warm vs power iteration and eigsh")
    print("=" * 110)
    print(f"model      fc-tanh, widths {cfg.widths}, {problem.dim} parameters; loss {cfg.loss} "
          f"(1/2 sum over outputs, mean over examples)")
    print(f"data       digits, {problem.n_train} training examples, full batch; seed {cfg.seed}")
    print(f"trajectory GD, eta={cfg.eta} (2/eta={2 / cfg.eta:.3f}), {cfg.steps} steps; {len(pts)} measurement points "
          f"t={pts[0]}..{pts[-1]}, {cfg.seeds} random starts each")
    print("precision  solvers and HVPs float32 (JAX default); truth float64 (float64 model and data, same params)")
    print(f"eoslab     {code_version()}")
    print(f"machine    {platform.machine()}, {jax.devices()[0].platform}, {os.cpu_count()} cores, "
          f"jax {jax.__version__}, scipy {scipy.__version__}; "
          f"BLAS threads while timing {cfg.blas_threads or 'default'} "
          f"(default here {default_blas})")
    print("error      |value - lambda_1| / lambda_1 against the truth; 'estimate' is EigenResult.errors / lambda_1")
    print()
    print(f"Truth: float64 eoslab Lanczos (k=2, tol={cfg.ref_tol:g}) at every point, residual re-checked by an "
          f"explicit float64 HVP:")
    print(f"  converged {sum(r['converged'] for r in truths)}/{len(truths)}, "
          f"median {_med([r['hvps'] for r in truths]):g} HVPs; "
          f"max relative residual {max(r['residual_rel'] for r in truths):.1e} (an eigenvalue within it), "
          f"error bound given the gap, r^2/(gap - r_2): max {max(r['error_bound_rel'] for r in truths):.1e}")
    gaps = [r["rel_gap"] for r in truths]
    print(f"  lambda_1 from {min(r['lambda1'] for r in truths):.4f} to {max(r['lambda1'] for r in truths):.4f}; "
          f"gap (lambda_1 - lambda_2)/lambda_1 min {min(gaps):.3f}, median {_med(gaps):.3f}, max {max(gaps):.3f}")
    if dense:
        print("Dense float64 Hessian check (lambda_1 in [y.H.y, sigma] with y the Lanczos vector, "
              "sigma = theta(1+delta) where Cholesky of sigma I - H succeeds):")
        for d in dense:
            line = (f"  t={d['t']:>3}: y.H.y - theta = {d['rayleigh_minus_theta_rel']:+.1e} rel, dense residual "
                    f"{d['dense_residual_rel']:.1e}, ")
            if d["upper"] is None:
                line += f"Cholesky FAILED up to delta={cfg.dense_deltas[-1]:g}: an eigenvalue above theta(1+delta)"
            else:
                line += (f"no eigenvalue above theta(1+{d['delta']:g}); bracket width {d['bracket_rel']:.1e} rel, "
                         f"theta inside: {'yes' if d['theta_in_bracket'] else 'NO'}")
            line += (f"; |H-H^T|/|H| {d['asymmetry_rel']:.0e}; build {d['build_seconds']:.0f} s, "
                     f"Cholesky {d['cholesky_seconds']:.0f} s")
            print(line)
            if "eigh_top" in d:
                print(f"         scipy eigh top 3 {', '.join(f'{v:.8f}' for v in d['eigh_top'])} "
                      f"({d['eigh_seconds']:.0f} s): lambda_1 - theta {d['eigh_minus_theta_rel']:+.1e} rel, "
                      f"lambda_2 - Lanczos {d['eigh_lambda2_minus_lanczos_rel']:+.1e} rel")
        agree = all(d["theta_in_bracket"] for d in dense)
        inside = sum(d["theta_in_bracket"] for d in dense)
        print(f"  agreement: the float64 Lanczos value lies in the dense bracket at {inside}/{len(dense)} points "
              f"({'all' if agree else 'NOT all'})")
    print()

    print("Per point (cold: median / max over seeds):")
    head = (f"{'t':>4} {'loss':>7} {'lam1':>8} {'gap':>6} | {'e-3 hvp':>7} {'err max':>7} | {'e-4 hvp':>7} "
            f"{'err max':>7} {'orcl':>5} | {'pyh hvp':>7} {'err':>7} {'pow->e-4':>8} | {'eigsh0':>6} {'eigsh-4':>7} | "
            f"{'warm-3 err':>10} {'warm-4 err':>10}")
    print(head)
    print("-" * len(head))
    warm_err = {ch["tol"]: {p["t"]: p["err"] for p in ch["at_points"]} for ch in chains}
    for tr in truths:
        t = tr["t"]
        cs = [c for c in cold if c["t"] == t]
        col = lambda key, f: [c[key][f] for c in cs]  # noqa: E731
        mm = lambda xs: f"{_g(_med(xs))}/{_g(max(_clean(xs)) if _clean(xs) else None)}"  # noqa: E731
        pw = col("power_to_target", "hvps")
        pw_s = mm(pw) + (f"+{sum(h is None for h in pw)}x" if any(h is None for h in pw) else "")
        print(f"{t:>4} {problem.losses[t]:>7.4f} {tr['lambda1']:>8.5f} {tr['rel_gap']:>6.3f} | "
              f"{mm(col(f'eoslab_{1e-3:g}', 'hvps')):>7} {_e(max(col(f'eoslab_{1e-3:g}', 'err'))):>7} | "
              f"{mm(col(f'eoslab_{1e-4:g}', 'hvps')):>7} {_e(max(col(f'eoslab_{1e-4:g}', 'err'))):>7} "
              f"{mm(col('oracle', 'hvps')):>5} | {mm(col('power_pyhessian', 'hvps')):>7} "
              f"{_e(_med(col('power_pyhessian', 'err'))):>7} {pw_s:>8} | {_g(_med(col(f'eigsh_{0.0:g}', 'hvps'))):>6} "
              f"{_g(_med(col(f'eigsh_{1e-4:g}', 'hvps'))):>7} | {_e(warm_err.get(1e-3, {}).get(t)):>10} "
              f"{_e(warm_err.get(1e-4, {}).get(t)):>10}")
    print("(orcl: HVPs after which the same Lanczos run's top Ritz value is first within 1e-4, any stopping rule; "
          "pow->e-4: power iteration's HVPs to 1e-4, +Nx = N starts that did not reach it within "
          f"{cfg.power_budget}; eigsh columns: matvecs, median)")
    print()

    print(f"Side by side ({len(cold)} cold solves = {len(truths)} points x {cfg.seeds} seeds; warm: every step of the "
          f"run, errors at the {len(truths)} points):")
    head = (f"{'method':<46} {'HVPs med':>8} {'mean':>6} {'max':>5} | {'err med':>7} {'err max':>7} | "
            f"{'estimate':>8} {'conv':>7} | {'wall ms':>7}")
    print(head)
    print("-" * len(head))
    for r in rows.values():
        conv = f"{r['n_converged']}/{r['n_flag']}" if r["n_flag"] else "-"
        hmax = _g(r["hvps_max"]) + (f"+{r['hvps_missing']}x" if r["hvps_missing"] else "")
        ms = None if r["seconds_median"] is None else 1e3 * r["seconds_median"]
        print(f"{r['method']:<46} {_g(r['hvps_median']):>8} {_g(r['hvps_mean'], '.1f'):>6} {hmax:>5} | "
              f"{_e(r['err_median']):>7} {_e(r['err_max']):>7} | {_e(r['estimate_median']):>8} {conv:>7} | "
              f"{_g(ms, '.1f'):>7}")
    print("HVP counts leave out the one linearisation (~1 gradient) every solve pays; wall times include it (warm: "
          "per update). 'estimate': median of the reported error estimate; conv: eoslab's converged flag, eigsh: "
          "ARPACK converged. +Nx: runs that never reached the target within the budget (left out of the statistics).")
    for ch in chains:
        steps = ch["unconverged_steps"]
        shown = ", ".join(map(str, steps[:8])) + (", ..." if len(steps) > 8 else "")
        print(f"  warm tol={ch['tol']:g}: {ch['unconverged']} of {len(ch['hvps'])} updates not converged"
              f"{f' (steps {shown})' if steps else ''}, {ch['at_budget']} at the budget of {ch['max_hvps']} HVPs; "
              f"state first marked suspect (jump > 10% or unconverged) at step {ch['first_suspect'] or 'never'} "
              f"(the hot path never refreshes, so it stays marked)")
    floors = [c["oracle"]["float32_floor"] for c in cold]
    same = _clean([c["oracle"]["same_space"] for c in cold])
    diffs = [abs(c[k]["timed_hvps"] - c[k]["hvps"]) for c in cold for k in ("power_pyhessian", "power_to_target")
             if c[k]["hvps"] is not None]
    agree_p = sum(d == 0 for d in diffs)
    print(f"  float32 floor (best error of {cfg.oracle_steps} Lanczos steps): median {_e(_med(floors))}, max "
          f"{_e(max(floors))}; checks: top_eigenpairs vs the long run's Ritz value at its stop, max |diff| "
          f"{_e(max(same) if same else None)}; timed power runs stop where the recorded sequence says at "
          f"{agree_p}/{len(diffs)}" + (f" (max difference {max(diffs)} HVPs: float32 rounding of separately compiled "
                                       f"loops when the error sits at the threshold)" if max(diffs) else "")
          + f"; linearised matvec vs flat_operator "
          f"{micro['matvec_matches_flat_operator_rel']:.0e}")
    print()
    print("Ratios at comparable accuracy (ratio of medians; median errors of both sides in brackets):")
    for r in rats:
        miss = f"; {r['missing']} runs never reached it, left out" if r["missing"] else ""
        print(f"  {r['label']:<50} HVPs {_g(r['hvps'], '.2f'):>6}x   wall {_g(r['seconds'], '.2f'):>6}x   "
              f"[{_e(r['err_num'])} vs {_e(r['err_den'])}]{miss}")
    print(f"One product (median of {cfg.micro_repeats} interleaved calls): gradient {micro['gradient_ms']:.2f} ms, "
          f"HVP {micro['hvp_ms']:.2f} ms ({micro['hvp_over_gradient']:.2f}x), linearisation "
          f"{micro['linearisation_ms']:.2f} ms ({micro['linearisation_over_gradient']:.2f}x)")
    print()
    print("Targets (issue 12):")
    for tg in targets.values():
        print(f"  [{'met' if tg['met'] else 'NOT met'}] {tg['what']}: {tg['value']}")


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__.split("\n\n")[0], quick_help=f"{Config.quick().points} measurement points, 1 "
                              f"dense check, shorter power budget")
    parser.add_argument("--seed", type=int, default=0, help="seed of the init and start vectors (default 0)")
    parser.add_argument("--dense-points", type=int, default=None, metavar="N",
                        help="points with the dense float64 Hessian check (default 2, --quick 1; ~3 min each)")
    parser.add_argument("--dense-eigh", action="store_true",
                        help="also scipy.linalg.eigh of each dense Hessian (about 4 more minutes per point)")
    args = parser.parse_args(argv)
    cfg = dataclasses.replace(Config.quick() if args.quick else Config(), seed=args.seed, dense_eigh=args.dense_eigh)
    if args.dense_points is not None:
        cfg = dataclasses.replace(cfg, dense_points=max(0, args.dense_points))

    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"  [{time.perf_counter() - t_start:5.0f} s] {msg}", file=sys.stderr, flush=True)

    default_blas = blas_threads()
    with blas_limit(cfg.blas_threads):
        problem = build_problem(cfg)
        points = measurement_points(cfg)
        truths = [lanczos_truth(problem, t, cfg) for t in points]
        log(f"float64 Lanczos truth at {len(points)} points")
    dense = []
    for t in dense_choice(truths, cfg.dense_points):  # the default BLAS pool: untimed, and the slow part
        dense.append(dense_check(problem, next(r for r in truths if r["t"] == t), cfg))
        log(f"dense check at t={t}")
    lam = {r["t"]: r["lambda1"] for r in truths}
    gaps = {r["t"]: r["rel_gap"] for r in truths}
    with blas_limit(cfg.blas_threads):
        solvers = Solvers(problem, cfg)
        measure_cold(problem, solvers, cfg, points[0], lam[points[0]], 0.0, seed=999)  # compile outside the clocks
        cold = []
        for t in points:
            cold.extend(measure_cold(problem, solvers, cfg, t, lam[t], gaps[t], seed=s) for s in range(cfg.seeds))
            log(f"cold solves at t={t}")
        chains = [chained_tracker(problem, cfg, tol, lam) for tol in cfg.tols]
        log("warm tracker chains")
        micro = micro_timings(problem, solvers, cfg)
    rows = summarise(cold, chains, cfg)
    rats = ratios(rows, cfg)
    targets = evaluate_targets(rows, cold, cfg)
    print_report(problem, cfg, truths, dense, cold, chains, rows, rats, micro, targets, default_blas)
    elapsed = time.perf_counter() - t_start
    print(f"\n(total {elapsed:.0f} s)")

    if args.json:
        out = dict(
            benchmark="curvature_cost",
            conditions=dict(model="fc-tanh", widths=list(cfg.widths), num_params=problem.dim, dataset="digits",
                            n_train=problem.n_train, loss=cfg.loss, dtype="float32", truth_dtype="float64",
                            eta=cfg.eta, steps=cfg.steps, jax=jax.__version__, scipy=scipy.__version__,
                            platform=jax.devices()[0].platform, machine=platform.machine(),
                            cpu_count=os.cpu_count(), eoslab=code_version(), blas_threads_timing=cfg.blas_threads,
                            blas_threads_default=default_blas),
            config=dataclasses.asdict(cfg),
            targets=targets,
            methods=[{k: v for k, v in r.items() if k not in ("hvps", "err", "estimate", "converged", "seconds")}
                     for r in rows.values()],
            ratios=rats,
            truth=[{k: v for k, v in r.items() if k != "vector"} for r in truths],
            dense_checks=dense,
            cold_solves=cold,
            warm_chains=chains,
            hvp_timing=micro,
            seconds=elapsed,
        )
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
