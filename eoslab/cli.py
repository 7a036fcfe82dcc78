"""The ``eoslab`` command line.

    eoslab demo [--results DIR] [--force]          (= reproduce eos --quick, into results/)
    eoslab run CONFIG.toml [--set key=value ...] [--results DIR] [--force]
    eoslab sweep GRID.toml [--results DIR] [--executor local|ray] [--address ADDR] [--workers N] [--force]
    eoslab runs [--results DIR] [--status S] [--name N]
    eoslab show RUN [--results DIR]
    eoslab plot RUN [RUN ...] [--results DIR] [--out FILE]
    eoslab export OUT.{csv,parquet} [--results DIR] [--runs ID ...]
    eoslab report [DIR] [--out FILE]
    eoslab compare DIR_A DIR_B
    eoslab reproduce NAME [--results DIR] [--quick] [--force]
    eoslab spectrum CONFIG.toml [--results DIR]      (curvature at initialisation)

Where results go: every command reads and writes one results directory,
named by ``--results DIR`` (``report`` and ``compare`` take it as an
argument), default ``results``: the run store ``DIR/runs.db`` and what the
command draws or writes.  The one exception is ``reproduce NAME``, whose
default is ``results/NAME``, so that papers do not overwrite each other's
claims.  ``--out`` always names a file.

The same command run again resumes an interrupted run under the same run ids
and reports a finished one instead of retraining it (``--force`` trains again
and replaces it).  Bad input (config, data files, run ids) prints one sentence
and exits with status 2 without writing anything; divergence during training
is a result (stored with its step), not an error.
"""
from __future__ import annotations

import os

# Small LAPACK calls inside the eigensolver contend badly with multi-threaded BLAS on few cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from eoslab.errors import InputError  # noqa: E402
from eoslab.experiments.base import REPRODUCTIONS  # noqa: E402


RESULTS_HELP = "results directory: its run store DIR/runs.db and what the command writes (default: results)"


