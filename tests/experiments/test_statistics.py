"""Time-series statistics shared by the reproductions' claims."""
import math

import numpy as np
import pytest

from eoslab.experiments import statistics as st


def test_window_median_quartiles_ignore_non_finite_values():
    steps = np.arange(10)
    values = np.array([0, 1, 2, np.nan, 4, 5, np.inf, 7, 8, 9], float)
    s, v = st.window(steps, values, 2, 5)
    assert s.tolist() == [2, 3, 4, 5]
    assert st.median(v) == 4.0 and st.median([]) != st.median([])  # NaN when empty
    assert st.window(steps, values, hi=1)[0].tolist() == [0, 1] and len(st.window(steps, values, lo=3)[0]) == 7
    assert st.quartiles([1, 2, 3, 4, 5]) == (2.0, 4.0)
    assert all(math.isnan(q) for q in st.quartiles([np.nan]))


def test_fraction_above_is_strict_and_nan_when_empty():
    assert st.fraction_above([1, 2, 3, 4], 2) == 0.5
    assert st.fraction_above([2, 2], 2) == 0.0
    assert math.isnan(st.fraction_above([np.nan], 2))


def test_value_at_or_after_and_first_step_at():
    steps, values = np.array([0, 50, 100]), np.array([1.0, 5.0, 9.0])
    assert st.value_at_or_after(steps, values, 10) == 5.0 and math.isnan(st.value_at_or_after(steps, values, 101))
    assert st.first_step_at(steps, values, 5.0) == 50 and st.first_step_at(steps, values, 10) is None


def test_period2_median_sees_both_phases_where_subsampling_aliases():
    steps = np.arange(400)
    values = np.where(steps % 2 == 0, 1.7, 2.5)  # a period-2 oscillation about 2.1
    assert st.period2_median(steps, values) == pytest.approx(2.1)
    assert st.period2_fraction_above(steps, values, 2) == 0.5
    every_50 = steps % 50 == 0  # eval steps every 50: one phase only
    assert st.median(values[every_50]) == 1.7
    assert math.isnan(st.period2_median(steps[every_50], values[every_50]))  # refuses to guess
    assert math.isnan(st.period2_fraction_above(steps[every_50], values[every_50], 2))
    assert st.coverage(steps[every_50], 0, 399) == pytest.approx(8 / 400) and st.coverage(steps, 0, 399) == 1.0


def test_balanced_pairs_keep_the_phases_balanced_where_steps_are_missing():
    steps = np.arange(12)
    values = np.where(steps % 2 == 0, 1.0, 3.0)
    keep = ~np.isin(steps, [3, 5, 7])  # three odd-phase values left out (unconverged solves)
    pooled = st.balanced_pairs(steps[keep], values[keep])
    assert sorted(pooled.tolist()) == [1.0] * 3 + [3.0] * 3  # pairs (0, 1), (8, 9), (10, 11)
    assert st.fraction_above(values[keep], 2) == pytest.approx(3 / 9)  # unpaired: biased to one phase
    assert st.period2_fraction_above(steps[keep], values[keep], 2) == 0.5
    assert st.balanced_pairs([0, 1, 2], [1.0, np.nan, 2.0]).tolist() == []  # non-finite values break pairs


def test_period2_median_sits_where_the_two_phases_meet():
    steps = np.arange(200)
    low = np.where(steps % 4 == 0, 1.2, 1.0)
    high = 2.6 + 7.4 * ((steps // 2) % 10) / 9  # the high phase spread over 2.6-10 (Polyak near its cap)
    values = np.where(steps % 2 == 0, low, high)
    assert st.period2_median(steps, values) == pytest.approx((1.2 + 2.6) / 2)  # where the phases split
    assert np.median(st.two_step_means(steps, values)) > 3.5  # a mean of the phases follows the spread one


def test_two_step_means_skip_gaps_and_non_finite_values():
    steps = np.array([0, 1, 2, 5, 6, 8])
    values = np.array([1.0, 3.0, np.nan, 2.0, 4.0, 7.0])
    assert st.two_step_means(steps, values).tolist() == [2.0, 3.0]  # (0, 1) and (5, 6)


def test_fraction_of_rises_measures_non_monotonicity():
    steps = np.arange(6)
    assert st.fraction_of_rises(steps, [5, 4, 3, 2, 1, 0.5]) == 0.0
    assert st.fraction_of_rises(steps, [5, 6, 3, 4, 1, 0.5]) == pytest.approx(2 / 5)
    assert st.fraction_of_rises(steps, [1, 1 + 1e-5, 1, 1, 1, 1]) == 0.0  # below the relative threshold
    assert math.isnan(st.fraction_of_rises([0, 2, 4], [1, 2, 3]))


def test_level_stats():
    steps = np.arange(100)
    values = np.where(steps % 2 == 0, 1.5, 2.3)
    stats = st.level_stats(steps, values, 2.0, lo=50, hi=99)
    assert stats.n == 50 and stats.coverage == 1.0 and stats.above == 0.5
    assert stats.median == pytest.approx(1.9) and stats.q25 == 1.5 and stats.q75 == 2.3
    sparse = st.level_stats(steps[::25], values[::25], 2.0, lo=0, hi=99)
    assert sparse.n == 0 and math.isnan(sparse.median) and sparse.coverage == pytest.approx(0.04)


def test_spread_counts_and_keeps_grid_edges():
    s = st.spread([2.0, 4.0, math.inf, 3.0, math.nan])
    assert s == dict(median=3.5, min=2.0, max=math.inf, n=4, missing=1)
    empty = st.spread([math.nan])
    assert (empty["n"], empty["missing"]) == (0, 1) and math.isnan(empty["median"])


def test_distances_within_summarises_and_counts():
    d = np.asarray([0.0, 0.1, 0.2, 0.3, 10.0])
    s = st.distances_within(d, 0.25)
    assert s["n_points"] == 5 and s["median"] == 0.2 and s["max"] == 10.0
    assert s["fraction_within_tol"] == 0.6 and 0.3 < s["p99"] <= 10.0
    assert st.distances_within(np.zeros(0), 0.1)["n_points"] == 0
