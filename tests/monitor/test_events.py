"""Each edge-of-stability event on a synthetic series where it must fire and on one where it must not."""
import math

import numpy as np
import pytest

from eoslab.monitor import EventDetector, EventRules


def run(loss, sharp, ratio=None, rules=None):
    det = EventDetector(rules)
    n = len(loss)
    ratio = [math.nan] * n if ratio is None else ratio
    for t in range(n):
        det.update(10 * t, loss[t], sharp[t], ratio[t])
    return {e.name: e for e in det.events}, det.events


def test_progressive_sharpening_fires_at_plus_10_percent_and_names_where_it_began():
    sharp = [5.0, 4.8, 4.7, 4.9, 5.0, 5.2, 5.3, 6.0]  # lowest 4.7 at step 20; +10% = 5.17 first at step 50
    ev, _ = run([1.0] * 8, sharp, [s / 20 for s in sharp])
    e = ev["progressive_sharpening"]
    assert e.step == 50 and e.values["since"] == 20 and e.values["lowest"] == 4.7
    # a flat sharpness (within 10%) never fires; nor does a rise that starts at the edge already
    assert "progressive_sharpening" not in run([1.0] * 8, [5.0, 5.2, 4.9, 5.3, 5.1, 5.0, 5.35, 5.3])[0]
    assert "progressive_sharpening" not in run([1.0] * 4, [10, 9, 11, 12.0], [0.96, 0.9, 1.0, 1.1])[0]
    # once the edge was reached, a later rise (after a dip below 0.95) is not progressive sharpening
    assert "progressive_sharpening" not in run([1.0] * 4, [5.0, 9.6, 9.0, 10.0], [0.5, 0.96, 0.9, 0.94])[0]


def test_edge_reached_once_at_095():
    ratio = [0.5, 0.8, 0.949, 0.95, 1.02, 0.97, 1.01]
    ev, events = run([1.0] * 7, [1.0] * 7, ratio)
    assert ev["edge_reached"].step == 30
    assert [e.name for e in events].count("edge_reached") == 1
    assert "edge_reached" not in run([1.0] * 4, [1.0] * 4, [0.5, 0.9, 0.94, 0.9])[0]


def test_above_edge_needs_three_consecutive_measurements_and_rearms_below_one():
    osc = [1.3, 0.9, 1.3, 0.9, 1.3, 1.26, 0.8]  # EoS oscillation: never 3 in a row above 1.25
    assert "above_edge" not in run([1.0] * 7, [1.0] * 7, osc)[0]
    ratio = [1.0, 1.3, 1.4, 1.5, 1.6, 0.9, 1.3, 1.3, 1.3]
    _, events = run([1.0] * 9, [1.0] * 9, ratio)
    steps = [e.step for e in events if e.name == "above_edge"]
    assert steps == [30, 80]  # once per excursion; again after the ratio fell below 1


def test_catapult_is_a_loss_spike_with_a_sharpness_drop():
    loss = [1.0, 0.9, 0.8, 5.0, 3.0, 0.7, 0.6, 0.5]
    sharp = [10.0, 10.5, 11.0, 11.0, 6.0, 5.0, 5.1, 5.2]
    ev, events = run(loss, sharp)
    e = ev["catapult"]
    assert e.step == 40 and e.values["loss_max"] == 5.0 and e.values["sharpness"] == 6.0
    assert [x.name for x in events].count("catapult") == 1
    # a loss spike without a sharpness drop (noise) and a sharpness drop without a spike: no catapult
    assert "catapult" not in run(loss, [10.0, 10.5, 11.0, 11.5, 11.6, 11.7, 11.8, 11.9])[0]
    assert "catapult" not in run([1.0, 0.9, 0.8, 0.7, 0.6, 0.5], [10, 10, 10, 5, 4, 3.0])[0]


def test_divergence_fires_once_and_ends_detection():
    ev, events = run([1.0, 2.0, math.inf, math.nan, 1.0], [1.0] * 5, [0.5, 0.99, 0.5, 0.5, 0.99])
    assert ev["divergence"].step == 20 and [e.name for e in events] == ["edge_reached", "divergence"]
    assert "divergence" not in run([1.0, 1e6, 1e12], [1.0] * 3)[0]  # large but finite is not divergence


def test_uncertified_sharpness_is_skipped_by_the_curvature_rules():
    ev, _ = run([1.0] * 4, [5.0, math.nan, math.nan, 5.1], [0.5, math.nan, math.nan, 0.51])
    assert ev == {}


@pytest.mark.parametrize("kw", [{"edge": 0}, {"above_count": 0}, {"spike": 1.0}, {"drop": 1.0}, {"window": 0}])
def test_bad_rules_are_one_sentence(kw):
    with pytest.raises(ValueError, match=f"EventRules {list(kw)[0]}="):
        EventRules(**kw)


def test_replaying_a_stored_run_uses_certified_values_at_the_loss_steps():
    """detect_events on store-shaped metrics: the events sit where numpy says they must on the stored curves."""
    from eoslab.monitor import detect_events
    steps = np.arange(0, 500, 50)
    lam = np.array([4.0, 4.1, 4.3, 4.5, 5.5, 7.0, 9.5, 10.2, 9.8, 10.1])
    ratio = lam / 10.0
    conv = np.ones(len(steps))
    conv[4] = 0.0  # step 200 is budget-capped: not certified, so it cannot fire anything
    metrics = {"train_loss": (steps, np.linspace(1, 0.1, len(steps))), "sharpness": (steps, lam),
               "edge_ratio": (steps, ratio), "sharpness_converged": (steps, conv)}
    got = {e.name: e.step for e in detect_events(metrics)}
    ok = conv == 1
    rise = np.flatnonzero(ok & (lam >= 1.1 * np.minimum.accumulate(np.where(ok, lam, np.inf))) & (ratio < 0.95))
    edge = np.flatnonzero(ok & (ratio >= 0.95))
    assert got == {"progressive_sharpening": int(steps[rise[0]]), "edge_reached": int(steps[edge[0]])}
    assert got["progressive_sharpening"] == 150 and got["edge_reached"] == 300
