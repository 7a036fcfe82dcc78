"""pandas views of a run store and export to CSV / Parquet."""
from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from eoslab.errors import InputError
from eoslab.store.runs import DB_NAME, EXPORT_FORMATS, RunRecord, RunStore, _check_statuses
from eoslab.store.validate import _as_list


def _flatten(d: Mapping, prefix: str, out: dict) -> dict:
    for key, value in d.items():
        column = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            _flatten(value, column, out)
        elif isinstance(value, list):
            out[column] = json.dumps(value, separators=(",", ":"), sort_keys=True)
        else:
            out[column] = value
    return out


_BASE_COLUMNS = ("run_id", "name", "group", "seed", "status", "diverged_step", "error",
                 "config_hash", "created_at", "updated_at")


def _open(path_or_store: "RunStore | str | os.PathLike") -> tuple[RunStore, bool]:
    if isinstance(path_or_store, RunStore):
        return path_or_store, False
    path = Path(path_or_store)
    if path.is_dir():
        path = path / DB_NAME
    return RunStore(path, create=False), True


def _runs_frame(rows: list[tuple]):
    import pandas as pd

    records = []
    for row in rows:
        rec = RunRecord._from_row(row)
        base = {
            "run_id": rec.id, "name": rec.name, "group": rec.group, "seed": rec.seed,
            "status": rec.status, "diverged_step": rec.diverged_step, "error": rec.error,
            "config_hash": rec.config_hash, "created_at": row[9], "updated_at": row[10],
        }
        _flatten(rec.config, "config", base)
        _flatten(rec.versions, "versions", base)
        records.append(base)
    df = pd.DataFrame.from_records(records, columns=None if records else list(_BASE_COLUMNS))
    config_columns = sorted(c for c in df.columns if c.startswith("config."))
    version_columns = sorted(c for c in df.columns if c.startswith("versions."))
    df = df[list(_BASE_COLUMNS) + config_columns + version_columns]
    df["run_id"] = df["run_id"].astype(np.int64)
    for column in ("name", "group", "status", "error", "config_hash"):
        df[column] = pd.Series(df[column].tolist(), index=df.index, dtype="str")
    for column in ("seed", "diverged_step"):
        df[column] = pd.array(df[column].tolist(), dtype="Int64")
    for column in ("created_at", "updated_at"):
        df[column] = pd.to_datetime(df[column], format="ISO8601", utc=True)
    for column in df.columns:
        if column.startswith(("config.", "versions.")) and df[column].dtype == object:
            present = [v for v in df[column].tolist() if v is not None
                       and not (isinstance(v, float) and math.isnan(v))]
            if not present:
                continue
            if all(isinstance(v, bool) for v in present):
                df[column] = pd.array(df[column].tolist(), dtype="boolean")
            elif all(isinstance(v, int) and not isinstance(v, bool) for v in present):
                df[column] = pd.array(df[column].tolist(), dtype="Int64")
        elif column.startswith("config.") and df[column].dtype.kind == "f":
            # A float column may be integers with gaps: keep them integers.
            raw = [r.get(column) for r in records]
            if all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in raw):
                df[column] = pd.array(raw, dtype="Int64")
    return df


def load_runs(path_or_store: "RunStore | str | os.PathLike", *, run_ids=None, names=None,
              status=None, group=None, metric_names=None):
    """Load runs and metrics as pandas DataFrames ``(runs_df, metrics_df)``.

    ``path_or_store``: a :class:`RunStore`, a ``runs.db`` path or a results
    directory.  Filters (each a value or a list): ``run_ids``, ``names`` (run
    names), ``status``, ``group``; ``metric_names`` limits the metrics loaded.

    ``runs_df`` has one row per run: ``run_id, name, group, seed, status,
    diverged_step, error, config_hash, created_at, updated_at``, then the
    config flattened to dotted columns (``config.model.name``; lists as JSON
    text) and ``versions.<package>``.  ``metrics_df`` is long:
    ``run_id, step, name, value`` (NaN where NaN or NULL was stored).
    """
    import pandas as pd

    statuses = _as_list(status)
    _check_statuses(statuses)
    wanted_metrics = _as_list(metric_names)
    store, owned = _open(path_or_store)
    try:
        with store._read() as conn:
            rows = store._select_runs(conn, run_ids=run_ids, status=statuses,
                                      name=names, group=group)
            filtered = any(v is not None for v in (run_ids, names, statuses, group))
            ids = [r[0] for r in rows] if filtered else None
            run_col, step_col, name_col, values = store._metric_table(conn, ids, wanted_metrics)
    finally:
        if owned:
            store.close()
    runs_df = _runs_frame(rows)
    metrics_df = pd.DataFrame({
        "run_id": run_col, "step": step_col,
        "name": pd.Series(name_col, dtype="str"), "value": values,
    })
    return runs_df, metrics_df


