"""Tests of the SQLite run store (eoslab.store)."""
import hashlib
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eoslab.errors import ConfigError, InputError
from eoslab.store import (
    DB_NAME,
    SCHEMA_VERSION,
    RunRecord,
    RunStore,
    canonical_json,
    config_hash,
    export,
    load_runs,
    metrics_wide,
    software_versions,
)

REPO = Path(__file__).resolve().parents[1]

CONFIG = {
    "model": {"name": "mlp", "widths": [64, 32], "act": {"kind": "tanh", "slope": 0.5}},
    "optimizer": {"name": "gd", "lr": 0.01, "momentum": None},
    "loss": "mse",
    "steps": 200,
    "float64": False,
}


@pytest.fixture
def store(tmp_path):
    with RunStore.in_dir(tmp_path) as s:
        yield s


def count_metrics(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]


# -- opening and schema ------------------------------------------------------


def test_open_creates_versioned_wal_schema(tmp_path):
    with RunStore.in_dir(tmp_path / "results") as s:
        assert s.path == tmp_path / "results" / DB_NAME
        assert s.path.exists()
        conn = s._conn
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"runs", "metrics"} <= tables
        assert s.integrity_ok()
    # Reopening keeps the data.
    with RunStore.in_dir(tmp_path / "results") as s:
        assert s.list_runs() == []


def test_close_and_context_manager(tmp_path):
    with RunStore(tmp_path / "x.db") as s:
        pass
    with pytest.raises(sqlite3.ProgrammingError):
        s.list_runs()


def test_newer_schema_and_non_database_are_input_errors(tmp_path):
    path = tmp_path / DB_NAME
    RunStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(InputError, match="upgrade eoslab"):
        RunStore(path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError, match="not an eoslab run store"):
        RunStore(junk)
    with pytest.raises(InputError, match="no run store"):
        load_runs(tmp_path / "missing")


# -- config hashing ----------------------------------------------------------


def test_hash_is_pinned_canonical_sha256():
    config = {"model": {"name": "mlp", "width": 64}, "lr": 0.1, "steps": 1000, "loss": "mse"}
    text = '{"loss":"mse","lr":0.1,"model":{"name":"mlp","width":64},"steps":1000}'
    assert canonical_json(config) == text
    assert config_hash(config) == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert config_hash(config) == "ab8a0ef365cc6a2e"


def test_hash_ignores_key_order_and_float_spelling():
    a = {"lr": 0.1, "model": {"width": 64, "name": "mlp"}, "betas": [0.9, 0.999]}
    b = {"model": {"name": "mlp", "width": 64}, "betas": (0.90, 0.9990), "lr": 0.10}
    c = {"model": {"name": "mlp", "width": np.int64(64)}, "betas": np.array([0.9, 0.999]),
         "lr": np.float64(0.1)}
    assert config_hash(a) == config_hash(b) == config_hash(c)
    assert len(config_hash(a)) == 16 and int(config_hash(a), 16) >= 0


def test_hash_distinguishes_types_and_values():
    # Decided and documented: types are kept, so 1 != 1.0 and True != 1.
    assert config_hash({"lr": 1}) != config_hash({"lr": 1.0})
    assert config_hash({"flag": True}) != config_hash({"flag": 1})
    assert config_hash({"lr": 0.1}) != config_hash({"lr": 0.2})
    assert config_hash({"a": {"b": 1}}) != config_hash({"a": {"c": 1}})
    assert config_hash({"xs": [1, 2]}) != config_hash({"xs": [2, 1]})


def test_hash_rejects_unstorable_configs():
    with pytest.raises(ConfigError, match="string keys"):
        config_hash({"a": {1: 2}})
    with pytest.raises(ConfigError, match="cannot be stored"):
        config_hash({"f": object()})
    with pytest.raises(ConfigError, match="must be a dict"):
        config_hash([1, 2])


json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, width=64), st.text(max_size=5),
)
json_configs = st.recursive(
    json_leaves,
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=4), children, max_size=4)),
    max_leaves=12,
)


def _reverse_keys(value):
    if isinstance(value, dict):
        return {k: _reverse_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(v) for v in value]
    return value


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=4), json_configs, max_size=4))
def test_hash_property_key_order_and_round_trip(config):
    import json

    assert config_hash(_reverse_keys(config)) == config_hash(config)
    assert config_hash(json.loads(canonical_json(config))) == config_hash(config)


