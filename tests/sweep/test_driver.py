"""Sweep batches and the driver: planning, vmapped batches = single runs, failures as results,
exactly-once resumable storage (kill -9 included) and the CLI's bad-input behaviour."""
import collections
import copy
import dataclasses
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import eoslab.sweep.batch as batch_mod
from eoslab.cli import main
from eoslab.errors import ConfigError, InputError
from eoslab.store import RunStore
from eoslab.sweep import (Batch, InProcessExecutor, grid_from_dict, load_grid, plan_batches, run_batch, run_sweep,
                          sweep_runs)

ROOT = Path(__file__).resolve().parents[2]

BASE = {
    "data": {"name": "digits", "n_train": 128, "n_test": 64},
    "model": {"name": "fc-relu", "widths": [16]},
    "optimizer": {"name": "gd", "lr": 0.1, "batch_size": 32},
    "train": {"steps": 8, "eval_every": 4, "dtype": "float64"},
    "probes": {"sharpness_k": 0, "line_points": 3},
}
LRS, SEEDS = [0.05, 0.2], [0, 1]


def make_spec(grid=None, name="d", seeds=None, batch_size=4, base=None):
    return grid_from_dict({"sweep": {"name": name, "seeds": seeds or list(SEEDS), "batch_size": batch_size},
                           "base": copy.deepcopy(base or BASE),
                           "grid": grid or {"optimizer.lr": list(LRS)}})


def assert_same_metrics(a: dict, b: dict, rtol=1e-9):
    assert set(a) == set(b) and a
    for name in a:
        np.testing.assert_array_equal(a[name][0], b[name][0], err_msg=name)
        np.testing.assert_allclose(a[name][1], b[name][1], rtol=rtol, atol=1e-12, err_msg=name)


@pytest.fixture(scope="module")
def singles():
    """Every point of the base grid run alone (batches of one), by (lr, seed)."""
    points = make_spec().points()
    batches = plan_batches(points, 1)
    assert [b.size for b in batches] == [1] * 4
    out = {}
    for b in batches:
        (r,) = run_batch(b)
        assert r.status == "completed" and r.error is None
        out[(b.members[0].lr, r.seed)] = r
    return out


# ---- planning ------------------------------------------------------------------

def test_plan_batches_near_equal_padded_and_each_point_once():
    spec = make_spec({"model.width": [8, 16], "optimizer.lr": [0.01 * (i + 1) for i in range(7)]}, seeds=[0, 1])
    points = spec.points()  # 2 shapes x 14 points
    for batch_size in range(1, 16):
        batches = plan_batches(points, batch_size)
        members = [(m.key, m.seed) for b in batches for m in b.members]
        assert sorted(members) == sorted((p.key, p.seed) for p in points)  # every point exactly once
        assert members == [(p.key, p.seed) for p in points]  # grid order kept (shapes are contiguous here)
        for shape in {p.shape for p in points}:
            group = [b for b in batches if b.shape == shape]
            sizes = [len(b.members) for b in group]
            assert len(group) == math.ceil(14 / batch_size)
            assert max(sizes) <= batch_size and max(sizes) - min(sizes) <= 1, (batch_size, sizes)
            assert all(b.size == b.pad_to == max(sizes) for b in group)  # one size per shape: one compile
        for b in batches:
            assert {points[[p.key for p in points].index(m.key)].shape for m in b.members} == {b.shape}
            assert b.config == b.members[0].config  # the shape's config, with the first member's lr and seed
    # the shapes are planned separately: 7 + 7 points with batch_size 3 -> 3 + 3 batches of sizes 3, 2, 2
    batches = plan_batches(points[::2], 3)
    assert [b.shape for b in batches] == [points[0].shape] * 3 + [points[-1].shape] * 3
    assert sorted(len(b.members) for b in batches[:3]) == sorted(len(b.members) for b in batches[3:]) == [2, 2, 3]
    assert plan_batches([], 4) == []


# ---- one batch -------------------------------------------------------------------