def _results(parser, default: str | None = "results", help: str = RESULTS_HELP) -> None:
    parser.add_argument("--results", default=default, metavar="DIR", help=help)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eoslab", description="Curvature dynamics of neural-network training.",
        epilog="Every command reads and writes the results directory --results DIR (default results/; "
               "reproduce NAME: results/NAME). Running a command again resumes or reports what is stored; "
               "--force trains again.")
    sub = p.add_subparsers(dest="command", required=True)

    dm = sub.add_parser("demo", help="the edge-of-stability demo on digits (reproduce eos --quick) into results/")
    _results(dm)
    dm.add_argument("--force", action="store_true", help="train again even if the runs are stored")
    dm.add_argument("--no-progress", action="store_true")

    r = sub.add_parser("run", help="train a config (a list of step sizes trains an ensemble)")
    r.add_argument("config")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optimizer.lr=0.2 (repeatable)")
    _results(r)
    r.add_argument("--force", action="store_true", help="train again even if these runs are stored")
    r.add_argument("--no-progress", action="store_true")

    sw = sub.add_parser("sweep", help="run a grid of configs and seeds as vmapped batches (resumable)")
    sw.add_argument("grid", help="grid spec (TOML with [sweep], [base], [grid])")
    _results(sw)
    sw.add_argument("--executor", default="local", choices=["local", "ray"],
                    help="local: batches in this process; ray: batches on Ray workers")
    sw.add_argument("--address", default=None, help="Ray cluster address (default: start a local cluster)")
    sw.add_argument("--workers", type=int, default=None, help="CPUs of the local Ray cluster (default: all)")
    sw.add_argument("--retry-failed", action="store_true", help="run the points of failed runs again")
    sw.add_argument("--force", action="store_true", help="run every point again, replacing the sweep's runs")
    sw.add_argument("--no-progress", action="store_true")

    ls = sub.add_parser("runs", help="list stored runs")
    _results(ls)
    ls.add_argument("--status", choices=["running", "completed", "diverged", "failed"])
    ls.add_argument("--name")

    sh = sub.add_parser("show", help="config and final metrics of one run")
    sh.add_argument("run", type=int)
    _results(sh)

    pl = sub.add_parser("plot", help="Cohen-style loss and sharpness figure of stored runs")
    pl.add_argument("runs", type=int, nargs="+")
    _results(pl)
    pl.add_argument("--out", default=None, metavar="FILE",
                    help="figure file (PNG and PDF are written; default DIR/runs-<ids>.png)")

    ex = sub.add_parser("export", help="export runs and metrics to CSV or Parquet")
    ex.add_argument("out", help="OUT.csv or OUT.parquet (writes OUT_runs.* and OUT_metrics.*)")
    _results(ex)
    ex.add_argument("--runs", type=int, nargs="*", default=None)

    rr = sub.add_parser("report", help="one self-contained HTML page of a results directory: claims, figures, "
                                       "runs and their curves")
    rr.add_argument("dir", nargs="?", default="results", metavar="DIR", help="results directory (default: results)")
    rr.add_argument("--out", default=None, metavar="FILE", help="the page (default DIR/report.html)")

    cp = sub.add_parser("compare", help="compare the runs of two results directories metric by metric (exit 1 if "
                                       "they differ)")
    cp.add_argument("a", help="results directory (or runs.db) A")
    cp.add_argument("b", help="results directory (or runs.db) B")

    rp = sub.add_parser("reproduce", help="reproduce a paper's claims: figures, claims.md, claims.json")
    rp.add_argument("name", help=f"one of {', '.join(REPRODUCTIONS)}")
    _results(rp, None, "results directory (default: results/NAME)")
    rp.add_argument("--quick", action="store_true", help="the short version (minutes on a laptop CPU)")
    rp.add_argument("--force", action="store_true", help="train again even if the runs are stored")
    rp.add_argument("--no-progress", action="store_true")
    rp.add_argument("--executor", default="local", choices=["local", "ray"],
                    help="where the sweeps of a reproduction run (phases)")
    rp.add_argument("--address", default=None, help="Ray cluster address (default: start a local cluster)")
    rp.add_argument("--workers", type=int, default=None, help="CPUs of the local Ray cluster")

    sp = sub.add_parser("spectrum", help="top eigenvalues, trace and spectral density at initialisation")
    sp.add_argument("config")
    sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    _results(sp)
    sp.add_argument("--k", type=int, default=5)
    return p


def _open_store(results: str | Path):
    from eoslab.store import RunStore
    results = Path(results)
    db = results / "runs.db"
    if not db.is_file():
        found = sorted(str(d.parent) for d in results.glob("*/runs.db")) if results.is_dir() else []
        if found:
            raise InputError(f"no run store at {db}; the stores under {results} are in {', '.join(found)}: pass "
                             f"--results {found[0]}.")
        raise InputError(f"no run store at {db}; run `eoslab demo` or `eoslab run CONFIG` first, or pass "
                         f"--results DIR.")
    return RunStore(db, create=False)


def cmd_run(args) -> int:
    import numpy as np

    from eoslab.train import load_config, train
    cfg = load_config(args.config, args.overrides)
    result = train(cfg, results_dir=args.results, progress=not args.no_progress, force=args.force)
    for i, rid in enumerate(result.run_ids):
        s, lam = result.series(i, "sharpness")
        _, loss = result.series(i, "loss")
        extra = f", diverged at step {result.diverged_step[i]}" if result.status[i] == "diverged" else ""
        sharp = f", final sharpness {lam[-1]:.4g} (threshold {result.thresholds[i]:.4g})" if len(lam) else ""
        _, eff = result.series(i, "effective_sharpness")
        _, eta = result.series(i, "step_size")
        if cfg.optimizer.rule.tuner and len(eta):
            sharp = f", median step size {np.median(eta):.4g}"
            if len(eff):
                sharp += f", final η·λ1 {eff[-1]:.4g} (edge at 2), final sharpness {lam[-1]:.4g}"
        if cfg.optimizer.rule.adaptive and len(eff):
            sharp = (f", final effective sharpness λ1(P⁻¹H) {eff[-1]:.4g} (threshold {result.thresholds[i]:.4g}), "
                     f"raw sharpness {lam[-1]:.4g}")
        print(f"run {rid}: lr={result.lrs[i]:g} {result.status[i]}{extra}, final loss {loss[-1]:.4g}{sharp}")
    return 0