# -- runs and round trips ----------------------------------------------------


def test_config_round_trip_nested(store):
    config = dict(CONFIG, extra={"scale": np.float32(0.5), "dims": (2, 3), "k": np.int16(7)})
    rid = store.start_run(config, name="base", seed=3, group="sweep1")
    run = store.get_run(rid)
    assert isinstance(run, RunRecord)
    expected = dict(CONFIG, extra={"scale": 0.5, "dims": [2, 3], "k": 7})
    assert run.config == expected
    assert type(run.config["extra"]["k"]) is int
    assert run.config_hash == config_hash(config) == config_hash(expected)
    assert (run.id, run.name, run.seed, run.group) == (rid, "base", 3, "sweep1")
    assert run.status == "running" and run.diverged_step is None and run.error is None
    assert run.created_at.tzinfo is not None and run.updated_at >= run.created_at
    with pytest.raises(AttributeError):
        run.status = "completed"


def test_versions_recorded(store):
    import platform

    rid = store.start_run({"a": 1})
    versions = store.get_run(rid).versions
    assert set(versions) == {"python", "jax", "jaxlib", "optax", "flax", "numpy", "eoslab"}
    assert versions["python"] == platform.python_version()
    assert versions["numpy"] == np.__version__
    assert versions == software_versions()


def test_unknown_run_id_is_input_error(store):
    with pytest.raises(InputError, match="unknown run id 99"):
        store.get_run(99)
    for call in (lambda: store.log_metrics(99, [(0, "loss", 1.0)]),
                 lambda: store.finish_run(99),
                 lambda: store.delete_run(99),
                 lambda: store.delete_metrics_after(99, 0),
                 lambda: store.get_metrics(99)):
        with pytest.raises(InputError, match="unknown run id"):
            call()
    with pytest.raises(InputError, match="not an integer"):
        store.get_run("1")


def test_metrics_round_trip_with_nan_and_inf(store):
    rid = store.start_run(CONFIG)
    steps = np.arange(0, 60, 10)
    loss = np.array([1.5, np.nan, np.inf, -np.inf, 1e-300, -0.0])
    assert store.log_metrics(rid, {"loss": (steps, loss), "lr": (steps, np.full(6, 0.01, np.float32))}) == 12
    assert store.log_metrics(rid, [(60, "loss", float("nan")), (60, "acc", np.float32(0.25)),
                                   (np.int64(70), "acc", None), (80, "acc", True)]) == 4
    got = store.get_metrics(rid)
    assert set(got) == {"loss", "lr", "acc"}
    np.testing.assert_array_equal(got["loss"][0], np.append(steps, 60))
    np.testing.assert_array_equal(got["loss"][1], np.append(loss, np.nan))
    assert got["loss"][1].dtype == np.float64 and got["loss"][0].dtype == np.int64
    np.testing.assert_array_equal(got["lr"][1], np.float32(0.01).astype(np.float64))
    np.testing.assert_array_equal(got["acc"][0], [60, 70, 80])
    np.testing.assert_array_equal(got["acc"][1], [0.25, np.nan, 1.0])
    assert set(store.get_metrics(rid, names="acc")) == {"acc"}


def test_large_numpy_batch(store):
    rid = store.start_run({"a": 1})
    n = 50_000
    values = np.random.default_rng(0).normal(size=n)
    assert store.log_metrics(rid, {"loss": (np.arange(n), values)}) == n
    steps, got = store.get_metrics(rid)["loss"]
    np.testing.assert_array_equal(got, values)


def test_relog_is_idempotent(store, tmp_path):
    rid = store.start_run(CONFIG)
    rows = [(s, "loss", 1.0 / (s + 1)) for s in range(20)]
    store.log_metrics(rid, rows)
    store.log_metrics(rid, rows)
    store.log_metrics(rid, {"loss": (np.arange(20), [1.0 / (s + 1) for s in range(20)])})
    assert count_metrics(store.path) == 20
    store.log_metrics(rid, [(5, "loss", 42.0)])  # the latest value wins
    steps, values = store.get_metrics(rid)["loss"]
    assert len(steps) == 20 and values[5] == 42.0 and values[4] == 0.2


