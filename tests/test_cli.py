"""The command line: the whole flow, exit codes, nothing written on bad input, kill -9 and resume."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from eoslab.cli import main
from eoslab.store import RunStore
from tests.train.conftest import TINY, write_toml

ROOT = Path(__file__).resolve().parent.parent


def _config(tmp_path, **patch):
    raw = json.loads(json.dumps(TINY))
    for section, values in patch.items():
        raw[section].update(values)
    return write_toml(tmp_path / "cfg.toml", raw)


def test_run_list_show_plot_export(tmp_path, capsys):
    cfg = _config(tmp_path)
    res = tmp_path / "res"
    assert main(["run", cfg, "--results", str(res), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "run 1: lr=0.1 completed" in out and "run 2: lr=0.5" in out
    assert main(["runs", "--results", str(res)]) == 0
    assert "tiny" in capsys.readouterr().out
    assert main(["show", "1", "--results", str(res)]) == 0
    shown = capsys.readouterr().out
    (opt,) = [line for line in shown.splitlines() if line.strip().startswith("[optimizer]")]
    assert opt.strip().startswith('[optimizer] name = "gd",') and "lr = 0.1," in opt and "beta1" not in opt
    assert any(line.split()[:2] == ["sharpness", "4"] for line in shown.splitlines())  # steps 0, 20, 40, 60
    assert main(["plot", "1", "2", "--results", str(res), "--out", str(tmp_path / "fig.png")]) == 0
    assert (tmp_path / "fig.png").stat().st_size > 10_000 and (tmp_path / "fig.pdf").exists()
    assert main(["export", str(tmp_path / "all.csv"), "--results", str(res)]) == 0
    import pandas as pd
    metrics = pd.read_csv(tmp_path / "all_metrics.csv")
    assert set(metrics.run_id) == {1, 2} and "sharpness" in set(metrics.name)


@pytest.mark.parametrize("patch,args,match", [
    ({"model": {"name": "fc-nope"}}, [], "unknown model"),
    ({"optimizer": {"lr": -1.0}}, [], "must be a positive number"),
    ({}, ["--set", "train.unknown=3"], "unknown config key 'train.unknown'"),
    ({}, ["--set", "train.steps=ten"], "wrong type"),
    ({"data": {"name": "cifar10", "data_dir": "/nonexistent"}}, [], "CIFAR-10"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, patch, args, match):
    patch.setdefault("data", {})
    if "n_train" not in patch["data"] and patch["data"].get("name") == "cifar10":
        patch["data"]["n_train"] = 0
    cfg = _config(tmp_path, **patch)
    res = tmp_path / "res"
    assert main(["run", cfg, "--results", str(res), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert not res.exists()


def test_unknown_run_and_missing_store_exit_2(tmp_path, capsys):
    assert main(["show", "3", "--results", str(tmp_path / "none")]) == 2
    assert "no run store" in capsys.readouterr().err
    cfg = _config(tmp_path, train={"steps": 20})
    main(["run", cfg, "--results", str(tmp_path / "r"), "--no-progress"])
    assert main(["show", "99", "--results", str(tmp_path / "r")]) == 2


def test_one_store_location_rule_and_its_hints(tmp_path, capsys, monkeypatch):
    """Every command reads and writes --results (default results/); a missing store names the stores found."""
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path, train={"steps": 20})
    assert main(["run", cfg, "--no-progress"]) == 0  # the default results directory
    assert (tmp_path / "results" / "runs.db").is_file()
    capsys.readouterr()
    assert main(["runs"]) == 0 and "tiny" in capsys.readouterr().out
    main(["run", cfg, "--results", "results/mine", "--no-progress"])
    capsys.readouterr()
    assert main(["runs", "--results", "results/other"]) == 2
    err = capsys.readouterr().err
    assert "no run store at results/other/runs.db; run `eoslab demo`" in err
    (tmp_path / "results" / "runs.db").unlink()
    assert main(["runs"]) == 2
    assert "pass --results results/mine" in capsys.readouterr().err
    assert main(["show", "99", "--results", "results/mine"]) == 2
    err = capsys.readouterr().err
    assert "list the stored runs with `eoslab runs`" in err and err.count("\n") == 1
    assert main(["export", "x.xlsx", "--results", "results/mine"]) == 2
    assert "name the file with one of" in capsys.readouterr().err
    for command in ("run", "sweep", "runs", "show", "plot", "export", "reproduce", "demo", "spectrum"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--results DIR" in capsys.readouterr().out, command


def test_the_same_command_again_reports_the_stored_runs_unless_forced(tmp_path, capsys):
    cfg = _config(tmp_path, train={"steps": 20})
    res = str(tmp_path / "r")
    assert main(["run", cfg, "--results", res]) == 0
    first = capsys.readouterr()
    assert "already stored" not in first.err
    assert main(["run", cfg, "--results", res]) == 0
    again = capsys.readouterr()
    assert "runs 1, 2 of this config are already stored" in again.err and "--force" in again.err
    assert again.out == first.out  # the same report, from the store
    assert main(["run", cfg, "--results", res, "--force", "--no-progress"]) == 0
    assert "run 3: lr=0.1 completed" in capsys.readouterr().out
    with RunStore.in_dir(res) as store:
        assert [r.id for r in store.list_runs()] == [3, 4]


def test_divergent_step_size_exits_0_with_a_recorded_divergence(tmp_path, capsys):
    cfg = _config(tmp_path, optimizer={"lr": [40.0]})
    assert main(["run", cfg, "--results", str(tmp_path / "r"), "--no-progress"]) == 0
    assert "diverged at step" in capsys.readouterr().out
    with RunStore.in_dir(tmp_path / "r") as store:
        assert store.get_run(1).status == "diverged"


def _metrics(results):
    with RunStore.in_dir(results) as store:
        return {r.config["optimizer"]["lr"]: store.get_metrics(r.id)
                for r in store.list_runs(status="completed")}


@pytest.mark.slow  # (49 s; the fast suite resumes killed runs in process: tests/train/test_resume.py)
def test_kill_9_then_resume_gives_identical_metrics(tmp_path):
    cfg = _config(tmp_path, train={"steps": 600, "eval_every": 20, "checkpoint_every": 100},
                  probes={"every_step": True})
    cmd = [sys.executable, "-m", "eoslab.cli", "run", cfg, "--no-progress"]
    # runs executed more than compiled, so with XLA's default optimisation (see conftest)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": ""}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--results", str(killed)], env=env)
    ckpt_dir = killed / "checkpoints"

    def checkpointed_step():
        for path in ckpt_dir.glob("*.npz") if ckpt_dir.exists() else []:
            try:
                with np.load(path) as z:
                    return int(z["step"])
            except (OSError, ValueError, KeyError):  # replaced while read
                return -1
        return -1

    deadline = time.time() + 240
    while time.time() < deadline and checkpointed_step() < 100:  # past the step-0 checkpoint: a scheduled one
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with RunStore.in_dir(killed) as store:
        before = sorted(r.id for r in store.list_runs())
        assert {r.status for r in store.list_runs()} == {"running"}, "the kill must land mid-run"
        assert store.integrity_ok()
    assert subprocess.run([*cmd, "--results", str(killed)], env=env).returncode == 0
    clean = tmp_path / "clean"
    assert subprocess.run([*cmd, "--results", str(clean)], env=env).returncode == 0
    a, b = _metrics(killed), _metrics(clean)
    assert set(a) == set(b) == {0.1, 0.5}
    with RunStore.in_dir(killed) as store:  # resumed under the same run ids, nothing left failed
        assert sorted(r.id for r in store.list_runs()) == before
    for lr in a:
        assert set(a[lr]) == set(b[lr])
        for name in a[lr]:
            np.testing.assert_array_equal(a[lr][name][0], b[lr][name][0], err_msg=name)
            np.testing.assert_array_equal(a[lr][name][1], b[lr][name][1], err_msg=name)
    with sqlite3.connect(killed / "runs.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_second_run_reads_compiled_programs_from_the_cache_and_computes_the_same(tmp_path):
    """The CLI keeps compiled programs in $EOSLAB_CACHE_DIR; the second process reads them (same metrics)."""
    cfg = _config(tmp_path, train={"steps": 20})
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(PYTHONPATH=str(ROOT), EOSLAB_CACHE_DIR=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "eoslab.cli", "run", cfg, "--no-progress", "--results"]
    assert subprocess.run([*cmd, str(tmp_path / "a")], env=env).returncode == 0
    cached = set((tmp_path / "cache").iterdir())
    assert cached  # the programs that took over half a second to compile
    assert subprocess.run([*cmd, str(tmp_path / "b")], env=env).returncode == 0
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    # off (EOSLAB_CACHE_DIR=""): not even the default ~/.cache/eoslab is made; by default it is
    env["HOME"] = str(tmp_path / "home")
    missing = [sys.executable, "-m", "eoslab.cli", "run", str(tmp_path / "none.toml")]  # exits 2 after the set-up
    assert subprocess.run(missing, env={**env, "EOSLAB_CACHE_DIR": ""}, capture_output=True).returncode == 2
    assert not (tmp_path / "home" / ".cache" / "eoslab").exists()
    env.pop("EOSLAB_CACHE_DIR")
    assert subprocess.run(missing, env=env, capture_output=True).returncode == 2
    assert (tmp_path / "home" / ".cache" / "eoslab" / "jax").is_dir()