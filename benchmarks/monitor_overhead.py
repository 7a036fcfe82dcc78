"""The monitor's overhead in a user's own JAX loop: a bare Adam loop against the same loop monitored every N steps.

Setting: digits (``--n-train`` examples, flattened), a flax MLP (tanh, two
hidden layers of ``--width``), MSE (1/2 sum over outputs, mean over
examples), full-batch Adam (``optax.inject_hyperparams(optax.adam)``, eta =
``--lr``), ``--steps`` steps.  Three loops over the *same* trajectory, in
one process, interleaved ``--rounds`` times (fastest kept), compilation
excluded (each loop runs once untimed first):

* ``bare``: the jitted step only;
* ``monitor``: the same loop with ``eoslab.Monitor(loss_fn, every=N)``, which
  every N steps solves for lambda_1(H) and lambda_1(P^{-1} H) (warm-started,
  certified to ``tol``) and reports the thresholds, the edge ratio and the events;
* ``monitor, sharpness only``: the same with ``preconditioner`` unknown (no
  optimizer state passed): lambda_1(H) only.

The same three loops in PyTorch (``torch.nn`` MLP of the same shape,
``torch.optim.Adam``, ``eoslab.torch.Monitor``), when PyTorch is installed
(``--no-torch`` skips them).

Printed: the wall time of each and its ratio to the bare loop, and the mean
HVPs per measurement (exact counts).

Cores: pinned to ``--threads`` (default 1) before JAX starts; BLAS one thread.

    cd /work/main && .venv/bin/python benchmarks/monitor_overhead.py [--quick] [--every 10] [--threads N]
"""
from __future__ import annotations

import os
import sys

from _common import benchmark_parser, limit_cores, machine_line, threads_from_argv, write_json

THREADS = threads_from_argv(sys.argv[1:])
CORES = limit_cores(THREADS)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from eoslab import Monitor  # noqa: E402
from eoslab.data import load_dataset  # noqa: E402


class MLP(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x):
        x = nn.tanh(nn.Dense(self.width)(x))
        x = nn.tanh(nn.Dense(self.width)(x))
        return nn.Dense(10)(x)


KINDS = ("bare", "monitor", "monitor, sharpness only")


def interleaved(loop, rounds: int):
    """Each loop kind ``rounds`` times, interleaved: fastest wall, fastest first measurement, last HVP counts."""
    best, setup, hv = {k: float("inf") for k in KINDS}, {k: float("inf") for k in KINDS}, {}
    for _ in range(rounds):
        for kind in KINDS:
            seconds, first, hvps = loop(kind)
            best[kind], setup[kind] = min(best[kind], seconds), min(setup[kind], first)
            hv[kind] = hvps
    return best, setup, hv


def table(best: dict, setup: dict, hv: dict, first_label: str) -> dict:
    """Print the loops' wall times, ratios to the bare loop and HVPs per measurement; return them."""
    print(f"{'loop':<28}{'wall s':>9}{'vs bare':>9}{'HVPs/measurement':>18}{first_label:>10}")
    for kind in KINDS:
        h = f"{np.mean(hv[kind]):.1f}" if hv[kind] else "-"
        su = f"{setup[kind]:.2f}" if kind != "bare" else "-"
        print(f"{kind:<28}{best[kind]:>9.2f}{best[kind] / best['bare']:>8.2f}x{h:>18}{su:>10}")
    return {"seconds": best, "first_measurement_seconds": setup, "ratio": {k: best[k] / best["bare"] for k in KINDS},
            "hvps_per_measurement": {k: float(np.mean(v)) if v else None for k, v in hv.items()}}


