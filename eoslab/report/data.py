"""What goes into a report: a results directory read into plain records.

:func:`collect` reads a results directory (``runs.db``, ``claims.json``,
``claims.md``, ``table.txt`` and the ``*.png`` figures; any of them may be
missing, but not both the run store and the claims) into a :class:`Report`.
The curves of the runs are built by :mod:`eoslab.report.curves`; the HTML by
:mod:`eoslab.report.page`.  Nothing here formats HTML.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from eoslab.errors import InputError
from eoslab.report.curves import METRICS, Curves, build_curves
from eoslab.store import DB_NAME, RunRecord, RunStore

CLAIMS_JSON = "claims.json"


@dataclasses.dataclass(frozen=True)
class ClaimRow:
    """One claim of ``claims.json``: ``mark`` is ``"pass"``, ``"fail"`` or ``"n/a"`` (holds true/false/null);
    ``criterion`` is the claim's criterion or detail, and for an n/a row the reason it was not tested."""
    mark: str
    claim: str
    quantity: str
    value: str
    criterion: str
    paper: str
    accuracy: str


@dataclasses.dataclass(frozen=True)
class RunRow:
    """One stored run as the page shows it (``step_size`` already formatted)."""
    id: int
    name: str
    status: str
    diverged_step: int | None
    error: str | None
    rule: str
    step_size: str
    seed: int | None
    group: str | None
    config: dict


@dataclasses.dataclass(frozen=True)
class Figure:
    """A PNG figure of the directory, embedded as a data URI."""
    name: str
    data_uri: str


@dataclasses.dataclass(frozen=True)
class Report:
    """Everything one report page shows.  ``claims`` is None without ``claims.json``; ``runs`` is None
    without ``runs.db``; ``claims_md`` is kept only when there is no ``claims.json`` to build the table from."""
    directory: Path
    quick: bool
    claims: list[ClaimRow] | None
    claims_md: str | None
    table: str | None
    figures: list[Figure]
    runs: list[RunRow] | None
    curves: Curves | None


def collect(results_dir: str | Path) -> Report:
    """Read ``results_dir`` into a :class:`Report`; a missing or empty directory is an :class:`InputError`."""
    root = Path(results_dir)
    if not root.exists():
        raise InputError(f"results directory {root} does not exist; pass a directory written by "
                         "`eoslab run` or `eoslab reproduce`.")
    if not root.is_dir():
        raise InputError(f"{root} is not a directory; pass the results directory that holds runs.db "
                         "or claims.json.")
    db, claims_path = root / DB_NAME, root / CLAIMS_JSON
    if not db.is_file() and not claims_path.is_file():
        raise InputError(f"{root} holds neither {DB_NAME} nor {CLAIMS_JSON}; pass a directory written by "
                         "`eoslab run` or `eoslab reproduce`.")
    raw_claims = read_claims(claims_path) if claims_path.is_file() else None
    runs, curves = read_runs(db) if db.is_file() else (None, None)
    return Report(
        directory=root,
        quick=bool(raw_claims) and any(c.get("quick") is True for c in raw_claims),
        claims=None if raw_claims is None else [claim_row(c) for c in raw_claims],
        claims_md=_text(root / "claims.md") if raw_claims is None else None,
        table=_text(root / "table.txt"),
        figures=read_figures(root),
        runs=runs,
        curves=curves,
    )


def read_claims(path: Path) -> list[dict]:
    """The list of claim objects of a ``claims.json`` (see :mod:`eoslab.experiments.claims`)."""
    try:
        claims = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} cannot be read as JSON ({type(exc).__name__}); rerun the reproduction "
                         "to write it again.") from None
    if not isinstance(claims, list) or not all(isinstance(c, dict) and "claim" in c for c in claims):
        raise InputError(f"{path} is not a list of claims (objects with a 'claim' field); rerun the "
                         "reproduction to write it again.")
    return claims


