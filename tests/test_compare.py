"""eoslab compare: two run stores, metric by metric (identical, differing, one-sided, unpaired)."""
import math
import subprocess
import sys

import numpy as np

from eoslab.store import RunStore
from eoslab.store.compare import compare_stores


def _store(path, values, extra_step=False, name="r", status="completed"):
    with RunStore.in_dir(path) as s:
        rid = s.start_run({"x": 1}, name=name, seed=0)
        steps = np.arange(len(values) + (1 if extra_step else 0))
        vals = np.asarray(list(values) + ([1.0] if extra_step else []), float)
        s.log_metrics(rid, {"loss": (steps, vals), "lr": (steps[:1], np.asarray([0.1]))})
        s.finish_run(rid, status)


def test_identical_differing_one_sided_and_unpaired(tmp_path):
    _store(tmp_path / "a", [1.0, math.nan, 3.0])
    _store(tmp_path / "b", [1.0, math.nan, 3.0])
    _store(tmp_path / "c", [1.0, math.nan, 3.3], extra_step=True)
    _store(tmp_path / "d", [1.0, math.nan, 3.0], name="other")
    with RunStore.in_dir(tmp_path / "a") as a, RunStore.in_dir(tmp_path / "b") as b, \
            RunStore.in_dir(tmp_path / "c") as c, RunStore.in_dir(tmp_path / "d") as d:
        same = compare_stores(a, b)
        assert same.identical and same.runs == 1 and same.lines() == ["1 runs paired; identical"]
        diff = compare_stores(a, c)
        assert not diff.identical and len(diff.diffs) == 1
        (m,) = diff.diffs
        assert (m.metric, m.rows, m.differing, m.only_one_side) == ("loss", 3, 1, 1)
        assert np.isclose(m.max_abs, 0.3) and np.isclose(m.max_rel, 0.3 / 3.3)
        other = compare_stores(a, d)
        assert other.unpaired and "r seed 0 completed vs other seed 0 completed" in other.unpaired[0]


def test_cli_exit_codes(tmp_path):
    _store(tmp_path / "a", [1.0, 2.0])
    _store(tmp_path / "b", [1.0, 2.5])
    run = lambda *args: subprocess.run([sys.executable, "-m", "eoslab.cli", "compare", *args],
                                       capture_output=True, text=True)
    assert run(str(tmp_path / "a"), str(tmp_path / "a" / "runs.db")).returncode == 0
    r = run(str(tmp_path / "a"), str(tmp_path / "b"))
    assert r.returncode == 1 and "loss: 1/2 rows differ" in r.stdout
    r = run(str(tmp_path / "a"), str(tmp_path / "missing"))
    assert r.returncode == 2 and "no run store" in r.stderr
