"""The examples run as documented, and what they print agrees with what they stored."""
import importlib.util
from pathlib import Path

import numpy as np

from eoslab.store import RunStore

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_flax_adam_example_reaches_the_adaptive_edge_and_stores_its_events(tmp_path):
    result = load("flax_adam_digits").main(["--results", str(tmp_path)])
    events = dict(result["events"])
    assert "progressive_sharpening" in events and "edge_reached" in events
    with RunStore.in_dir(tmp_path) as store:
        (run,) = store.list_runs()
        assert run.status == "completed" and run.config["optimizer"]["name"] == "adam"
        m = store.get_metrics(run.id)
        from eoslab.plots import runs_from_store  # eoslab plot draws lambda_1(P^-1 H) against 38 for it
        (plotted,) = runs_from_store(store, [run.id])
        assert plotted["curvature"] == "effective_sharpness" and abs(plotted["threshold"] - 38.0) < 1e-9
    steps, ratio = m["edge_ratio"]
    # the event is the first stored measurement at or above 0.95, and it is stored with its step
    assert events["edge_reached"] == int(steps[np.argmax(ratio >= 0.95)])
    np.testing.assert_array_equal(m["event_edge_reached"][0], [events["edge_reached"]])
    # after the edge, Adam's preconditioned sharpness hovers at its threshold 38 (Cohen et al. 2022)
    after = ratio[steps > events["edge_reached"] + 100]
    assert len(after) >= 5 and 0.85 < np.median(after) < 1.15
    assert np.all(m["sharpness_converged"][1] == 1.0)


def test_torch_adam_example_reaches_the_adaptive_edge_and_stores_its_events(tmp_path):
    result = load("torch_adam_digits").main(["--results", str(tmp_path)])
    events = dict(result["events"])
    assert "edge_reached" in events
    with RunStore.in_dir(tmp_path) as store:
        (run,) = store.list_runs()
        assert run.status == "completed" and run.config["optimizer"]["torch"] == "adam"
        m = store.get_metrics(run.id)
    steps, ratio = m["edge_ratio"]
    assert events["edge_reached"] == int(steps[np.argmax(ratio >= 0.95)])
    after = ratio[steps > events["edge_reached"] + 100]
    assert len(after) >= 5 and 0.85 < np.median(after) < 1.15  # at Adam's threshold 38, as in the flax example