def test_bad_row_midway_leaves_nothing_of_the_call(store):
    rid = store.start_run(CONFIG)
    store.log_metrics(rid, [(0, "loss", 1.0)])
    rows = [(1, "loss", 0.9), (2, "loss", 0.8), (3, "loss", "abc"), (4, "loss", 0.6)]
    with pytest.raises(InputError, match="not a real number"):
        store.log_metrics(rid, rows)
    assert count_metrics(store.path) == 1
    # Dict form: the first metric is fine, the second is not.
    with pytest.raises(InputError, match="not real numbers"):
        store.log_metrics(rid, {"acc": (np.arange(5), np.ones(5)),
                                "loss": (np.arange(2), np.array(["x", "y"]))})
    with pytest.raises(InputError, match="equal length"):
        store.log_metrics(rid, {"acc": (np.arange(5), np.ones(5)),
                                "loss": (np.arange(3), np.ones(2))})
    with pytest.raises(InputError, match="not integers"):
        store.log_metrics(rid, {"acc": (np.arange(5), np.ones(5)),
                                "loss": (np.array([0.5, 1.5]), np.ones(2))})
    assert count_metrics(store.path) == 1

    def failing_rows():
        yield (5, "loss", 0.5)
        yield (6, "loss", 0.4)
        raise RuntimeError("producer crashed")

    with pytest.raises(RuntimeError, match="producer crashed"):
        store.log_metrics(rid, failing_rows())
    assert count_metrics(store.path) == 1
    assert store.get_metrics(rid)["loss"][0].tolist() == [0]
    # The store is still usable after the rollbacks.
    store.log_metrics(rid, [(1, "loss", 0.9)])
    assert count_metrics(store.path) == 2


def test_malformed_rows_are_input_errors(store):
    rid = store.start_run(CONFIG)
    for rows in ([(0, "loss")], [(0.5, "loss", 1.0)], [(0, "", 1.0)], [(0, 3, 1.0)],
                 [(0, "loss", 1 + 2j)], "loss", {"loss": np.ones(3)}):
        with pytest.raises(InputError):
            store.log_metrics(rid, rows)
    assert count_metrics(store.path) == 0


def test_status_transitions(store):
    done = store.start_run(CONFIG, seed=0)
    store.finish_run(done)
    assert store.get_run(done).status == "completed"
    for status in ("completed", "failed", "diverged"):
        with pytest.raises(InputError, match="already 'completed'"):
            store.finish_run(done, status)

    div = store.start_run(CONFIG, seed=1)
    store.finish_run(div, "diverged", diverged_step=np.int64(137))
    run = store.get_run(div)
    assert (run.status, run.diverged_step, run.error) == ("diverged", 137, None)

    fail = store.start_run(CONFIG, seed=2)
    store.finish_run(fail, "failed", error="Traceback: boom")
    assert (store.get_run(fail).status, store.get_run(fail).error) == ("failed", "Traceback: boom")
    with pytest.raises(InputError, match="already 'failed'"):
        store.finish_run(fail)

    live = store.start_run(CONFIG, seed=3)
    with pytest.raises(InputError, match="cannot finish"):
        store.finish_run(live, "running")
    with pytest.raises(InputError, match="cannot finish"):
        store.finish_run(live, "done")
    with pytest.raises(InputError, match="only with status 'diverged'"):
        store.finish_run(live, "completed", diverged_step=3)
    assert store.get_run(live).status == "running"
    # The CHECK constraint backs up the Python checks.
    with pytest.raises(sqlite3.IntegrityError):
        store._conn.execute("UPDATE runs SET status = 'bogus' WHERE id = ?", (live,))


def test_find_run_picks_the_newest(store):
    h = config_hash(CONFIG)
    assert store.find_run(h, 0) is None
    first = store.start_run(CONFIG, seed=0)
    store.finish_run(first, "failed", error="x")
    other_seed = store.start_run(CONFIG, seed=1)
    second = store.start_run(CONFIG, seed=0)
    store.start_run(dict(CONFIG, steps=201), seed=0)
    store.start_run(CONFIG)  # no seed
    assert store.find_run(h, 0).id == second
    assert store.find_run(CONFIG, seed=0).id == second
    assert store.find_run(h, 1).id == other_seed
    assert store.find_run(h, None).seed is None
    assert store.find_run(h, 2) is None
    store.delete_run(second)
    assert store.find_run(h, 0).id == first