def metrics_wide(metrics_df):
    """Pivot long metrics to one row per ``(run_id, step)`` and one column per metric.

    Missing (run, step, metric) cells are NaN, as are logged NaNs.
    """
    missing = {"run_id", "step", "name", "value"} - set(metrics_df.columns)
    if missing:
        raise InputError(
            f"metrics table lacks columns {sorted(missing)}; pass the metrics_df from load_runs."
        )
    wide = metrics_df.pivot(index=["run_id", "step"], columns="name", values="value")
    wide.columns = list(wide.columns)
    return wide.sort_index()


def _arrow_safe(df):
    """Make object columns Parquet-writable: mixed-type columns become text."""
    import pyarrow as pa

    df = df.copy()
    for column in df.columns:
        if df[column].dtype == object:
            try:
                pa.array(df[column], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                df[column] = df[column].map(
                    lambda v: v if v is None or isinstance(v, str) else json.dumps(v)
                )
    return df


def _export_paths(out_path: str | os.PathLike, format: str | None) -> tuple[str, Path, Path]:
    out = Path(out_path)
    by_suffix = {suffix: fmt for fmt, suffix in EXPORT_FORMATS.items()}
    if format is None:
        format = by_suffix.get(out.suffix.lower())
        if format is None:
            raise InputError(
                f"cannot tell the export format of {out} from its suffix {out.suffix!r}; "
                f"name the file with one of {', '.join(EXPORT_FORMATS.values())} "
                f"(Python: export(..., format=one of {', '.join(repr(f) for f in EXPORT_FORMATS)}))."
            )
    fmt = str(format).lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise InputError(
            f"unknown export format {format!r}; use one of "
            f"{', '.join(repr(f) for f in EXPORT_FORMATS)}."
        )
    stem = out.stem if out.suffix.lower() in by_suffix else out.name
    suffix = EXPORT_FORMATS[fmt]
    return fmt, out.with_name(f"{stem}_runs{suffix}"), out.with_name(f"{stem}_metrics{suffix}")


def export(store_or_path: "RunStore | str | os.PathLike", out_path: str | os.PathLike, *,
           format: str | None = None, run_ids=None) -> tuple[Path, Path]:
    """Write runs and metrics to ``<stem>_runs.<ext>`` and ``<stem>_metrics.<ext>``.

    ``format`` is ``'csv'`` or ``'parquet'``, by default from the suffix of
    ``out_path``.  Tables are those of :func:`load_runs`; each file is written
    to a temporary name and renamed, so a crash leaves no half-written file.
    Returns the two paths.  Floats are written by ``repr`` and read back
    exactly by ``pd.read_csv``; NaN is an empty cell, infinities ``inf``.
    """
    fmt, runs_path, metrics_path = _export_paths(out_path, format)
    runs_df, metrics_df = load_runs(store_or_path, run_ids=run_ids)
    runs_path.parent.mkdir(parents=True, exist_ok=True)
    for df, path in ((runs_df, runs_path), (metrics_df, metrics_path)):
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            if fmt == "csv":
                df.to_csv(tmp, index=False)
            else:
                _arrow_safe(df).to_parquet(tmp, index=False)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return runs_path, metrics_path
