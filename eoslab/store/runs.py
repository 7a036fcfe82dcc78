"""SQLite run store: configs, status and metric series of training runs.

One SQLite file (``runs.db`` in a results directory) holds every run of a
project.  A run is a config (any JSON-like dict), an optional seed, name and
group, a status and its metric series ``(step, name, value)``.

Guarantees

- Every write is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``): a call
  that raises, or a process killed mid-call, leaves nothing of that call.
- A run is ``'completed'`` (or ``'diverged'``/``'failed'``) only once
  :meth:`RunStore.finish_run` has committed; a crashed run stays ``'running'``.
- The journal is WAL with a busy timeout, so a sweep driver and readers
  (notebooks, ``eoslab`` commands) can use the same file from several
  processes at once.  ``synchronous=NORMAL``: a committed write survives a
  process crash; a power loss may undo the last commits but never corrupts.

Metric values are stored as SQLite ``REAL``.  ``inf`` and ``-inf`` are kept
as they are; SQLite cannot store NaN and turns it into NULL, which reads back
as NaN.  So NaN round-trips, and a ``None`` value is read back as NaN too.

Runs are found again by their config hash (:mod:`eoslab.store.hashing`) and
seed.  This module is one class whose methods are the store's transactions,
with its schema and record type, which is why it is longer than the others.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import itertools
import json
import operator
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from eoslab.errors import InputError
from eoslab.store.hashing import canonical_json, config_hash
from eoslab.store.validate import _as_list, _metric_rows, _optional_int, _optional_str, _run_id
from eoslab.store.versions import software_versions


DB_NAME = "runs.db"
SCHEMA_VERSION = 1
STATUSES = ("running", "completed", "diverged", "failed")
FINAL_STATUSES = ("completed", "diverged", "failed")
EXPORT_FORMATS = {"csv": ".csv", "parquet": ".parquet"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    name TEXT,
    config_json TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    seed INTEGER,
    status TEXT NOT NULL
        CHECK (status IN ('running', 'completed', 'diverged', 'failed')),
    diverged_step INTEGER,
    error TEXT,
    versions_json TEXT,
    created_at TEXT,
    updated_at TEXT,
    group_name TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_hash ON runs (config_hash, seed);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name);
CREATE INDEX IF NOT EXISTS runs_by_group ON runs (group_name);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, step, name)
) WITHOUT ROWID;
"""

