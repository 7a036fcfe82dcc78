"""eoslab.torch against PyHessian's power iteration on the same PyTorch model: HVPs, wall time, error.

Setting: digits (``--n-train`` examples, flattened), a ``torch.nn`` MLP (tanh,
two hidden layers of ``--width``), MSE (1/2 sum over outputs, mean over
examples), float64, at ``--points`` points of a full-batch Adam run (steps
0, 100, 200, ...), each with ``--seeds`` start vectors.  The reference top
eigenvalue is ``eoslab.torch.top_eigenpairs`` at tol 1e-12 (its residual
bound is printed: it certifies the reference).  In one run, side by side:

* ``eoslab.torch``, tol 1e-4 (its certified stop: error estimate <= 1e-4 relative);
* PyHessian ``hessian(...).eigenvalues()`` at its default stop (relative
  change of two consecutive estimates < 1e-3, at most 100 iterations);
* PyHessian's power iteration with an *oracle* stop: the first iterate whose
  estimate is within 1e-4 of the reference (what it would cost to reach
  eoslab's accuracy if one knew when to stop), up to 1000 iterations.

HVPs are counted exactly (PyHessian's product is wrapped); wall times are
per solve, median over the solves; ratios are printed.  PyHessian is
installed by the ``bench`` extra (``pip install -e '.[bench]'``).

    cd /work/main && .venv/bin/python benchmarks/torch_vs_pyhessian.py [--quick] [--json PATH] [--threads N]
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

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.func import functional_call  # noqa: E402

import eoslab.torch as et  # noqa: E402
from eoslab.data import load_dataset  # noqa: E402


def main(argv=None) -> dict:
    ap = benchmark_parser(__doc__.splitlines()[0], quick_help="2 points x 2 seeds",
                          threads_help="cores to pin to (default 1)")
    ap.add_argument("--points", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--n-train", type=int, default=1000)
    args = ap.parse_args(argv)
    if args.quick:
        args.points, args.seeds = 2, 2
    import pyhessian
    ph_module = sys.modules["pyhessian.hessian"]

    torch.set_num_threads(len(CORES))
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    data = load_dataset("digits", n_train=args.n_train, flatten=True)
    x, y = torch.as_tensor(data.x_train, dtype=torch.float64), torch.as_tensor(data.y_train, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], args.width), torch.nn.Tanh(),
                                torch.nn.Linear(args.width, args.width), torch.nn.Tanh(),
                                torch.nn.Linear(args.width, 10))
    criterion = lambda out, target: 0.5 * ((out - target) ** 2).sum(-1).mean()  # noqa: E731
    loss_fn = lambda p: criterion(functional_call(model, p, (x,)), y)  # noqa: E731
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    calls = {"n": 0, "trace": []}
    original = ph_module.hessian_vector_product

    def counted(gradsH, params, v):
        hv = original(gradsH, params, v)
        calls["n"] += 1
        calls["trace"].append((time.perf_counter(), float(sum((a * b).sum() for a, b in zip(hv, v)))))
        return hv

    ph_module.hessian_vector_product = counted
    rows = []
    for point in range(args.points):
        if point:
            for _ in range(100):
                opt.zero_grad()
                loss_fn(dict(model.named_parameters())).backward()
                opt.step()
        params = {n: p.detach() for n, p in model.named_parameters()}
        ref = et.top_eigenpairs(loss_fn, params, k=1, tol=1e-12, max_hvps=400)
        lam = float(ref.eigenvalues[0])
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            ours = et.top_eigenpairs(loss_fn, params, k=1, tol=1e-4, seed=seed)
            t_ours = time.perf_counter() - t0
            torch.manual_seed(seed)
            comp = pyhessian.hessian(model, criterion, data=(x, y), cuda=False)
            calls["n"], calls["trace"] = 0, []
            t0 = time.perf_counter()
            ph_val = comp.eigenvalues()[0][0]
            t_ph, n_ph = time.perf_counter() - t0, calls["n"]
            torch.manual_seed(seed)
            calls["n"], calls["trace"] = 0, []
            t0 = time.perf_counter()
            comp.eigenvalues(maxIter=1000, tol=0.0)
            hit = next((i for i, (_, e) in enumerate(calls["trace"]) if abs(e - lam) <= 1e-4 * abs(lam)), None)
            oracle_n = None if hit is None else hit + 1
            oracle_t = None if hit is None else calls["trace"][hit][0] - t0
            rows.append(dict(point=point, seed=seed, reference=lam, reference_residual=float(ref.residuals[0]),
                             ours_hvps=ours.num_hvps, ours_seconds=t_ours,
                             ours_error=abs(float(ours.eigenvalues[0]) - lam) / lam, ours_converged=ours.converged,
                             ph_hvps=n_ph, ph_seconds=t_ph, ph_error=abs(ph_val - lam) / lam,
                             oracle_hvps=oracle_n, oracle_seconds=oracle_t))
    ph_module.hessian_vector_product = original

    med = lambda key: float(np.median([r[key] for r in rows if r[key] is not None]))  # noqa: E731
    mx = lambda key: float(np.max([r[key] for r in rows if r[key] is not None]))  # noqa: E731
    dim = sum(p.numel() for p in model.parameters())
    print(f"machine    {machine_line(CORES)}")
    print(f"setting    digits {args.n_train}, torch MLP tanh [{args.width}, {args.width}] ({dim} parameters), MSE, "
          f"float64; {args.points} points of an Adam run x {args.seeds} start vectors; reference: eoslab.torch "
          f"tol 1e-12 (largest residual {mx('reference_residual'):.1e})")
    print(f"{'method':<44}{'HVPs median / max':>20}{'wall s median':>15}{'rel. error median / max':>26}")
    print(f"{'eoslab.torch, tol 1e-4 (certified stop)':<44}{med('ours_hvps'):>11.0f} / {mx('ours_hvps'):<6.0f}"
          f"{med('ours_seconds'):>15.3f}{med('ours_error'):>15.1e} / {mx('ours_error'):.1e}")
    print(f"{'PyHessian, its default stop (tol 1e-3)':<44}{med('ph_hvps'):>11.0f} / {mx('ph_hvps'):<6.0f}"
          f"{med('ph_seconds'):>15.3f}{med('ph_error'):>15.1e} / {mx('ph_error'):.1e}")
    missed = sum(r["oracle_hvps"] is None for r in rows)
    print(f"{'PyHessian power iteration, oracle stop 1e-4':<44}{med('oracle_hvps'):>11.0f} / {mx('oracle_hvps'):<6.0f}"
          f"{med('oracle_seconds'):>15.3f}{'(1e-4 by construction)':>26}"
          + (f"  [{missed} of {len(rows)} never within 1e-4 in 1000 iterations]" if missed else ""))
    print(f"ratios (median): PyHessian default / eoslab: {med('ph_hvps') / med('ours_hvps'):.2f}x HVPs, "
          f"{med('ph_seconds') / med('ours_seconds'):.2f}x wall; oracle 1e-4 / eoslab 1e-4: "
          f"{med('oracle_hvps') / med('ours_hvps'):.2f}x HVPs, {med('oracle_seconds') / med('ours_seconds'):.2f}x wall")
    results = {"rows": rows, "conditions": vars(args) | {"dim": dim, "cores": CORES}}
    if args.json:
        write_json(Path(args.json), results)
    return results


if __name__ == "__main__":
    main()
