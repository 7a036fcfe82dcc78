"""Cost of tracking the preconditioned sharpness lambda_1(P_t^-1 H) against the raw sharpness lambda_1(H).

Setting: the adaptive edge-of-stability recipe (``configs/adaptive-eos.toml``):
full-batch Adam (beta1 = 0.9, beta2 = 0.999, eps = 1e-8, optax convention) on
fc-tanh [200, 200] (55,210 parameters), digits (1,500 training examples), MSE,
eta = ``--eta`` (default 3e-3), float32.  Adam first trains ``warmup`` steps
(the preconditioned sharpness reaches the threshold 38 -- 38/eta in the
paper's units -- within them), then ``steps`` consecutive iterates theta_t and
their preconditioners P_t (read from the optimizer state exactly as the
trainer does) are recorded.  Over that very sequence, side by side:

(raw)     a warm-started ``SharpnessTracker`` updated at every step on H;
(precond) the same tracker on P^{-1/2} H P^{-1/2} (``precond=P_t``), which has
          the eigenvalues of P^{-1} H;

each as one compiled ``lax.scan`` over the recorded steps, the tracker's
defaults of ``eoslab run`` (tol 1e-3, max_hvps 20), both started from the same
cold solve at the first recorded step.  Printed: Hessian-vector products (HVPs)
per step (exact counts: median, mean, max), wall time per step (modes
interleaved, ``rounds`` times, fastest kept; compilation excluded), the ratios
precond / raw, and the accuracy of both against cold ``top_eigenpairs``
(tol 1e-6, top 4, so the gap lambda_1 - lambda_2 of each operator is printed
too) at ``checks`` of the steps, and the wall time per HVP of each operator.
At the adaptive edge several eigenvalues of P^{-1} H sit near the threshold
within about 1% of each other and trade places, so the warm start has more to
resolve than on H; the per-HVP cost separates that from the price of
preconditioning itself (two elementwise scalings).  Target (issue 4): tracking the
preconditioned sharpness costs no more than tracking the raw one.

Cores: pinned to ``--threads`` (default 1) before JAX starts; BLAS one thread.

    cd /work/main && .venv/bin/python benchmarks/adaptive_tracking_cost.py [--quick] [--json PATH] [--threads N]
"""
from __future__ import annotations

import os
import sys

from _common import benchmark_parser, code_version, limit_cores, machine_line, threads_from_argv

THREADS = threads_from_argv(sys.argv[1:])
CORES = limit_cores(THREADS)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from eoslab.curvature import SharpnessTracker, top_eigenpairs  # noqa: E402
from eoslab.train import Trainer, config_from_dict  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Config:
    eta: float = 3e-3
    warmup: int = 600
    steps: int = 300
    tol: float = 1e-3
    max_hvps: int = 20
    rounds: int = 3
    checks: int = 6
    seed: int = 0

    @staticmethod
    def quick() -> "Config":
        return Config(warmup=400, steps=100, rounds=2, checks=3)


def make_trainer(cfg: Config) -> Trainer:
    return Trainer(config_from_dict({
        "name": "bench-adaptive-tracking", "seed": cfg.seed,
        "data": {"name": "digits"}, "model": {"name": "fc-tanh", "widths": [200, 200]},
        "loss": {"name": "mse"},
        "optimizer": {"name": "adam", "lr": [cfg.eta], "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
        "train": {"steps": cfg.warmup + cfg.steps},
        "probes": {"sharpness_k": 0},
    }))


def record_trajectory(trainer: Trainer, cfg: Config):
    """Adam for ``warmup`` steps, then ``steps`` iterates and their P_t, stacked on a leading axis."""
    prob, lr = trainer.problem, jnp.asarray(cfg.eta, trainer.dtype)
    tx = trainer.rule.transform(lr, trainer.hp)
    params = prob.model.init(jax.random.PRNGKey(cfg.seed))
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state):
        grads = jax.grad(prob.train_loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, trainer.rule.preconditioner(opt_state, lr, trainer.hp)

    for _ in range(cfg.warmup):
        params, opt_state, _ = step(params, opt_state)
    thetas, precs = [], []
    for _ in range(cfg.steps):
        params, opt_state, p = step(params, opt_state)
        thetas.append(params)
        precs.append(p)
    stack = lambda trees: jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trees)
    return stack(thetas), stack(precs)


def tracking_scan(tracker: SharpnessTracker, loss_fn, with_precond: bool):
    @jax.jit
    def run(state, thetas, precs):
        def body(st, xs):
            theta, p = xs
            res, st = tracker.update(loss_fn, theta, st, precond=p if with_precond else None)
            return st, (res.eigenvalues[0], res.num_hvps, res.residuals[0])
        return jax.lax.scan(body, state, (thetas, precs))[1]
    return run


