"""Cost of the step-size tuners per step, against plain gradient descent, measured side by side.

Setting: fc-tanh [200, 200] (55,210 parameters, PyTorch-default init) on
digits (1,500 training examples), MSE (1/2 sum over outputs, mean over
examples), float32, in full batch and with minibatches of ``--batch-size``
(default 128).  Rules, each through eoslab's ``Trainer`` (``run_chunk``: the
compiled ``lax.scan`` ``eoslab run`` uses, with the per-step tuner records),
no curvature probes (``probes.sharpness_k = 0``):

* ``gd``: constant step eta = 0.1 (the baseline);
* ``armijo reset``: backtracking from 10 on every step (c = 1e-4, factor 0.5);
* ``armijo grow``: backtracking from 1.5 x the last accepted step (capped at 10);
* ``polyak``: SPS_max, f* = 0, c = 1, cap 10;
* ``parabolic``: PAL, mu = 1, alpha = 1/0.6, s_max = 3.16, no conjugate direction;
* ``edge``: CDAT with sigma = 2 ("on edge"), cap 10.

Each rule first trains ``warmup`` steps (this also compiles its chunk), then
the *same* chunk of ``steps`` steps from the same state is timed ``rounds``
times, rules interleaved, and the fastest round of each is kept
(compilation excluded; the carry is copied to the host after each chunk as
the trainer does).  The evaluations come from the records of the timed chunk:
``tuner_values`` (value_fn evaluations, not counting the loss that comes with
the step's gradient) and ``tuner_grads`` (extra gradients or Hessian-vector
products), per step; GD spends none.

Gradient-equivalents: every rule computes one value-and-gradient of the
step's loss per step; a value_fn evaluation costs ``c_value`` of that and an
HVP ``c_hvp`` of it, both measured in the same run (jit-compiled loss,
value-and-gradient and forward-over-reverse HVP of the same loss -- the
minibatch loss of one batch in minibatch mode -- timed interleaved, fastest
kept).  So the estimated cost of a step is 1 + c_value * values + c_hvp *
grads gradient-equivalents, printed next to the measured wall-time ratio to
GD; the difference between the two is the tuner's own overhead (the
while-loop of the line search, the tree arithmetic) and the cost of the
update itself, which the estimate leaves out.

Cores: pinned to ``--threads`` (default 1) before JAX starts; BLAS one thread.

    cd /work/main && .venv/bin/python benchmarks/tuner_cost.py [--quick] [--json PATH] [--threads N]
"""
from __future__ import annotations

import os
import sys

from _common import benchmark_parser, code_version, limit_cores, machine_line, threads_from_argv

THREADS = threads_from_argv(sys.argv[1:])
CORES = limit_cores(THREADS)  # before JAX starts its thread pool
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from eoslab.curvature.operators import hvp  # noqa: E402
from eoslab.train import Trainer, config_from_dict  # noqa: E402

#: label -> optimizer section (lr: GD's step, a tuner's cap)
RULES = {
    "gd": {"name": "gd", "lr": 0.1},
    "armijo reset": {"name": "armijo", "lr": 10.0, "c": 1e-4, "decrease_factor": 0.5, "init": "reset"},
    "armijo grow": {"name": "armijo", "lr": 10.0, "c": 1e-4, "decrease_factor": 0.5, "init": "grow",
                    "increase_factor": 1.5},
    "polyak": {"name": "polyak", "lr": 10.0, "f_star": 0.0, "c": 1.0, "variant": "max"},
    "parabolic": {"name": "parabolic", "lr": 3.16, "mu": 1.0, "alpha": 1 / 0.6, "beta": 0.0},
    "edge": {"name": "edge", "lr": 10.0, "sigma": 2.0},
}


@dataclasses.dataclass(frozen=True)
class Config:
    warmup: int = 200
    steps: int = 200
    rounds: int = 5
    unit_reps: int = 50  # repetitions of one loss / gradient / HVP per timing
    batch_size: int = 128
    seed: int = 0

    @staticmethod
    def quick() -> "Config":
        return Config(warmup=50, steps=100, rounds=2, unit_reps=20)