def test_list_and_delete_runs(store):
    a = store.start_run({"x": 1}, name="a", group="g1")
    b = store.start_run({"x": 2}, name="b", group="g1")
    c = store.start_run({"x": 3}, name="a", group="g2")
    store.finish_run(b)
    assert [r.id for r in store.list_runs()] == [a, b, c]
    assert [r.id for r in store.list_runs(name="a")] == [a, c]
    assert [r.id for r in store.list_runs(group="g1", status="running")] == [a]
    assert [r.id for r in store.list_runs(status=["completed", "running"], group="g1")] == [a, b]
    with pytest.raises(InputError, match="unknown run status"):
        store.list_runs(status="done")
    store.log_metrics(b, {"loss": (np.arange(10), np.ones(10))})
    store.log_metrics(c, {"loss": (np.arange(4), np.ones(4))})
    store.delete_run(b)
    assert [r.id for r in store.list_runs()] == [a, c]
    assert count_metrics(store.path) == 4  # cascade removed b's metrics
    assert store.integrity_ok()


def test_delete_metrics_after_for_resume(store):
    rid = store.start_run(CONFIG)
    other = store.start_run(CONFIG)
    store.log_metrics(rid, {"loss": (np.arange(10), np.arange(10.0)), "acc": (np.arange(10), np.ones(10))})
    store.log_metrics(other, {"loss": (np.arange(10), np.arange(10.0))})
    assert store.delete_metrics_after(rid, 6) == 6
    got = store.get_metrics(rid)
    assert got["loss"][0].tolist() == list(range(7)) and got["acc"][0].tolist() == list(range(7))
    assert len(store.get_metrics(other)["loss"][0]) == 10
    # Resume: re-log from step 7 on.
    store.log_metrics(rid, {"loss": (np.arange(7, 12), np.arange(7.0, 12.0))})
    assert store.get_metrics(rid)["loss"][0].tolist() == list(range(12))


# -- pandas views and export -------------------------------------------------


def _populate(store):
    a = store.start_run(CONFIG, name="gd", seed=0, group="g")
    b = store.start_run(dict(CONFIG, optimizer={"name": "adam", "lr": 0.001, "beta1": 0.9}),
                        name="adam", seed=1, group="g")
    c = store.start_run({"model": {"name": "cnn"}, "steps": 5, "depth": 4}, name="cnn")
    store.log_metrics(a, {"loss": (np.arange(3), [1.0, 0.5, np.nan]),
                          "sharpness": (np.array([0, 2]), [3.0, np.inf])})
    store.log_metrics(b, {"loss": (np.arange(2), [2.0, 1.0])})
    store.finish_run(a, "diverged", diverged_step=2)
    store.finish_run(b)
    return a, b, c


def test_load_runs_columns_and_values(store):
    a, b, c = _populate(store)
    runs, metrics = load_runs(store)
    assert list(runs.columns[:10]) == ["run_id", "name", "group", "seed", "status", "diverged_step",
                                       "error", "config_hash", "created_at", "updated_at"]
    for column in ("config.model.name", "config.model.widths", "config.model.act.kind",
                   "config.optimizer.lr", "config.optimizer.beta1", "config.steps",
                   "versions.python", "versions.numpy"):
        assert column in runs.columns
    runs = runs.set_index("run_id")
    assert runs.loc[a, "config.model.name"] == "mlp" and runs.loc[c, "config.model.name"] == "cnn"
    assert runs.loc[a, "config.model.widths"] == "[64,32]"
    assert runs.loc[b, "config.optimizer.lr"] == 0.001
    assert pd.isna(runs.loc[a, "config.optimizer.beta1"]) and runs.loc[b, "config.optimizer.beta1"] == 0.9
    assert runs["config.steps"].dtype == np.int64 and runs.loc[c, "config.steps"] == 5
    # Integers with gaps stay integers (nullable), not floats.
    assert runs["config.depth"].dtype == "Int64" and runs.loc[c, "config.depth"] == 4
    assert pd.isna(runs.loc[a, "config.depth"])
    assert runs["config.float64"].dtype == "boolean" and not runs.loc[a, "config.float64"]
    assert runs.loc[a, "status"] == "diverged" and runs.loc[a, "diverged_step"] == 2
    assert pd.isna(runs.loc[c, "seed"]) and runs.loc[b, "seed"] == 1
    assert runs.loc[a, "config_hash"] == config_hash(CONFIG)
    assert str(runs["created_at"].dtype).startswith("datetime64")

    assert list(metrics.columns) == ["run_id", "step", "name", "value"]
    assert metrics["value"].dtype == np.float64 and metrics["step"].dtype == np.int64
    assert len(metrics) == 7
    sel = metrics[(metrics.run_id == a) & (metrics.name == "sharpness")]
    assert sel["step"].tolist() == [0, 2] and sel["value"].tolist() == [3.0, math.inf]
    assert metrics[(metrics.run_id == a) & (metrics.name == "loss")]["value"].isna().tolist() == [False, False, True]

    # Filters, and a path or a directory instead of a store.
    runs2, metrics2 = load_runs(store.path.parent, status="completed")
    assert runs2["run_id"].tolist() == [b] and set(metrics2["run_id"]) == {b}
    runs3, metrics3 = load_runs(store.path, names=["gd", "cnn"])
    assert runs3["run_id"].tolist() == [a, c] and set(metrics3["run_id"]) == {a}
    runs4, metrics4 = load_runs(store, run_ids=[b, c], metric_names="loss")
    assert runs4["run_id"].tolist() == [b, c] and metrics4["name"].unique().tolist() == ["loss"]
    runs5, metrics5 = load_runs(store, group="nope")
    assert runs5.empty and metrics5.empty and "config_hash" in runs5.columns