_RUN_COLUMNS = (
    "id, name, config_json, config_hash, seed, status, diverged_step, error, "
    "versions_json, created_at, updated_at, group_name"
)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def _check_statuses(statuses: list | None) -> None:
    for s in statuses or ():
        if s not in STATUSES:
            raise InputError(f"unknown run status {s!r}; use one of {', '.join(STATUSES)}.")


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One stored run; ``config`` and ``versions`` are plain dicts, times are UTC."""

    id: int
    name: str | None
    config: dict
    config_hash: str
    seed: int | None
    status: str
    diverged_step: int | None
    error: str | None
    versions: dict
    created_at: _dt.datetime | None
    updated_at: _dt.datetime | None
    group: str | None

    @classmethod
    def _from_row(cls, row: tuple) -> "RunRecord":
        (id_, name, config_json, chash, seed, status, dstep, error, versions_json,
         created, updated, group) = row
        return cls(
            id=id_, name=name, config=json.loads(config_json), config_hash=chash,
            seed=seed, status=status, diverged_step=dstep, error=error,
            versions=json.loads(versions_json) if versions_json else {},
            created_at=_dt.datetime.fromisoformat(created) if created else None,
            updated_at=_dt.datetime.fromisoformat(updated) if updated else None,
            group=group,
        )


class RunStore:
    """A SQLite file of runs and their metrics; see the module docstring.

    ``RunStore(path)`` opens or creates the file (and its directory);
    ``RunStore.in_dir(results_dir)`` uses ``results_dir/runs.db``.  Use it as
    a context manager or call :meth:`close`.  ``timeout`` is how long (in
    seconds) a write waits for another process's write to finish.
    """

    def __init__(self, path: str | os.PathLike, *, timeout: float = 30.0, create: bool = True):
        memory = os.fspath(path) == ":memory:"
        self.path = os.fspath(path) if memory else Path(path)
        if not memory:
            if self.path.is_dir():
                raise InputError(
                    f"{self.path} is a directory; pass a database file or use RunStore.in_dir()."
                )
            if not create and not self.path.exists():
                raise InputError(
                    f"no run store at {self.path}; check the path (or results directory)."
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            os.fspath(self.path), timeout=timeout, isolation_level=None
        )
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self.journal_mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._ensure_schema()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise InputError(
                f"{self.path} is not an eoslab run store (SQLite: {exc}); pass the "
                "path of a runs.db file or of a new file."
            ) from None
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def in_dir(cls, results_dir: str | os.PathLike, **kwargs: Any) -> "RunStore":
        """Open ``results_dir/runs.db``, creating the directory if needed."""
        return cls(Path(results_dir) / DB_NAME, **kwargs)

    # -- plumbing ----------------------------------------------------------

    def _ensure_schema(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise InputError(
                f"{self.path} has run-store schema version {version}, newer than this "
                f"eoslab's {SCHEMA_VERSION}; upgrade eoslab to read it."
            )
        with self._write() as conn:
            # Another process may have created the schema since we looked.
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it commits, or none of it."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: a consistent snapshot across several queries."""
        conn = self._conn
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _status(self, conn: sqlite3.Connection, run_id: int) -> str:
        row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise InputError(f"unknown run id {run_id} in {self.path}; list the stored runs with `eoslab runs` "
                             f"(Python: RunStore.list_runs()).")
        return row[0]

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({os.fspath(self.path)!r})"

    def integrity_ok(self) -> bool:
        """True when ``PRAGMA integrity_check`` and ``foreign_key_check`` find nothing wrong."""
        rows = self._conn.execute("PRAGMA integrity_check").fetchall()
        fk = self._conn.execute("PRAGMA foreign_key_check").fetchall()
        return rows == [("ok",)] and not fk

    # -- runs --------------------------------------------------------------

    def start_run(self, config: Mapping, *, name: str | None = None, seed: int | None = None,
                  group: str | None = None) -> int:
        """Record a new ``'running'`` run of ``config`` and return its id."""
        text = canonical_json(config)
        chash = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        name = _optional_str(name, "run name")
        group = _optional_str(group, "run group")
        seed = _optional_int(seed, "seed")
        versions = json.dumps(software_versions(), sort_keys=True)
        now = _now()
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO runs (name, config_json, config_hash, seed, status, "
                "versions_json, created_at, updated_at, group_name) "
                "VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (name, text, chash, seed, versions, now, now, group),
            )
            return cur.lastrowid

    def add_finished_runs(self, runs: Iterable[Mapping], *, skip_existing: bool = True) -> list[int | None]:
        """Insert finished runs with all their metrics in one transaction (all of them, or none).

        Each item has ``config``, ``status`` (a final status) and optionally
        ``name``, ``seed``, ``group``, ``diverged_step``, ``error`` and
        ``metrics`` (``{name: (steps, values)}``).  With ``skip_existing``, a run
        whose group, config hash and seed already has a finished run is not
        inserted again (its id is ``None`` in the returned list): a sweep
        driver that writes a batch twice stores each point once.
        """
        versions = json.dumps(software_versions(), sort_keys=True)
        prepared = []
        for r in runs:
            status = r["status"]
            if status not in FINAL_STATUSES:
                raise InputError(f"add_finished_runs takes finished runs; status {status!r} is not one of "
                                 f"{', '.join(FINAL_STATUSES)}.")
            text = canonical_json(r["config"])
            prepared.append((r, text, hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
                             _optional_int(r.get("seed"), "seed"), _optional_str(r.get("group"), "run group")))
        ids: list[int | None] = []
        now = _now()
        with self._write() as conn:
            for r, text, chash, seed, group in prepared:
                if skip_existing and conn.execute(
                        "SELECT 1 FROM runs WHERE config_hash = ? AND seed IS ? AND group_name IS ? "
                        "AND status != 'running' LIMIT 1", (chash, seed, group)).fetchone():
                    ids.append(None)
                    continue
                ds = _optional_int(r.get("diverged_step"), "diverged_step")
                cur = conn.execute(
                    "INSERT INTO runs (name, config_json, config_hash, seed, status, diverged_step, error, "
                    "versions_json, created_at, updated_at, group_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (_optional_str(r.get("name"), "run name"), text, chash, seed, r["status"], ds,
                     _optional_str(r.get("error"), "error"), versions, now, now, group))
                rid = cur.lastrowid
                if r.get("metrics"):
                    conn.executemany("INSERT OR REPLACE INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)",
                                     _metric_rows(rid, r["metrics"]))
                ids.append(rid)
        return ids

    def finished_keys(self, group: str) -> set[tuple[str, int | None]]:
        """(config hash, seed) of every finished run of ``group`` (what a resumed sweep skips)."""
        rows = self._conn.execute(
            "SELECT config_hash, seed FROM runs WHERE group_name = ? AND status != 'running'", (group,)).fetchall()
        return {(h, s) for h, s in rows}

    def get_run(self, run_id: int) -> RunRecord:
        """The run with id ``run_id``; unknown ids raise :class:`InputError`."""
        run_id = _run_id(run_id)
        row = self._conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise InputError(f"unknown run id {run_id} in {self.path}; list the stored runs with `eoslab runs` "
                             f"(Python: RunStore.list_runs()).")
        return RunRecord._from_row(row)

    def find_run(self, config_hash_or_config: str | Mapping, seed: int | None = None
                 ) -> RunRecord | None:
        """The newest run with this config hash (or config) and seed, or None.

        Any status: the caller skips ``'completed'`` runs, resumes ``'running'``
        ones and reruns the others.  ``seed=None`` matches runs without a seed.
        """
        if isinstance(config_hash_or_config, Mapping):
            chash = config_hash(config_hash_or_config)
        elif isinstance(config_hash_or_config, str):
            chash = config_hash_or_config
        else:
            raise InputError(
                f"find_run takes a config hash or a config dict, got "
                f"{type(config_hash_or_config).__name__}; pass config_hash(config)."
            )
        seed = _optional_int(seed, "seed")
        row = self._conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE config_hash = ? AND seed IS ? "
            "ORDER BY id DESC LIMIT 1",
            (chash, seed),
        ).fetchone()
        return None if row is None else RunRecord._from_row(row)

    def _select_runs(self, conn: sqlite3.Connection, *, run_ids=None, status=None,
                     name=None, group=None) -> list[tuple]:
        clauses, params = [], []
        for column, values in (("status", _as_list(status)),
                               ("name", _as_list(name)),
                               ("group_name", _as_list(group))):
            if values is not None:
                clauses.append(f"{column} IN (SELECT value FROM json_each(?))")
                params.append(json.dumps(values))
        ids = _as_list(run_ids)
        if ids is not None:
            ids = [_run_id(i) for i in ids]
            clauses.append("id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(ids))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs{where} ORDER BY id", params
        ).fetchall()

    def list_runs(self, status: str | Iterable[str] | None = None,
                  name: str | Iterable[str] | None = None,
                  group: str | Iterable[str] | None = None) -> list[RunRecord]:
        """Runs matching every given filter (each a value or a list of values), by id."""
        statuses = _as_list(status)
        _check_statuses(statuses)
        rows = self._select_runs(self._conn, status=statuses, name=name, group=group)
        return [RunRecord._from_row(r) for r in rows]

    def finish_run(self, run_id: int, status: str = "completed", *,
                   diverged_step: int | None = None, error: str | None = None) -> None:
        """Mark a ``'running'`` run ``'completed'``, ``'diverged'`` or ``'failed'``.

        Only running runs can be finished; ``diverged_step`` goes with
        ``'diverged'``; ``error`` (a message or traceback) with any final status.
        """
        run_id = _run_id(run_id)
        if status not in FINAL_STATUSES:
            raise InputError(
                f"cannot finish a run with status {status!r}; use one of "
                f"{', '.join(FINAL_STATUSES)}."
            )
        diverged_step = _optional_int(diverged_step, "diverged_step")
        if diverged_step is not None and status != "diverged":
            raise InputError(
                f"diverged_step={diverged_step} was given with status {status!r}; "
                "pass it only with status 'diverged'."
            )
        error = _optional_str(error, "error")
        with self._write() as conn:
            current = self._status(conn, run_id)
            if current != "running":
                raise InputError(
                    f"run {run_id} is already {current!r} and cannot become {status!r}; "
                    "only running runs can be finished (start a new run instead)."
                )
            conn.execute(
                "UPDATE runs SET status = ?, diverged_step = ?, error = ?, updated_at = ? "
                "WHERE id = ?",
                (status, diverged_step, error, _now(), run_id),
            )

    def delete_run(self, run_id: int) -> None:
        """Delete a run and all its metrics."""
        run_id = _run_id(run_id)
        with self._write() as conn:
            self._status(conn, run_id)
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def delete_earlier(self, run_id: int, status: str | Iterable[str] | None = None) -> list[int]:
        """Delete the other runs of ``run_id``'s group with its config and seed (a rerun replaces, never
        duplicates); ``status`` keeps only runs of those statuses in the deletion.  Returns their ids."""
        run = self.get_run(run_id)
        gone = [r.id for r in self.list_runs(status=status, group=run.group)
                if r.id != run.id and r.config_hash == run.config_hash and r.seed == run.seed]
        for rid in gone:
            self.delete_run(rid)
        return gone

    # -- metrics -----------------------------------------------------------

    def log_metrics(self, run_id: int, rows: Iterable[tuple] | Mapping[str, tuple]) -> int:
        """Store metric values in one transaction; return the number of rows written.

        ``rows`` is an iterable of ``(step, name, value)`` or a dict
        ``{name: (steps, values)}`` of arrays (or of scalars).  A row already
        stored for the same (run, step, name) is replaced, so re-logging after
        a resume is idempotent.  Any bad row raises and nothing of the call is
        kept.  NaN is stored as NULL and read back as NaN.
        """
        run_id = _run_id(run_id)
        with self._write() as conn:
            self._status(conn, run_id)
            cur = conn.executemany(
                "INSERT OR REPLACE INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)",
                _metric_rows(run_id, rows),
            )
            count = max(cur.rowcount, 0)
            conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (_now(), run_id))
        return count

    def delete_metrics_after(self, run_id: int, step: int) -> int:
        """Delete the run's metrics at steps ``> step`` (to resume from a checkpoint)."""
        run_id = _run_id(run_id)
        step = _optional_int(step, "step")
        if step is None:
            raise InputError("delete_metrics_after needs a step; pass the checkpoint's step.")
        with self._write() as conn:
            self._status(conn, run_id)
            cur = conn.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run_id, step))
            return cur.rowcount

    def get_metrics(self, run_id: int, names: str | Iterable[str] | None = None
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{name: (steps int64, values float64)}`` of one run, sorted by step."""
        run_id = _run_id(run_id)
        wanted = _as_list(names)
        with self._read() as conn:
            self._status(conn, run_id)
            sql = "SELECT name, step, value FROM metrics WHERE run_id = ?"
            params: list = [run_id]
            if wanted is not None:
                sql += " AND name IN (SELECT value FROM json_each(?))"
                params.append(json.dumps(wanted))
            rows = conn.execute(sql + " ORDER BY name, step", params).fetchall()
        out = {}
        for name, group in itertools.groupby(rows, key=operator.itemgetter(0)):
            group = list(group)
            steps = np.fromiter((r[1] for r in group), dtype=np.int64, count=len(group))
            values = np.array([np.nan if r[2] is None else r[2] for r in group], dtype=np.float64)
            out[name] = (steps, values)
        return out

    def _metric_table(self, conn: sqlite3.Connection, run_ids: list[int] | None,
                      metric_names: list[str] | None) -> tuple[np.ndarray, ...]:
        clauses, params = [], []
        if run_ids is not None:
            clauses.append("run_id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(run_ids))
        if metric_names is not None:
            clauses.append("name IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(metric_names))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = conn.execute(
            f"SELECT run_id, step, name, value FROM metrics{where} ORDER BY run_id, step, name",
            params,
        ).fetchall()
        if not rows:
            return (np.zeros(0, np.int64), np.zeros(0, np.int64), [], np.zeros(0, np.float64))
        run_col, step_col, name_col, value_col = zip(*rows)
        values = np.array([np.nan if v is None else v for v in value_col], dtype=np.float64)
        return (np.array(run_col, dtype=np.int64), np.array(step_col, dtype=np.int64),
                list(name_col), values)