def make_trainer(rule: dict, batch_size: int, steps: int, seed: int) -> Trainer:
    return Trainer(config_from_dict({
        "name": "bench-tuner-cost", "seed": seed,
        "data": {"name": "digits"}, "model": {"name": "fc-tanh", "widths": [200, 200], "init": "pytorch"},
        "loss": {"name": "mse"},
        "optimizer": {**rule, "lr": [rule["lr"]], "batch_size": batch_size},
        "train": {"steps": steps},
        "probes": {"sharpness_k": 0},
    }))


def best_of(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def unit_costs(trainer: Trainer, cfg: Config) -> dict:
    """Wall time of one loss, one value-and-gradient and one HVP of the step's loss (ms), interleaved."""
    loss_fn = trainer.step_loss_fn(jnp.asarray(cfg.warmup, jnp.int32))
    params = trainer.problem.model.init(jax.random.PRNGKey(cfg.seed))
    v = jax.tree_util.tree_map(jnp.ones_like, params)
    reps = cfg.unit_reps

    def repeat(f):  # reps calls in one compiled loop, each on slightly different params (no hoisting)
        @jax.jit
        def run(p):
            def body(i, acc):
                q = jax.tree_util.tree_map(lambda a: a * (1 + 1e-7 * i), p)
                return acc + f(q)
            return jax.lax.fori_loop(0, reps, body, jnp.zeros((), jnp.float32))
        return run

    total = lambda tree: sum(jnp.sum(a) for a in jax.tree_util.tree_leaves(tree))  # every leaf is needed
    fns = {
        "value": repeat(lambda q: loss_fn(q)),
        "value_and_grad": repeat(lambda q: (lambda lv, g: lv + total(g))(*jax.value_and_grad(loss_fn)(q))),
        "hvp": repeat(lambda q: total(hvp(loss_fn, q, v))),
    }
    for f in fns.values():  # compile
        jax.block_until_ready(f(params))
    best = {k: float("inf") for k in fns}
    for _ in range(max(cfg.rounds, 3)):
        for k, f in fns.items():
            best[k] = min(best[k], best_of(lambda: f(params), 1))
    return {k: 1e3 * t / reps for k, t in best.items()}


def measure(batch_size: int, cfg: Config) -> dict:
    trainers = {label: make_trainer(rule, batch_size, cfg.warmup + cfg.steps, cfg.seed)
                for label, rule in RULES.items()}
    starts, compile_s = {}, {}
    for label, tr in trainers.items():
        t0 = time.perf_counter()
        carry, _ = tr.run_chunk(tr.init_carry(), 0, cfg.warmup)
        jax.block_until_ready(carry)
        starts[label] = carry
        jax.block_until_ready(tr.run_chunk(carry, cfg.warmup, cfg.steps))  # compile the timed length
        compile_s[label] = time.perf_counter() - t0

    def chunk(label):  # as the trainer: the chunk's outputs go to the host, the carry stays on the device
        carry, outs = trainers[label].run_chunk(starts[label], cfg.warmup, cfg.steps)
        return jax.block_until_ready(carry), jax.device_get(outs)

    best = {label: float("inf") for label in trainers}
    outs = {}
    for _ in range(cfg.rounds):
        for label in trainers:
            t0 = time.perf_counter()
            _, o = chunk(label)
            best[label] = min(best[label], time.perf_counter() - t0)
            outs[label] = o
    units = unit_costs(trainers["gd"], cfg)
    c_value = units["value"] / units["value_and_grad"]
    c_hvp = units["hvp"] / units["value_and_grad"]
    rows = {}
    gd_ms = 1e3 * best["gd"] / cfg.steps
    for label in trainers:
        o = outs[label]
        values = float(np.mean(o["tuner_values"])) if "tuner_values" in o else 0.0
        grads = float(np.mean(o["tuner_grads"])) if "tuner_grads" in o else 0.0
        eta = np.asarray(o["step_size"]) if "step_size" in o else np.full(cfg.steps, RULES[label]["lr"])
        ms = 1e3 * best[label] / cfg.steps
        rows[label] = dict(values_per_step=values, grads_per_step=grads,
                           max_values=int(np.max(o["tuner_values"])) if "tuner_values" in o else 0,
                           grad_equivalents=1 + c_value * values + c_hvp * grads, ms_per_step=ms,
                           ratio_to_gd=ms / gd_ms, median_eta=float(np.median(eta)),
                           loss_start=float(np.asarray(o["loss"])[0, 0]),
                           loss_end=float(np.asarray(o["loss"])[0, -1]),
                           success=float(np.mean(o["tuner_success"])) if "tuner_success" in o else 1.0,
                           compile_and_warmup_s=compile_s[label])
    return dict(batch_size=batch_size, units_ms=units, c_value=c_value, c_hvp=c_hvp, rows=rows)


def print_table(res: dict, cfg: Config) -> None:
    mode = "full batch (1,500 examples)" if res["batch_size"] == 0 else f"minibatches of {res['batch_size']}"
    u = res["units_ms"]
    print(f"\n== {mode}: steps {cfg.warmup}-{cfg.warmup + cfg.steps} (after {cfg.warmup} warm-up steps), "
          f"fastest of {cfg.rounds} interleaved rounds")
    print(f"one loss {u['value']:.3f} ms, one value-and-gradient {u['value_and_grad']:.3f} ms, one HVP "
          f"{u['hvp']:.3f} ms: c_value = {res['c_value']:.2f}, c_hvp = {res['c_hvp']:.2f} gradient-equivalents")
    print(f"{'rule':<13} {'values/step':>11} {'max':>4} {'grads+HVPs/step':>15} {'grad-equiv/step':>15} "
          f"{'ms/step':>8} {'x GD (time)':>11} {'median η_t':>10} {'success':>7} {'loss start→end':>18}")
    for label, r in res["rows"].items():
        print(f"{label:<13} {r['values_per_step']:>11.2f} {r['max_values']:>4d} {r['grads_per_step']:>15.2f} "
              f"{r['grad_equivalents']:>15.2f} {r['ms_per_step']:>8.3f} {r['ratio_to_gd']:>11.2f} "
              f"{r['median_eta']:>10.3g} {r['success']:>7.2f} {r['loss_start']:>8.4f}→{r['loss_end']:<8.4f}")


def main(argv=None):
    ap = benchmark_parser(__doc__.split("\n")[0], threads_help="cores the process may use (default 1)")
    ap.add_argument("--batch-size", type=int, default=None)
    args = ap.parse_args(argv)
    cfg = Config.quick() if args.quick else Config()
    if args.batch_size:
        cfg = dataclasses.replace(cfg, batch_size=args.batch_size)
    print(machine_line(CORES))
    print("fc-tanh [200, 200], digits, MSE, float32; rules: " + "; ".join(
        f"{k} ({', '.join(f'{a}={b:g}' if isinstance(b, float) else f'{a}={b}' for a, b in v.items() if a != 'name')})"
        for k, v in RULES.items()))
    t0 = time.perf_counter()
    results = [measure(0, cfg), measure(cfg.batch_size, cfg)]
    for res in results:
        print_table(res, cfg)
    print(f"\nvalues/step: value_fn evaluations beyond the step's own loss (line-search trials, PAL's l(mu)); "
          f"grads+HVPs/step: extra gradients or Hessian-vector products (CDAT's u'Hu); grad-equiv/step = "
          f"1 + c_value * values + c_hvp * HVPs (estimate; GD = 1); x GD (time) is the measured wall-time "
          f"ratio. Total {time.perf_counter() - t0:.0f} s.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(config=dataclasses.asdict(cfg), rules=RULES, results=results, threads=len(CORES),
                           version=code_version()), f, indent=2)


if __name__ == "__main__":
    main()