def test_vmapped_batch_equals_single_runs(singles):
    points = make_spec().points()
    (batch,) = plan_batches(points, 4)
    assert batch.size == 4 and len({m.seed for m in batch.members}) == 2
    results = run_batch(batch)
    assert [(r.key, r.seed) for r in results] == [(p.key, p.seed) for p in points]
    for r, m in zip(results, batch.members):
        assert r.status == "completed" and r.diverged_step is None and r.error is None
        assert r.config == m.config and r.config["optimizer"]["lr"] == m.lr and r.config["seed"] == m.seed
        assert {"loss", "train_loss", "test_loss", "eta", "line_max_loss"} <= set(r.metrics)
        np.testing.assert_array_equal(r.metrics["loss"][0], np.arange(8))
        assert_same_metrics(r.metrics, singles[(m.lr, m.seed)].metrics)
    # the seeds and step sizes matter (else the comparison proves little)
    by = {(m.lr, m.seed): r.metrics["train_loss"][1][-1] for r, m in zip(results, batch.members)}
    assert len({round(v, 12) for v in by.values()}) == 4
    # padded: 3 members run as 4 (the last repeated); 3 results, the same metrics
    padded = Batch(batch.shape, batch.config, batch.members[:3], pad_to=4)
    res3 = run_batch(padded)
    assert len(res3) == 3
    for r, m in zip(res3, batch.members):
        assert_same_metrics(r.metrics, singles[(m.lr, m.seed)].metrics)


def test_diverging_member_is_recorded_and_leaves_the_others_alone(singles):
    points = make_spec({"optimizer.lr": [0.05, 0.2, 40.0]}).points()
    want = [(0.05, 0), (0.2, 1), (40.0, 1), (0.2, 0)]
    by = {(p.lr, p.seed): p for p in points}
    sel = [by[k] for k in want]
    assert len({p.shape for p in sel}) == 1
    (batch,) = plan_batches(sel, 4)
    results = run_batch(batch)
    assert [r.status for r in results] == ["completed", "completed", "diverged", "completed"]
    bad = results[2]
    assert bad.diverged_step is not None and 0 < bad.diverged_step < 8 and bad.error is None
    steps, loss = bad.metrics["loss"]
    assert not np.isfinite(loss[steps == bad.diverged_step][0]) or loss[steps == bad.diverged_step][0] > 1e4
    for r, key in zip(results, want):
        if key[0] != 40.0:
            assert r.diverged_step is None
            assert_same_metrics(r.metrics, singles[key].metrics)


def test_a_batch_that_fails_to_build_gives_failed_results(monkeypatch):
    points = make_spec().points()
    (batch,) = plan_batches(points[:2], 2)

    def boom(cfg):
        raise RuntimeError("simulated out of memory while building")

    monkeypatch.setattr(batch_mod, "_CACHE", collections.OrderedDict())  # no cached trainer to fall back on
    monkeypatch.setattr("eoslab.train.trainer.build_problem", boom)
    results = run_batch(batch)
    assert [(r.key, r.seed, r.status) for r in results] == [(p.key, p.seed, "failed") for p in points[:2]]
    for r in results:
        assert "RuntimeError: simulated out of memory" in r.error
        assert r.metrics == {} and r.diverged_step is None
    # an invalid config dict fails the same way, without raising
    broken = Batch(batch.shape, dict(batch.config, model={"name": "fc-nope"}), batch.members)
    results = run_batch(broken)
    assert {r.status for r in results} == {"failed"} and "fc-nope" in results[0].error


# ---- the driver ------------------------------------------------------------------

class CountingExecutor(InProcessExecutor):
    def __init__(self):
        self.batches = []

    def run(self, batches):
        batches = list(batches)
        self.batches += batches
        return super().run(batches)


def stored(store, name="d"):
    return {(r.config_hash, r.seed): (r, m) for r, m in sweep_runs(store, name)}


def test_run_sweep_stores_each_point_once_and_resumes(tmp_path, singles):
    spec = make_spec()
    points = spec.points()
    ex = CountingExecutor()
    s1 = run_sweep(spec, results_dir=tmp_path, executor=ex, progress=False)
    assert (s1.total, s1.already_done, s1.ran, s1.completed, s1.failed, s1.batches) == (4, 0, 4, 4, 0, 1)
    assert "4 runs" in s1.line()
    with RunStore.in_dir(tmp_path) as store:
        runs = stored(store)
        assert set(runs) == {(p.key, p.seed) for p in points} and len(store.list_runs()) == 4
        for p in points:
            rec, metrics = runs[(p.key, p.seed)]
            assert rec.status == "completed" and rec.group == "sweep:d" and rec.name == "d"
            assert rec.config == p.config.to_dict()
            assert_same_metrics(metrics, singles[(p.lr, p.seed)].metrics)
        first_ids = {k: rec.id for k, (rec, _) in runs.items()}
    # again: nothing to run
    ex2 = CountingExecutor()
    s2 = run_sweep(spec, results_dir=tmp_path, executor=ex2, progress=False)
    assert (s2.already_done, s2.ran, s2.batches) == (4, 0, 0) and ex2.batches == []
    # delete two runs: only those run again
    gone = [points[1], points[2]]
    with RunStore.in_dir(tmp_path) as store:
        for p in gone:
            store.delete_run(first_ids[(p.key, p.seed)])
    ex3 = CountingExecutor()
    s3 = run_sweep(dataclasses.replace(spec, batch_size=1), results_dir=tmp_path, executor=ex3, progress=False)
    assert (s3.already_done, s3.ran, s3.completed) == (2, 2, 2)
    assert sorted((m.key, m.seed) for b in ex3.batches for m in b.members) == sorted((p.key, p.seed) for p in gone)
    with RunStore.in_dir(tmp_path) as store:
        assert store.integrity_ok()
        runs = stored(store)
        assert len(store.list_runs()) == 4 and set(runs) == {(p.key, p.seed) for p in points}
        for p in points:
            rec, metrics = runs[(p.key, p.seed)]
            assert (rec.id == first_ids[(p.key, p.seed)]) == (p not in gone)
            assert_same_metrics(metrics, singles[(p.lr, p.seed)].metrics)