def cmd_sweep(args) -> int:
    from eoslab.sweep import load_grid, make_executor, run_sweep
    spec = load_grid(args.grid)
    spec.points()  # validate every point before starting an executor
    executor = make_executor(args.executor, address=args.address, num_workers=args.workers)
    try:
        summary = run_sweep(spec, results_dir=args.results, executor=executor, progress=not args.no_progress,
                            retry_failed=args.retry_failed, force=args.force)
    finally:
        executor.close()
    print(summary.line())
    return 0


def cmd_runs(args) -> int:
    with _open_store(args.results) as store:
        runs = store.list_runs(status=args.status, name=args.name)
        print(f"{'id':>4}  {'name':<20} {'status':<10} {'rule':<11} {'lr':>8} {'seed':>4}  created")
        for r in runs:
            opt = r.config.get("optimizer", {})
            print(f"{r.id:>4}  {str(r.name):<20} {r.status:<10} {opt.get('name', ''):<11} "
                  f"{opt.get('lr', ''):>8} {r.seed!s:>4}  {r.created_at}")
    return 0


def cmd_show(args) -> int:
    with _open_store(args.results) as store:
        r = store.get_run(args.run)
        print(f"run {r.id}: {r.name} [{r.status}]" + (f", diverged at step {r.diverged_step}"
                                                      if r.diverged_step is not None else ""))
        items = sorted(r.config.items(), key=lambda kv: isinstance(kv[1], dict))  # top-level keys first
        for key, value in items:  # one line per config section, in the TOML's own keys
            if isinstance(value, dict):
                ordered = sorted(value.items(), key=lambda kv: kv[0] != "name")  # its name first
                print(f"  [{key}] " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in ordered))
            else:
                print(f"  {key} = {json.dumps(value)}")
        metrics = sorted(store.get_metrics(r.id).items())
        width = max((len(name) for name, _ in metrics), default=0)
        print(f"  {'metric':<{width}}  {'points':>6}  {'last step':>9}  last value")
        for name, (steps, values) in metrics:
            print(f"  {name:<{width}}  {len(steps):>6}  {int(steps[-1]):>9}  {values[-1]:.6g}")
    return 0


def cmd_plot(args) -> int:
    from eoslab.plots import plot_curvature_runs, runs_from_store, save_figure
    with _open_store(args.results) as store:
        runs = runs_from_store(store, args.runs)
        loss_name = store.get_run(args.runs[0]).config.get("loss", {}).get("name", "mse")
    out = args.out or str(Path(args.results) / f"runs-{'-'.join(map(str, args.runs))}.png")
    paths = save_figure(plot_curvature_runs(runs, loss_name=loss_name), out)
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def cmd_compare(args) -> int:
    from eoslab.store.compare import compare_stores
    stores = []
    try:
        for where in (args.a, args.b):
            path = Path(where)
            stores.append(_open_store(path.parent if path.name == "runs.db" else path))
        result = compare_stores(*stores)
    finally:
        for s in stores:
            s.close()
    print("\n".join(result.lines()))
    return 0 if result.identical else 1


def cmd_export(args) -> int:
    from eoslab.store import export
    _open_store(args.results).close()
    paths = export(Path(args.results) / "runs.db", args.out, run_ids=args.runs)
    print("wrote " + ", ".join(map(str, paths if isinstance(paths, (list, tuple)) else [paths])))
    return 0