def main(argv=None):
    ap = benchmark_parser(__doc__.split("\n")[0], threads_help="cores the process may use (default 1)")
    ap.add_argument("--eta", type=float, default=None)
    args = ap.parse_args(argv)
    cfg = Config.quick() if args.quick else Config()
    if args.eta:
        cfg = dataclasses.replace(cfg, eta=args.eta)

    print(machine_line(CORES))
    print(f"Adam eta={cfg.eta}, fc-tanh [200, 200], digits, MSE, float32: {cfg.warmup} warm-up steps, "
          f"then {cfg.steps} tracked steps; tracker tol={cfg.tol}, max_hvps={cfg.max_hvps}")
    trainer = make_trainer(cfg)
    loss_fn = trainer.problem.sharpness_loss
    t0 = time.perf_counter()
    thetas, precs = record_trajectory(trainer, cfg)
    print(f"trajectory recorded in {time.perf_counter() - t0:.1f} s")

    first = lambda tree: jax.tree_util.tree_map(lambda a: a[0], tree)
    tracker = SharpnessTracker(k=1, tol=cfg.tol, max_hvps=cfg.max_hvps)
    key = jax.random.PRNGKey(cfg.seed + 1)
    modes = {
        "raw": (tracker.init(loss_fn, first(thetas), key=key)[1], tracking_scan(tracker, loss_fn, False)),
        "precond": (tracker.init(loss_fn, first(thetas), precond=first(precs), key=key)[1],
                    tracking_scan(tracker, loss_fn, True)),
    }
    outs, best = {}, {m: float("inf") for m in modes}
    for name, (state, fn) in modes.items():  # compile
        jax.block_until_ready(fn(state, thetas, precs))
    for _ in range(cfg.rounds):
        for name, (state, fn) in modes.items():
            t0 = time.perf_counter()
            out = jax.block_until_ready(fn(state, thetas, precs))
            best[name] = min(best[name], time.perf_counter() - t0)
            outs[name] = [np.asarray(o) for o in out]

    # accuracy against cold solves at the same parameters
    idx = np.linspace(0, cfg.steps - 1, cfg.checks).round().astype(int)
    errs, gaps, tops = ({m: [] for m in modes} for _ in range(3))
    for i in idx:
        theta, p = jax.tree_util.tree_map(lambda a: a[i], thetas), jax.tree_util.tree_map(lambda a: a[i], precs)
        for name in modes:
            ref = top_eigenpairs(loss_fn, theta, k=4, tol=1e-6, max_hvps=200,
                                 precond=p if name == "precond" else None, key=jax.random.PRNGKey(7))
            lam = np.asarray(ref.eigenvalues, float)
            errs[name].append(abs(outs[name][0][i] - lam[0]) / abs(lam[0]))
            gaps[name].append((lam[0] - lam[1]) / lam[0])
            tops[name].append(lam)

    rows = {}
    print()
    print(f"{'mode':<9} {'λ1 (median)':>12} {'HVPs/step median':>17} {'mean':>6} {'max':>4} "
          f"{'ms/step':>8} {'ms/HVP':>7} {'max rel. err vs cold':>21} {'(λ1-λ2)/λ1 median':>18}")
    for name in modes:
        lam, hvps, _ = outs[name]
        rows[name] = dict(median_eigenvalue=float(np.median(lam)), hvps_median=float(np.median(hvps)),
                          hvps_mean=float(np.mean(hvps)), hvps_max=int(np.max(hvps)),
                          ms_per_step=1e3 * best[name] / cfg.steps,
                          ms_per_hvp=1e3 * best[name] / float(np.sum(hvps)),
                          max_rel_err=float(max(errs[name])), gap_median=float(np.median(gaps[name])),
                          top4_at_checks=[t.tolist() for t in tops[name]])
        r = rows[name]
        print(f"{name:<9} {r['median_eigenvalue']:>12.4g} {r['hvps_median']:>17.1f} {r['hvps_mean']:>6.2f} "
              f"{r['hvps_max']:>4d} {r['ms_per_step']:>8.2f} {r['ms_per_hvp']:>7.2f} {r['max_rel_err']:>21.2e} "
              f"{r['gap_median']:>18.2e}")
    hvp_ratio = rows["precond"]["hvps_mean"] / rows["raw"]["hvps_mean"]
    time_ratio = rows["precond"]["ms_per_step"] / rows["raw"]["ms_per_step"]
    per_hvp_ratio = rows["precond"]["ms_per_hvp"] / rows["raw"]["ms_per_hvp"]
    print()
    print(f"edge: median λ1(P⁻¹H) = {rows['precond']['median_eigenvalue']:.4g} against the threshold 38 "
          f"(ratio {rows['precond']['median_eigenvalue'] / 38:.3f})")
    for name in modes:
        print(f"top 4 eigenvalues ({name}) at step {cfg.warmup + 1 + idx[-1]}: "
              + ", ".join(f"{v:.4g}" for v in tops[name][-1]))
    print(f"precond / raw: HVPs per step {hvp_ratio:.2f}x, wall time per step {time_ratio:.2f}x, "
          f"wall time per HVP {per_hvp_ratio:.2f}x")
    ok = hvp_ratio <= 1.0 and time_ratio <= 1.05
    print(f"target (preconditioned tracking costs no more than raw): {'met' if ok else 'NOT met'} "
          f"(HVPs {hvp_ratio:.2f} <= 1, time {time_ratio:.2f} <= 1.05 allowing 5% timing noise)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(config=dataclasses.asdict(cfg), rows=rows, hvp_ratio=hvp_ratio,
                           time_ratio=time_ratio, per_hvp_ratio=per_hvp_ratio, target_met=ok, version=code_version()), f, indent=2)


if __name__ == "__main__":
    main()