def claim_row(c: dict) -> ClaimRow:
    """A claim object as a table row: its mark from ``holds``, its criterion (or, when n/a, its reason)."""
    holds = c.get("holds")
    mark = "pass" if holds is True else "fail" if holds is False else "n/a"
    criterion = c.get("criterion") or c.get("detail") or ""
    if mark == "n/a":
        criterion = c.get("reason") or criterion or "not tested in this run"
    acc = c.get("accuracy")
    accuracy = ""
    if isinstance(acc, dict) and acc.get("used") is not None:
        accuracy = f"{acc['used']} eigenvalues, largest relative error estimate {_number(acc.get('max_rel_error'))}"
        if acc.get("unconverged"):
            accuracy += f"; {acc['unconverged']} unconverged left out"
    return ClaimRow(mark=mark, claim=str(c.get("claim", "")), quantity=str(c.get("quantity", "")),
                    value=format_value(c.get("value")), criterion=str(criterion), paper=str(c.get("paper") or ""),
                    accuracy=accuracy)


def format_value(x: Any) -> str:
    """A claim's value as text: numbers in 4 significant digits, dicts and lists element-wise, None as a dash."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, (int, float)):
        return _number(x)
    if isinstance(x, dict):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in x) + "]"
    return str(x)


def _number(x: Any) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return "—" if x is None else str(x)
    return str(x) if isinstance(x, int) else f"{x:.4g}"


def read_figures(root: Path) -> list[Figure]:
    """The directory's PNG figures by file name (PDFs, their print versions, are left out)."""
    return [Figure(p.name, "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii"))
            for p in sorted(root.glob("*.png")) if p.is_file()]


def read_runs(db: Path) -> tuple[list[RunRow], Curves]:
    """The runs of a run store as table rows, and the curves of their stored metrics."""
    with RunStore(db, create=False) as store:
        records = store.list_runs()
        metrics = {r.id: store.get_metrics(r.id, names=METRICS) for r in records}
    rows = [run_row(r, metrics[r.id]) for r in records]
    labels = {r.id: run_label(row) for r, row in zip(records, rows)}
    return rows, build_curves(records, metrics, labels)


def run_row(rec: RunRecord, metrics: dict) -> RunRow:
    """A stored run as a row: its rule and step size from the config (eta from the ``eta`` metric where stored)."""
    cfg = rec.config if isinstance(rec.config, dict) else {}
    opt = cfg.get("optimizer") if isinstance(cfg.get("optimizer"), dict) else {}
    return RunRow(id=rec.id, name=rec.name or "", status=rec.status, diverged_step=rec.diverged_step,
                  error=rec.error, rule=str(opt.get("name") or cfg.get("rule") or "—"),
                  step_size=step_size(cfg, opt, metrics), seed=rec.seed, group=rec.group, config=cfg)


def step_size(cfg: dict, opt: dict, metrics: dict) -> str:
    """The run's eta as text: the stored ``eta`` metric, else the config's ``optimizer.lr`` (or ``eta``);
    with ``lr_units = "1/lambda0"`` the config's constant c follows in brackets."""
    eta = None
    for name in ("eta", "lr"):
        if name in metrics:
            finite = [v for v in metrics[name][1].tolist() if math.isfinite(v)]
            if finite:
                eta = finite[0]
                break
    lr = opt.get("lr", cfg.get("eta"))
    relative = opt.get("lr_units") == "1/lambda0"
    if eta is None:
        return "—" if lr is None else (f"c={format_value(lr)}" if relative else format_value(lr))
    return f"{eta:.4g}" + (f" (c={format_value(lr)})" if relative and lr is not None else "")


def run_label(row: RunRow) -> str:
    """A run's legend entry: id, name, rule, step size and seed."""
    parts = [f"#{row.id}", row.name, row.rule if row.rule != "—" else "", f"η={row.step_size}"
             if row.step_size != "—" else "", f"seed {row.seed}" if row.seed is not None else ""]
    return " ".join(p for p in parts if p)


def _text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