def cmd_reproduce(args, name: str | None = None, quick: bool | None = None) -> int:
    from eoslab.experiments.base import get_reproduction
    name = name or args.name
    reproduction = get_reproduction(name)
    out = Path(args.results or f"results/{name}")
    quick = args.quick if quick is None else quick
    executor_name = getattr(args, "executor", "local")
    if executor_name != "local" and not reproduction.sweeps:
        raise InputError(f"reproduction {name!r} runs no sweep; drop --executor.")
    executor = None
    if reproduction.sweeps:
        from eoslab.sweep import make_executor
        executor = make_executor(executor_name, address=getattr(args, "address", None),
                                 num_workers=getattr(args, "workers", None))
    try:
        claims = reproduction.run(out, quick=quick, progress=not args.no_progress, executor=executor,
                                  force=args.force)
    finally:
        if executor is not None:
            executor.close()
    table = out / "table.txt"
    if table.is_file():
        print(table.read_text())
    from eoslab.experiments.claims import format_value
    for c in claims:
        mark = {True: "holds", False: "DOES NOT HOLD", None: "n/a"}[c.holds]
        print(f"[{mark:>13}] {c.claim} {c.quantity.split(':')[0]} = {format_value(c.value)}")
    print(f"wrote {out}/claims.md, {out}/claims.json and figures; the runs: eoslab runs --results {out}; "
          f"one page: eoslab report {out}")
    return 0


def cmd_spectrum(args) -> int:
    import jax

    from eoslab.curvature import hutchpp_trace, plot_spectral_density, spectral_density, top_eigenpairs
    from eoslab.plots import save_figure
    from eoslab.train import build_problem, load_config
    cfg = load_config(args.config, args.overrides)
    prob = build_problem(cfg)
    params = prob.model.init(jax.random.PRNGKey(cfg.seed))
    loss_fn = prob.sharpness_loss
    top = top_eigenpairs(loss_fn, params, args.k)
    bottom = top_eigenpairs(loss_fn, params, 1, which="smallest")
    trace = hutchpp_trace(loss_fn, params, 99)
    dens = spectral_density(loss_fn, params, num_steps=80, num_vectors=8)
    out = Path(args.results)
    ax = plot_spectral_density(dens)
    paths = save_figure(ax.figure, out / "spectral_density")  # the spectrum is a figure, not a run
    print(f"{cfg.model.name} {list(cfg.model.widths)} on {cfg.data.name}, loss {cfg.loss.name}, at initialisation")
    print(f"top {args.k} eigenvalues: " + ", ".join(f"{v:.5g}" for v in top.eigenvalues)
          + f"  ({int(top.num_hvps)} HVPs, error estimate {float(top.errors.max()):.2g}, "
            f"residual bound {float(top.residuals.max()):.2g}" + ("" if bool(top.converged) else ", NOT CONVERGED") + ")")
    print(f"most negative eigenvalue: {float(bottom.eigenvalues[0]):.5g}"
          + f"  (error estimate {float(bottom.errors[0]):.2g}" + ("" if bool(bottom.converged) else ", NOT CONVERGED") + ")")
    print(f"trace (Hutch++, 99 HVPs): {float(trace.value):.5g} ± {float(trace.stderr):.2g}")
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def cmd_report(args) -> int:
    from eoslab.report import write_report
    print(f"wrote {write_report(args.dir, args.out)}")
    return 0


NO_JAX = {"runs", "show", "export", "compare", "report"}  # commands that compile nothing


def use_compilation_cache() -> Path | None:
    """Keep compiled XLA programs on disk, so the same command run again starts without compiling.

    The cache is ``$EOSLAB_CACHE_DIR`` (default ``~/.cache/eoslab/jax``);
    ``EOSLAB_CACHE_DIR=""`` turns it off, and a cache JAX is already given
    (``JAX_COMPILATION_CACHE_DIR``) is left as it is.  Programs that compiled
    in under half a second are not kept.  Returns the directory, or None when
    off or not writable.  Cached programs compute the same values.
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    where = os.environ.get("EOSLAB_CACHE_DIR", str(Path.home() / ".cache" / "eoslab" / "jax"))
    if not where:
        return None
    path = Path(where).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    import jax
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command not in NO_JAX:
        use_compilation_cache()
    commands = {"run": cmd_run, "sweep": cmd_sweep, "runs": cmd_runs, "show": cmd_show, "plot": cmd_plot,
                "export": cmd_export, "compare": cmd_compare, "report": cmd_report,
                "reproduce": cmd_reproduce, "spectrum": cmd_spectrum,
                "demo": lambda a: cmd_reproduce(a, name="eos", quick=True)}
    try:
        return commands[args.command](args)
    except InputError as e:
        print(f"eoslab: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the output piped into a command that stopped reading (head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
