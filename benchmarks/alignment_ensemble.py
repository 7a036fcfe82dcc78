"""Throughput of GD ensembles on the toy models: one vmap over scans vs a Python loop.

Both sides run the same per-trajectory step (loss, closed-form sharpness,
(p, q), divergence check, GD update) in float64 and are compiled and warmed
up before timing:

* ensemble: ``eoslab.experiments.alignment`` runs all initialisations at once,
  one ``jax.vmap`` over members of a ``jax.lax.scan`` over steps
  (``eoslab.train.ensemble.scan_members``; one XLA call);
* loop: a Python loop over initialisations, each a jitted ``lax.scan`` of one
  trajectory (one XLA call per initialisation), which is what a script that
  runs GD per seed does.

Prints initialisations x steps per second for each, side by side with their
ratio, for each toy model.  The loop is timed on a subset of initialisations
(its cost is linear in their number).

    cd /work/main && .venv/bin/python benchmarks/alignment_ensemble.py [--quick] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp

from eoslab.experiments.alignment import simulation as sim
from eoslab.models.toy import LogCoshProduct, SingleNeuron, TwoLayerLinear, UVModel


def _time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(model, eta: float, n: int, n_loop: int, steps: int, repeats: int) -> dict:
    theta0 = model.init(0, n)
    eta_a, limit = jnp.float64(eta), jnp.float64(1e8)

    def ensemble():
        recs, div, theta = sim._simulate_ensemble(model, theta0, eta_a, steps, limit)
        jax.block_until_ready((recs, div, theta))

    def loop():
        out = [sim._simulate_single(model, theta0[i], eta_a, steps, limit) for i in range(n_loop)]
        jax.block_until_ready(out)

    ensemble()  # compile
    sim._simulate_single(model, theta0[0], eta_a, steps, limit)[0][0].block_until_ready()  # compile
    t_ens = _time(ensemble, repeats)
    t_loop = _time(loop, repeats)
    ens_rate = n * steps / t_ens
    loop_rate = n_loop * steps / t_loop
    return {
        "model": model.name, "dim": model.dim, "eta": eta, "steps": steps, "n_ensemble": n, "n_loop": n_loop,
        "ensemble_seconds": t_ens, "loop_seconds": t_loop,
        "ensemble_init_steps_per_s": ens_rate, "loop_init_steps_per_s": loop_rate,
        "ratio": ens_rate / loop_rate,
    }


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer initialisations and steps")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    n, n_loop, steps, repeats = (256, 32, 100, 2) if args.quick else (2000, 100, 200, 3)
    cases = [
        (LogCoshProduct(), 0.125),
        (TwoLayerLinear(width=32, init_scale=(4.0, 5.5)), 0.1),
        (SingleNeuron(v_box=(6.5, 9.0)), 0.06),
        (UVModel(width=100, loss_type="logcosh"), 2.0),
    ]
    with jax.enable_x64(True):
        rows = [bench(m, eta, n, n_loop, steps, repeats) for m, eta in cases]
    print(f"GD ensembles, float64, {steps} steps; device {jax.devices()[0].platform}, "
          f"{platform.processor() or platform.machine()}; best of {repeats}")
    head = f"{'model':<18}{'dim':>5}{'vmap+scan inits*steps/s':>26}{'loop of scans inits*steps/s':>30}{'ratio':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:<18}{r['dim']:>5}{r['ensemble_init_steps_per_s']:>26.3g}"
              f"{r['loop_init_steps_per_s']:>30.3g}{r['ratio']:>8.0f}x")
    print(f"(ensemble: {n} inits in one call; loop: {n_loop} inits, one jitted scan each)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return rows


if __name__ == "__main__":
    main()