def test_writing_a_batch_twice_stores_it_once(tmp_path):
    """The exactly-once guarantee of add_finished_runs, as the driver uses it."""
    points = make_spec().points()
    row = lambda p: dict(config=p.config.to_dict(), name="d", seed=p.seed, group="sweep:d", status="completed",
                         metrics={"loss": (np.arange(3), np.ones(3))})
    with RunStore.in_dir(tmp_path) as store:
        ids = store.add_finished_runs([row(p) for p in points[:2]])
        assert all(i is not None for i in ids)
        again = store.add_finished_runs([row(p) for p in points[:3]])
        assert again[:2] == [None, None] and again[2] is not None
        assert store.finished_keys("sweep:d") == {(p.key, p.seed) for p in points[:3]}
        assert len(store.list_runs(group="sweep:d")) == 3 and store.integrity_ok()


def test_failed_points_are_done_until_retried(tmp_path, monkeypatch):
    spec = make_spec(batch_size=1)
    with monkeypatch.context() as mp:
        mp.setattr(batch_mod, "_CACHE", collections.OrderedDict())
        mp.setattr("eoslab.train.trainer.build_problem", lambda cfg: (_ for _ in ()).throw(RuntimeError("no memory")))
        s = run_sweep(spec, results_dir=tmp_path, progress=False)
    assert (s.ran, s.failed, s.completed) == (4, 4, 0)
    with RunStore.in_dir(tmp_path) as store:
        assert {r.status for r in store.list_runs()} == {"failed"}
        assert "no memory" in store.list_runs()[0].error
    assert run_sweep(spec, results_dir=tmp_path, progress=False).ran == 0  # a failure is a result
    s = run_sweep(spec, results_dir=tmp_path, progress=False, retry_failed=True)
    assert (s.ran, s.completed, s.failed) == (4, 4, 0)
    with RunStore.in_dir(tmp_path) as store:
        assert [r.status for r in store.list_runs()] == ["completed"] * 4 and store.integrity_ok()


def test_bad_grid_raises_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="optimizer.lrr"):
        run_sweep(make_spec({"optimizer.lrr": [0.1]}), results_dir=tmp_path / "res", progress=False)
    assert not (tmp_path / "res").exists()
    # a data file that is missing: found before the store is opened
    bad = make_spec(base=dict(copy.deepcopy(BASE), data={"name": "cifar10", "data_dir": str(tmp_path / "none")}))
    with pytest.raises(InputError, match="CIFAR-10"):
        run_sweep(bad, results_dir=tmp_path / "res", progress=False)
    assert not (tmp_path / "res").exists()


# ---- kill -9 -----------------------------------------------------------------------

KILL_SPEC = """\
[sweep]
name = "kill"
seeds = [0, 1]
batch_size = 2

[base]
data = { name = "digits", n_train = 256, n_test = 64 }
model = { name = "fc-relu", widths = [16] }
optimizer = { name = "gd", lr = 0.1 }
train = { steps = 30, eval_every = 10, dtype = "float64" }
probes = { sharpness_k = 0 }

[grid]
"optimizer.lr" = { from = 0.02, to = 0.32, num = 6, spacing = "log" }
"""


def _count_finished(db: Path, group: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs WHERE group_name = ? AND status != 'running'",
                                (group,)).fetchone()[0]
    except sqlite3.Error:  # not created yet, or the schema is being written
        return 0


def _by_point(results_dir: Path, name: str) -> dict:
    with RunStore.in_dir(results_dir) as store:
        out = {}
        for rec, metrics in sweep_runs(store, name):
            assert (rec.config_hash, rec.seed) not in out, "a point is stored twice"
            assert rec.status == "completed", rec.error
            out[(rec.config_hash, rec.seed)] = metrics
        return out