def test_load_runs_empty_store(store):
    runs, metrics = load_runs(store)
    assert runs.empty and list(metrics.columns) == ["run_id", "step", "name", "value"]


def test_metrics_wide(store):
    a, b, c = _populate(store)
    _, metrics = load_runs(store)
    wide = metrics_wide(metrics)
    assert list(wide.index.names) == ["run_id", "step"]
    assert list(wide.columns) == ["loss", "sharpness"]
    assert wide.index.tolist() == [(a, 0), (a, 1), (a, 2), (b, 0), (b, 1)]
    assert wide.loc[(a, 0), "sharpness"] == 3.0 and wide.loc[(a, 2), "sharpness"] == math.inf
    assert np.isnan(wide.loc[(a, 1), "sharpness"])  # not logged
    assert np.isnan(wide.loc[(a, 2), "loss"])  # logged NaN
    assert wide.loc[(b, 1), "loss"] == 1.0
    with pytest.raises(InputError, match="lacks columns"):
        metrics_wide(metrics.drop(columns="value"))


def test_export_parquet_round_trip(store, tmp_path):
    _populate(store)
    runs, metrics = load_runs(store)
    runs_path, metrics_path = export(store, tmp_path / "out" / "sweep.parquet")
    assert runs_path == tmp_path / "out" / "sweep_runs.parquet"
    assert metrics_path == tmp_path / "out" / "sweep_metrics.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(runs_path), runs)
    pd.testing.assert_frame_equal(pd.read_parquet(metrics_path), metrics)
    assert not [p for p in runs_path.parent.iterdir() if ".tmp" in p.name]


def test_export_csv_round_trip(store, tmp_path):
    a, b, c = _populate(store)
    noise = np.random.default_rng(1).normal(size=50) * 10.0 ** np.arange(-25, 25)
    store.log_metrics(a, {"noise": (np.arange(50), noise)})
    runs, metrics = load_runs(store, run_ids=[a, b])
    runs_path, metrics_path = export(store.path, tmp_path / "sweep.csv", run_ids=[a, b])
    assert (runs_path.name, metrics_path.name) == ("sweep_runs.csv", "sweep_metrics.csv")
    got_metrics = pd.read_csv(metrics_path)
    pd.testing.assert_frame_equal(got_metrics, metrics, check_dtype=False, check_exact=True)
    got_runs = pd.read_csv(runs_path)
    for column in ("created_at", "updated_at"):
        got_runs[column] = pd.to_datetime(got_runs[column], utc=True)
    pd.testing.assert_frame_equal(got_runs, runs, check_dtype=False)


