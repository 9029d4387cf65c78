"""The hold-out comparison behind training's "the held-out hours differ" warning, on literal arrays."""

from __future__ import annotations

import numpy as np
import pytest

from linewatch.models.shift import (
    MAX_LINE_WINDOWS,
    RATIO_WARN,
    SHIFT_WARN_SHARE,
    holdout_shift,
    line_sample,
    training_line,
    warns,
)


def test_alike_parts_are_not_shifted() -> None:
    rng = np.random.default_rng(0)
    train, held = rng.gamma(2.0, size=5000), rng.gamma(2.0, size=2000)
    line = training_line(train)
    shift = holdout_shift(line, held, threshold=2.5 * line)
    assert shift.over_line == pytest.approx(0.01, abs=0.006)
    assert shift.threshold_ratio == pytest.approx(2.5)
    assert not shift.shifted and shift.sensors == ()
    assert shift.metrics() == {"holdout_over_training_line": shift.over_line, "threshold_over_training_line": 2.5}


def test_a_shifted_hold_out_names_the_sensors_that_carry_its_scores() -> None:
    held = np.array([0.5, 2.0, 4.0, 0.2, 0.1])  # two of five over the line 1.0
    shares = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5]])  # weighted by score: a = 1.8 + 0.8, b = 0.2 + 1.2, c = 2.0
    shift = holdout_shift(1.0, held, 3.0, shares, ["a", "b", "c"])
    assert shift.over_line == pytest.approx(0.4) and shift.shifted
    assert [s for s, _ in shift.sensors] == ["a", "c", "b"]
    np.testing.assert_allclose([v for _, v in shift.sensors], [2.6 / 6.0, 2.0 / 6.0, 1.4 / 6.0])
    text = shift.message("pumps")
    assert text.startswith("warning: group pumps:") and "40.0% of their windows" in text
    assert "a (43%), c (33%), b (23%)" in text and "3.0x that line" in text and "will not alarm" not in text


def test_a_far_threshold_alone_is_a_warning() -> None:
    held = np.r_[np.full(995, 0.5), np.full(5, 30.0)]  # 0.5 % over the line, but far over it
    shift = holdout_shift(1.0, held, 25.0, np.tile([[0.0, 1.0]], (5, 1)), ["a", "b"])
    assert shift.over_line < SHIFT_WARN_SHARE and shift.threshold_ratio > RATIO_WARN and shift.shifted
    assert shift.sensors[0] == ("b", 1.0) and "so weaker faults will not alarm" in shift.message("g")


def test_warning_rule_and_a_line_that_is_not_positive() -> None:
    assert warns(SHIFT_WARN_SHARE + 0.01, 1.0) and warns(0.0, RATIO_WARN + 0.1)
    assert not warns(SHIFT_WARN_SHARE, RATIO_WARN) and not warns(0.0, float("nan"))
    shift = holdout_shift(-1.0, np.array([-2.0, 0.5]), 1.0)
    assert np.isnan(shift.threshold_ratio) and "threshold_over_training_line" not in shift.metrics()
    assert "x that line" not in shift.message("g")


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="no finite training score"):
        training_line([np.nan])
    with pytest.raises(ValueError, match="no finite held-out score"):
        holdout_shift(1.0, [np.nan], 1.0)
    with pytest.raises(ValueError, match="over_shares shaped"):
        holdout_shift(1.0, [2.0, 3.0], 1.0, np.ones((1, 2)), ["a", "b"])


def test_line_sample_is_all_or_evenly_spaced() -> None:
    np.testing.assert_array_equal(line_sample(5), np.arange(5))
    big = line_sample(10 * MAX_LINE_WINDOWS + 3)
    assert big.size == MAX_LINE_WINDOWS and big[0] == 0 and big[-1] == 10 * MAX_LINE_WINDOWS + 2
    assert np.all(np.diff(big) > 0)
