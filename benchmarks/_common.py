"""Helpers shared by the benchmark scripts (no JAX import here: cores are pinned before JAX starts)."""
from __future__ import annotations

import os
from pathlib import Path


def threads_from_argv(argv: list[str], default: int = 1) -> int:
    """``--threads N`` read before JAX starts (its thread pool is fixed when the backend starts)."""
    for i, arg in enumerate(argv):
        try:
            if arg == "--threads" and i + 1 < len(argv):
                return max(1, int(argv[i + 1]))
            if arg.startswith("--threads="):
                return max(1, int(arg.split("=", 1)[1]))
        except ValueError:
            return default  # argparse reports the bad value
    return default


def limit_cores(n: int) -> list[int]:
    """Pin this process, and every thread it starts later, to ``n`` of its allowed cores.

    JAX has no setting for its CPU thread count (XLA sizes its pool from the
    cores the process may use), so the affinity mask is what limits both sides.
    """
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: leave it
        return list(range(os.cpu_count() or 1))
    if n < len(allowed):
        os.sched_setaffinity(0, allowed[:n])
    return sorted(os.sched_getaffinity(0))


def code_version() -> str:
    """The eoslab checkout this ran on: commit, and the library files changed since it."""
    import subprocess
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "eoslab"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"git {sha}" + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


def benchmark_parser(description: str, quick_help: str | None = None, threads_help: str | None = None,
                     threads_default: int = 1):
    """The options the benchmarks share: ``--quick``, ``--json PATH`` and, with ``threads_help``, ``--threads N``.

    ``--threads`` is read before JAX starts (:func:`threads_from_argv`); it is parsed here too so that
    ``--help`` shows it and a bad value is reported.  Each script adds its own options.
    """
    import argparse
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    if threads_help is not None:
        parser.add_argument("--threads", type=int, default=threads_default, help=threads_help)
    return parser


def machine_line(cores: list[int]) -> str:
    """One line naming what ran: the eoslab checkout, the JAX version, the processor and the cores used."""
    import platform

    import jax
    return (f"eoslab {code_version()} | jax {jax.__version__} | {platform.processor() or platform.machine()} "
            f"| {len(cores)} core(s)")


def write_json(path: Path, results: dict) -> None:
    """Write ``results`` to ``path`` as JSON (non-finite numbers as null; folders made) and say so."""
    import json

    from eoslab.jsonable import jsonable
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(results, nonfinite="null"), indent=1))
    print(f"wrote {path}")


def hvp_chain(loss_fn, params, v, m: int):
    """``m`` Hessian-vector products in a chain, v <- H v / 10, on one linearisation of the gradient at ``params``.

    The micro-timing of a linearisation plus m HVPs (1 and 11 give the cost of an HVP by difference); the
    factor 1/10 keeps the chain bounded.  Call it under ``jax.jit``.
    """
    import jax

    from eoslab.curvature import flat_operator
    op = flat_operator(loss_fn, params)
    return jax.lax.fori_loop(0, m, lambda i, x: op.matvec(x) / 10.0, v)
