"""The central flow's cost per unit of flow time against the discrete run, and how it grows with k.

One problem (the eos recipe's fc-tanh [200, 200] on the first 300 digits, MSE, float64, GD at eta = 0.3),
run once past the edge; then, from the same point at the edge, each variant for the same number of units:

* the discrete run (one step per unit, lambda_1(P^-1 H) tracked at every step, k = 1);
* the central flow with k = 1, 2, 3, 4 eigenvectors held fixed (k_max = k), measuring the curvature at every
  Euler substep (``refresh="substep"``), and once per unit with the third derivatives every 1 or 3 units
  (``refresh="unit"``, ``third_every``); the latter with how far their trajectories and predicted losses
  are from the per-substep flow's.

Printed: Hessian-vector products and third-derivative products per unit of flow time (exact counts), wall
time per unit, and wall time as a ratio to the discrete run's per step, in one run on the same machine.
Wall times are steady-state: (time of 2u units - time of u units) / u, so the cold eigensolve at the start
of every run drops out; a first run of 2u units compiles every substep count the timed runs meet (the
trajectories are deterministic), so no compilation is timed.
The reference implementation's figures (issue 16, its own 9k-parameter MLP): about 700 HVPs and 60
third-derivative products per unit, 1.6-1.9 s per unit.

    PYTHONPATH=. .venv/bin/python benchmarks/central_flow_cost.py [--units 20] [--warmup 150] [--n-train 300] [--ks 1,2,3,4]

``--rule heavy-ball --eta 0.2`` or ``--rule adam --eta 1e-3`` measures the momentum flows the same way.  Use
``--start central --warmup 250``: the warm-up then follows the central flow itself, and every variant starts
from its parameters and flow state, on the edge.  (From a discrete run's parameters past the edge, with a fresh
flow state, a momentum flow is projected by one impulse in its first substep that carries it below the edge,
where every variant is the same flow.)

``--widths 64,64 --n-train 1000 --eta auto`` is the reference's own problem: its tanh MLP 64-64-64-10 (64
inputs, two hidden layers of 64, 10 outputs: 9k parameters) on 1000 standardised digits, MSE, GD at
eta = 1 / lambda_0, the top Hessian eigenvalue at initialisation.
"""
from __future__ import annotations

import argparse
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from eoslab.experiments.central_flows import _problem  # noqa: E402
from eoslab.flows import CentralFlow, DiscreteRun, dynamics_for  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=150, help="optimizer steps (--start central: units of central flow) before measuring")
    ap.add_argument("--n-train", type=int, default=300)
    ap.add_argument("--ks", default="1,2,3,4")
    ap.add_argument("--widths", default="200,200", help="hidden widths of the eos recipe's fc-tanh")
    ap.add_argument("--eta", default="0.3", help="the step size, or 'auto': 1 / lambda_0 (the reference's)")
    ap.add_argument("--rule", default="gd", help="gd, rmsprop, heavy-ball or adam (their default hyper-parameters)")
    ap.add_argument("--start", default="discrete", choices=("discrete", "central"),
                    help="warm up with the discrete optimizer, or along the central flow (its state carried)")
    args = ap.parse_args(argv)
    _, params, loss = _problem(args.n_train, [f"model.widths=[{args.widths}]"])
    if args.eta == "auto":
        from eoslab.curvature import sharpness
        eta = 1.0 / float(sharpness(loss, params, tol=1e-8))
    else:
        eta = float(args.eta)
    dyn = dynamics_for(args.rule, eta)
    from jax.flatten_util import ravel_pytree
    theta, unravel = ravel_pytree(params)
    grad = jax.jit(jax.grad(lambda v: loss(unravel(v))))
    lossp = lambda p: loss(p["p"])  # noqa: E731
    flow_state = None  # the flows' own flow_init
    if args.start == "discrete":
        step = jax.jit(dyn.update)
        s = dyn.init(theta, grad(theta))
        for _ in range(args.warmup):
            theta, s = step(theta, s, grad(theta))
    else:  # along the (per-unit) central flow itself, to a point where it is held at the edge
        warm = CentralFlow(lossp, dyn, k=2, k_max=2, tol=1e-4).run({"p": unravel(theta)}, args.warmup)
        theta, flow_state = warm.thetas[-1], warm.state
        print(f"start: the central flow at t = {args.warmup}, lambda_1(P^-1 H) / c = "
              f"{warm.points[-1].eigenvalues[0] / dyn.threshold:.4f}, X_11 = {warm.points[-1].X[0, 0]:.3g}")
    start = {"p": unravel(theta)}
    rows = []

    def steady(runner):
        """Steady-state seconds per unit, and the trajectory of 2u units."""
        state = None if isinstance(runner, DiscreteRun) else flow_state
        runner.run(start, 2 * args.units, state=state)  # compile every substep count the timed runs meet
        t0 = time.perf_counter()
        runner.run(start, args.units, state=state)
        t1 = time.perf_counter()
        traj = runner.run(start, 2 * args.units, state=state)
        t2 = time.perf_counter()
        return ((t2 - t1) - (t1 - t0)) / args.units, traj

    def off(traj, ref):
        """How far a variant's trajectory ends from the per-substep flow's, relative to how far that one moved."""
        a, b = np.asarray(traj.thetas), np.asarray(ref.thetas)
        moved = np.linalg.norm(b[-1] - b[0])
        loss_err = np.abs(traj.series("predicted_loss") / ref.series("predicted_loss") - 1)
        return np.linalg.norm(a[-1] - b[-1]) / moved, np.median(loss_err), np.max(loss_err)

    disc, d = steady(DiscreteRun(lossp, dyn, k=1, tol=1e-4))
    rows.append(("discrete, k = 1", np.mean(d.series("hvps")[1:]), 0.0, disc, None))
    for k in (int(x) for x in args.ks.split(",")):
        wall, ref = steady(CentralFlow(lossp, dyn, k=k, k_max=k, tol=1e-4, refresh="substep"))
        rows.append((f"k = {k}, per substep", np.mean(ref.series("hvps")[1:]), np.mean(ref.series("third")[1:]),
                     wall, (0.0, 0.0, 0.0)))
        for every in (1, 3):
            wall, c = steady(CentralFlow(lossp, dyn, k=k, k_max=k, tol=1e-4, refresh="unit", third_every=every))
            rows.append((f"k = {k}, per unit, D every {every}", np.mean(c.series("hvps")[1:]),
                         np.mean(c.series("third")[1:]), wall, off(c, ref)))
    print(f"fc-tanh [{args.widths}], {dyn.name} eta = {dyn.eta:.4g} on {args.n_train} digits, from t = {args.warmup} "
          f"of the {args.start} run (past the edge), {2 * args.units} units")
    print(f"{'central flow variant':<30}{'HVPs/unit':>10}{'third/unit':>11}{'s/unit':>8}{'x discrete':>11}"
          f"{'theta off':>11}{'pred. loss off: median':>24}{'max':>9}")
    for name, hv, th, wall, err in rows:
        tail = "" if err is None else f"{err[0]:>11.1e}{err[1]:>24.1e}{err[2]:>9.1e}"
        print(f"{name:<30}{hv:>10.1f}{th:>11.1f}{wall:>8.3f}{wall / disc:>11.1f}{tail}")
    print("theta off: ||theta - theta_substep|| / ||theta_substep(T) - theta(0)|| at the end; pred. loss off: "
          "relative difference of L + 1/2<H, Sigma> from the per-substep flow's, median and max over the units")
    print("reference (its own MLP): about 700 HVPs and 60 third-derivative products per unit")


if __name__ == "__main__":
    main()
