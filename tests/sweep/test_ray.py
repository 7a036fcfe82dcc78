"""The Ray executor on a local 2-CPU cluster: the same stored results as in-process, failures as results."""
import copy

import numpy as np
import pytest

from eoslab.cli import main
from eoslab.errors import InputError
from eoslab.store import RunStore
from eoslab.sweep import Batch, InProcessExecutor, grid_from_dict, make_executor, plan_batches, run_sweep, sweep_runs

BASE = {
    "data": {"name": "digits", "n_train": 128, "n_test": 64},
    "model": {"name": "fc-relu", "widths": [16]},
    "optimizer": {"name": "gd", "lr": 0.1},
    "train": {"steps": 6, "eval_every": 3, "dtype": "float64"},
    "probes": {"sharpness_k": 0},
}


def _spec():
    return grid_from_dict({"sweep": {"name": "r", "seeds": [0, 1], "batch_size": 2}, "base": copy.deepcopy(BASE),
                           "grid": {"optimizer.lr": [0.05, 0.2]}})


def _stored(results_dir):
    with RunStore.in_dir(results_dir) as store:
        assert store.integrity_ok()
        return {(r.config_hash, r.seed): (r.status, m) for r, m in sweep_runs(store, "r")}


def test_make_executor_rejects_bad_choices(tmp_path, capsys):
    pytest.importorskip("ray")
    assert isinstance(make_executor("local"), InProcessExecutor)
    with pytest.raises(InputError, match="--address"):
        make_executor("local", address="auto")
    with pytest.raises(InputError, match="unknown executor"):
        make_executor("slurm")
    with pytest.raises(InputError, match="--workers 0"):
        make_executor("ray", num_workers=0)
    # the CLI: exit 2, one line, nothing written
    spec = tmp_path / "grid.toml"
    spec.write_text('[sweep]\nname = "w"\n[base]\nprobes = { sharpness_k = 0 }\n[grid]\n"optimizer.lr" = [0.1]\n')
    res = tmp_path / "res"
    assert main(["sweep", str(spec), "--results", str(res), "--executor", "ray", "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--workers 0" in err and "\n" not in err and not res.exists()


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_ray_executor_matches_in_process_and_records_failures(tmp_path):
    """One test, one Ray start-up (a local cluster of 2 CPUs)."""
    pytest.importorskip("ray")
    spec = _spec()
    points = spec.points()
    local = run_sweep(spec, results_dir=tmp_path / "local", progress=False)
    assert (local.ran, local.completed, local.batches) == (4, 4, 2)
    executor = make_executor("ray", num_workers=2)
    try:
        assert executor.name == "ray" and executor.num_workers == 2
        remote = run_sweep(spec, results_dir=tmp_path / "ray", executor=executor, progress=False)
        assert (remote.ran, remote.completed, remote.failed, remote.executor) == (4, 4, 0, "ray")
        a, b = _stored(tmp_path / "local"), _stored(tmp_path / "ray")
        assert set(a) == set(b) == {(p.key, p.seed) for p in points}
        for key in a:
            assert a[key][0] == b[key][0] == "completed"
            ma, mb = a[key][1], b[key][1]
            assert set(ma) == set(mb) and "train_loss" in ma
            for name in ma:
                np.testing.assert_array_equal(ma[name][0], mb[name][0], err_msg=name)
                np.testing.assert_allclose(ma[name][1], mb[name][1], rtol=1e-9, atol=1e-12, err_msg=name)
        # a resumed sweep sends nothing to the workers
        assert run_sweep(spec, results_dir=tmp_path / "ray", executor=executor, progress=False).ran == 0

        # batches that fail inside a worker are failed results, and the good batch still completes
        (good,) = plan_batches(points[:2], 2)
        no_data = dict(copy.deepcopy(good.config), data={"name": "cifar10", "data_dir": str(tmp_path / "none")})
        bad_model = dict(copy.deepcopy(good.config), model={"name": "fc-nope"})
        batches = [Batch(good.shape, no_data, good.members), good, Batch(good.shape, bad_model, good.members[:1])]
        out = {id(b): res for b, res in executor.run(batches)}
        assert len(out) == 3
        failed_data, ok, failed_model = (out[id(b)] for b in batches)
        assert [r.status for r in failed_data] == ["failed", "failed"]
        assert all("CIFAR-10" in r.error for r in failed_data)
        assert [r.status for r in failed_model] == ["failed"] and "fc-nope" in failed_model[0].error
        assert [r.status for r in ok] == ["completed", "completed"]
        for r in ok:
            np.testing.assert_allclose(r.metrics["train_loss"][1], a[(r.key, r.seed)][1]["train_loss"][1],
                                       rtol=1e-9)
    finally:
        executor.close()
    import ray
    assert not ray.is_initialized()