def test_kill_9_then_resume_stores_every_point_once_with_the_same_metrics(tmp_path):
    spec_path = tmp_path / "kill.toml"
    spec_path.write_text(KILL_SPEC)
    spec = load_grid(spec_path)
    points = spec.points()
    assert len(points) == 12 and len(plan_batches(points, 2)) == 6
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "eoslab.cli", "sweep", str(spec_path), "--no-progress"]
    killed = tmp_path / "killed"
    db = killed / "runs.db"
    err = tmp_path / "stderr.txt"
    with open(err, "w") as err_file:
        proc = subprocess.Popen([*cmd, "--results", str(killed)], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err_file)
    deadline, at_kill = time.monotonic() + 300, 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            at_kill = _count_finished(db, spec.group) if db.exists() else 0
            if at_kill >= 1:
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"the sweep ended before it could be killed: {err.read_text()!r}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    before = _count_finished(db, spec.group)
    assert 1 <= at_kill <= before < len(points), (at_kill, before)  # killed mid-sweep; nothing lost since
    # resume to completion (in this process: one start-up and compile fewer than another CLI call)
    resumed = run_sweep(spec, results_dir=killed, progress=False)
    rest = len(points) - before
    assert (resumed.already_done, resumed.ran, resumed.completed) == (before, rest, rest)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = conn.execute("SELECT config_hash, seed, status FROM runs WHERE group_name = 'sweep:kill'").fetchall()
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == len(points)  # nothing half-written
    assert sorted((h, s) for h, s, _ in rows) == sorted((p.key, p.seed) for p in points)  # each exactly once
    assert {st for _, _, st in rows} == {"completed"}
    # the same metrics as an uninterrupted sweep (in-process, in batches of one: float64 keeps it tight)
    clean = tmp_path / "clean"
    summary = run_sweep(dataclasses.replace(spec, batch_size=1), results_dir=clean, progress=False)
    assert summary.completed == len(points)
    a, b = _by_point(killed, "kill"), _by_point(clean, "kill")
    assert set(a) == set(b) and len(a) == len(points)
    for key in a:
        assert set(a[key]) == set(b[key])
        for name in a[key]:
            np.testing.assert_array_equal(a[key][name][0], b[key][name][0], err_msg=name)
            np.testing.assert_allclose(a[key][name][1], b[key][name][1], rtol=1e-6, atol=1e-12, err_msg=name)


# ---- the command line ----------------------------------------------------------------

@pytest.mark.parametrize("body,match", [
    ('[sweep]\nname = "c"\n[grid]\n"optimizer.lrr" = [0.1]\n', "optimizer.lrr"),
    ('[sweep]\nname = "c"\n[grid]\n"optimizer.lr" = { from = 0.1, to = 1.0, num = 0 }\n', "optimizer.lr"),
    ('[sweep]\nname = "c"\nworkers = 2\n[grid]\n"optimizer.lr" = [0.1]\n', "sweep.workers"),
    ('[sweep]\nname = "c"\nseeds = [1, 1]\n[grid]\n"optimizer.lr" = [0.1]\n', "sweep.seeds"),
    ('[sweep\nname = "c"\n', "not valid TOML"),
])
def test_cli_bad_spec_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, body, match):
    spec = tmp_path / "grid.toml"
    spec.write_text(body)
    res = tmp_path / "res"
    assert main(["sweep", str(spec), "--results", str(res), "--no-progress"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("eoslab: error:") and match in err and "\n" not in err
    assert captured.out == ""
    assert not (res / "runs.db").exists() and not res.exists()


def test_cli_missing_spec_exits_2(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.toml"), "--results", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and "\n" not in err
    assert not (tmp_path / "res").exists()


def test_cli_sweep_runs_and_reports(tmp_path, capsys):
    spec = tmp_path / "grid.toml"
    spec.write_text('[sweep]\nname = "c"\nseeds = [0]\n[base]\ndata = { name = "digits", n_train = 128 }\n'
                    'model = { name = "fc-relu", widths = [16] }\ntrain = { steps = 4, eval_every = 4 }\n'
                    'probes = { sharpness_k = 0 }\n[grid]\n"optimizer.lr" = [0.05, 0.1]\n')
    res = tmp_path / "res"
    assert main(["sweep", str(spec), "--results", str(res), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "sweep c: 2 runs, 0 already stored, 2 run now in 1 batches (2 completed" in out
    assert main(["sweep", str(spec), "--results", str(res), "--no-progress"]) == 0
    assert "2 already stored, 0 run now" in capsys.readouterr().out
    with RunStore.in_dir(res) as store:
        assert len(store.list_runs(group="sweep:c")) == 2