def test_export_format_choice(store, tmp_path):
    _populate(store)
    paths = export(store, tmp_path / "table", format="csv")
    assert [p.name for p in paths] == ["table_runs.csv", "table_metrics.csv"]
    paths = export(store, tmp_path / "t.csv", format="parquet")
    assert [p.name for p in paths] == ["t_runs.parquet", "t_metrics.parquet"]
    with pytest.raises(InputError, match="'csv', 'parquet'"):
        export(store, tmp_path / "t.xlsx")
    with pytest.raises(InputError, match="unknown export format 'json'"):
        export(store, tmp_path / "t.csv", format="json")
    assert not (tmp_path / "t_runs.xlsx").exists()


# -- concurrency and crashes -------------------------------------------------


def test_two_connections_read_while_writing_and_wait_for_locks(tmp_path):
    path = tmp_path / DB_NAME
    with RunStore(path, timeout=5.0) as writer, RunStore(path, timeout=5.0) as reader:
        rid = writer.start_run(CONFIG)
        # A third connection holds the write lock for a moment.
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        blocker.execute("INSERT INTO metrics VALUES (?, 0, 'held', 1.0)", (rid,))
        # WAL: readers are not blocked by a writer.
        assert reader.get_run(rid).status == "running"
        assert reader.get_metrics(rid) == {}
        timer = threading.Timer(0.3, lambda: blocker.execute("COMMIT"))
        start = time.perf_counter()
        timer.start()
        writer.log_metrics(rid, [(1, "loss", 0.5)])  # waits on busy_timeout, then succeeds
        waited = time.perf_counter() - start
        timer.join()
        blocker.close()
        assert waited >= 0.2
        assert set(reader.get_metrics(rid)) == {"held", "loss"}
        writer.finish_run(rid)
        assert reader.get_run(rid).status == "completed"


def test_sigkill_mid_run_leaves_it_running_and_intact(tmp_path):
    path = tmp_path / DB_NAME
    child = textwrap.dedent(
        """
        import sys
        import numpy as np
        from eoslab.store import RunStore

        store = RunStore(sys.argv[1])
        rid = store.start_run({"lr": 0.1}, seed=0, name="victim")
        step = 0
        while True:
            store.log_metrics(rid, {"loss": (np.arange(step, step + 100), np.random.rand(100)),
                                    "acc": (np.arange(step, step + 100), np.random.rand(100))})
            step += 100
            if step == 500:
                print(rid, flush=True)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", child, str(path)], stdout=subprocess.PIPE,
                            env=env, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip(), "child process did not start logging"
        time.sleep(0.2)  # keep it busy writing
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    rid = int(line)
    with RunStore(path) as store:
        assert store.integrity_ok()
        run = store.get_run(rid)
        assert run.status == "running" and run.name == "victim"
        metrics = store.get_metrics(rid)
        n = len(metrics["loss"][0])
        # Each log_metrics call is atomic: whole batches of 100, both metrics.
        assert n >= 500 and n % 100 == 0 and len(metrics["acc"][0]) == n
        assert metrics["loss"][0].tolist() == list(range(n))
        # It can be resumed and finished.
        store.delete_metrics_after(rid, 299)
        store.finish_run(rid)
        assert store.get_run(rid).status == "completed"


def test_export_parquet_mixed_config_types(store, tmp_path):
    store.start_run({"width": 64, "act": [1, "a"]})
    store.start_run({"width": "auto", "act": "relu"})
    runs_path, _ = export(store, tmp_path / "mixed.parquet")
    got = pd.read_parquet(runs_path)
    assert got["config.width"].tolist() == ["64", "auto"]  # mixed types are written as JSON text
    assert got["config.act"].tolist() == ['[1,"a"]', "relu"]


def test_delete_earlier_removes_the_same_config_and_seed_in_the_group_only(tmp_path):
    with RunStore.in_dir(tmp_path) as store:
        cfg = {"a": 1}
        old_done = store.start_run(cfg, seed=0, group="g")
        store.finish_run(old_done, "completed")
        old_failed = store.start_run(cfg, seed=0, group="g")
        store.finish_run(old_failed, "failed", error="x")
        other_group = store.start_run(cfg, seed=0, group="h")
        other_seed = store.start_run(cfg, seed=1, group="g")
        other_cfg = store.start_run({"a": 2}, seed=0, group="g")
        new = store.start_run(cfg, seed=0, group="g")
        assert store.delete_earlier(new, status=["completed", "diverged"]) == [old_done]
        assert store.delete_earlier(new) == [old_failed]
        assert [r.id for r in store.list_runs()] == [other_group, other_seed, other_cfg, new]
