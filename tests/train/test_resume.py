"""Runs are idempotent and resumable from step 0: a killed run continues under the same run ids; a finished one
is reported, not retrained, unless forced."""
import numpy as np
import pytest

from eoslab.store import RunStore
from eoslab.train import config_from_dict, train
from eoslab.train import sinks


class Killed(BaseException):
    """Stands for a kill: not an Exception, so nothing on the way catches it."""


def _kill_after(monkeypatch, writes):
    real, count = sinks.StoreSink.write, {"n": 0}

    def write(self, rows):
        count["n"] += 1
        if count["n"] > writes:
            raise Killed
        real(self, rows)
    monkeypatch.setattr(sinks.StoreSink, "write", write)


@pytest.mark.parametrize("checkpoint_every,writes", [(0, 1), (20, 3)])
def test_a_run_killed_at_any_moment_resumes_under_the_same_run_ids(tmp_path, tiny, monkeypatch,
                                                                      checkpoint_every, writes):
    """Killed after the step-0 evaluation with no checkpoint scheduled, or after a scheduled checkpoint."""
    tiny["train"]["checkpoint_every"] = checkpoint_every
    cfg = config_from_dict(tiny)
    with monkeypatch.context() as m:
        _kill_after(m, writes)
        with pytest.raises(Killed):
            train(cfg, results_dir=tmp_path / "killed", progress=False)
    with RunStore.in_dir(tmp_path / "killed") as store:
        before = [r.id for r in store.list_runs()]
        assert {r.status for r in store.list_runs()} == {"running"} and len(before) == 2
    resumed = train(cfg, results_dir=tmp_path / "killed", progress=False)
    assert sorted(resumed.run_ids) == sorted(before) and not resumed.reused
    with RunStore.in_dir(tmp_path / "killed") as store:
        assert sorted(r.id for r in store.list_runs()) == sorted(before)  # no failed leftovers, no new ids
        assert {r.status for r in store.list_runs()} == {"completed"}
    clean = train(cfg, results_dir=tmp_path / "clean", progress=False)
    for i in range(2):
        assert set(resumed.metrics[i]) == set(clean.metrics[i])
        for name in clean.metrics[i]:
            np.testing.assert_array_equal(resumed.metrics[i][name][0], clean.metrics[i][name][0], err_msg=name)
            np.testing.assert_array_equal(resumed.metrics[i][name][1], clean.metrics[i][name][1], err_msg=name)


def test_a_finished_run_is_reported_not_retrained_unless_forced(tmp_path, tiny, monkeypatch, capsys):
    cfg = config_from_dict(tiny)
    first = train(cfg, results_dir=tmp_path, progress=False)
    with monkeypatch.context() as m:
        _kill_after(m, 0)  # any training would write, and so raise
        again = train(cfg, results_dir=tmp_path, progress=True)
    assert again.reused and again.run_ids == first.run_ids and again.status == first.status
    assert again.thresholds == pytest.approx(first.thresholds) and again.step_sizes == pytest.approx(first.step_sizes)
    for name in first.metrics[0]:
        np.testing.assert_array_equal(again.metrics[0][name][1], first.metrics[0][name][1])
    assert "already stored" in capsys.readouterr().err
    forced = train(cfg, results_dir=tmp_path, progress=False, force=True)
    assert not forced.reused and set(forced.run_ids).isdisjoint(first.run_ids)
    with RunStore.in_dir(tmp_path) as store:  # the forced runs replace the earlier ones
        assert sorted(r.id for r in store.list_runs()) == sorted(forced.run_ids)
    # another config (here: one more step) is another run
    tiny["train"]["steps"] = 40
    other = train(config_from_dict(tiny), results_dir=tmp_path, progress=False)
    assert not other.reused and set(other.run_ids).isdisjoint(forced.run_ids)