def main(argv=None) -> dict:
    ap = benchmark_parser(__doc__.splitlines()[0], quick_help="200 steps, one round",
                          threads_help="cores to pin to (default 1)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch loops")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.rounds = 200, 1

    data = load_dataset("digits", n_train=args.n_train, flatten=True)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    model = MLP(args.width)
    params0 = model.init(jax.random.PRNGKey(0), x[:1])
    dim = sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(params0))

    def loss_fn(p):
        return 0.5 * jnp.mean(jnp.sum((model.apply(p, x) - y) ** 2, axis=-1))

    tx = optax.inject_hyperparams(optax.adam)(learning_rate=args.lr)

    @jax.jit
    def step(p, s):
        g = jax.grad(loss_fn)(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    def loop(kind: str):
        params, state = params0, tx.init(params0)
        mon = None if kind == "bare" else Monitor(loss_fn, every=args.every, tol=args.tol, verbose=False)
        hvps, first = [], 0.0
        jax.block_until_ready(params)
        t0 = time.perf_counter()
        for t in range(1, args.steps + 1):
            params, state = step(params, state)
            if mon is not None:
                t1 = time.perf_counter()
                out = mon.update(t, params, state if kind == "monitor" else None)
                if out is not None:
                    if not hvps:  # the monitor's first measurement: its compilation and the cold solve
                        first = time.perf_counter() - t1
                    hvps.append(out["sharpness_hvps"] + out.get("effective_sharpness_hvps", 0.0))
        jax.block_until_ready(params)
        return time.perf_counter() - t0 - first, first, hvps

    loop("bare")  # compile the step (untimed)
    best, setup, hv = interleaved(loop, args.rounds)
    print(f"machine    {machine_line(CORES)}")
    print(f"setting    digits {args.n_train} examples, flax MLP tanh [{args.width}, {args.width}] ({dim} parameters), "
          f"MSE, full-batch Adam eta={args.lr}, {args.steps} steps; monitor every {args.every} steps, tol {args.tol}; "
          f"fastest of {args.rounds} interleaved round(s)")
    print("wall s: the loop without the monitor's first measurement, which is timed on its own (setup s: the "
          "compilation of the monitor's solves and the cold solve at the first measured step; once per run)")
    results = table(best, setup, hv, "setup s") | {"conditions": vars(args) | {"dim": dim, "cores": CORES}}
    if not args.no_torch:
        results["torch"] = torch_loops(args, x, y)
    if args.json:
        write_json(Path(args.json), results)
    return results


def torch_loops(args, x, y) -> dict:
    """The bare and monitored loops in PyTorch (same data, shape, optimizer and schedule of measurements)."""
    import torch
    from torch.func import functional_call

    import eoslab.torch as et
    torch.set_num_threads(len(CORES))
    xt, yt = torch.as_tensor(np.asarray(x)), torch.as_tensor(np.asarray(y))

    def loop(kind: str):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(xt.shape[1], args.width), torch.nn.Tanh(),
                                    torch.nn.Linear(args.width, args.width), torch.nn.Tanh(),
                                    torch.nn.Linear(args.width, 10))
        loss_fn = lambda p: 0.5 * ((functional_call(model, p, (xt,)) - yt) ** 2).sum(-1).mean()  # noqa: E731
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        mon = (None if kind == "bare" else
               et.Monitor(model, loss_fn, optimizer=opt if kind == "monitor" else None, every=args.every,
                          tol=args.tol, verbose=False))
        hvps, first = [], 0.0
        t0 = time.perf_counter()
        for t in range(1, args.steps + 1):
            opt.zero_grad()
            loss_fn(dict(model.named_parameters())).backward()
            opt.step()
            if mon is not None:
                t1 = time.perf_counter()
                out = mon.update(t)
                if out is not None:
                    if not hvps:
                        first = time.perf_counter() - t1
                    hvps.append(out["sharpness_hvps"] + out.get("effective_sharpness_hvps", 0.0))
        return time.perf_counter() - t0 - first, first, hvps

    best, setup, hv = interleaved(loop, args.rounds)
    print(f"PyTorch {torch.__version__} ({torch.get_num_threads()} thread(s)): the same loops")
    return table(best, setup, hv, "first s")


if __name__ == "__main__":
    main()
