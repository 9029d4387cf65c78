"""The simulated-plant alert accounting on hand-built scored windows: which alerts are false, of which kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from linewatch.ingest.labels import FaultLabel
from linewatch.models.health import Status
from linewatch.models.model import ScoredWindows
from linewatch.models.simeval import SimEvalResult, evaluate_asset

START = datetime(2026, 11, 1, tzinfo=UTC)
SENSORS = ("a", "b")


def scored(anomalous: list[int], unhealthy: list[int], n: int = 100) -> ScoredWindows:
    """``n`` windows 10 s apart; the listed indices anomalous (score 2) or with sensor ``b`` stuck."""
    score = np.full(n, 0.5)
    score[anomalous] = 2.0
    health = np.zeros((n, 2), dtype=np.int8)
    health[unhealthy, 1] = int(Status.STUCK)
    ts = np.datetime64(START.replace(tzinfo=None), "us") + np.arange(n) * np.timedelta64(10, "s")
    shares = np.full((n, 2), 0.5)
    return ScoredWindows(ts, score, score, score / 2, shares, shares, shares, health, np.ones(n, bool), SENSORS)


def test_false_machine_and_sensor_alerts_are_counted_apart() -> None:
    # Windows 10-14: a machine alert inside the labelled fault; 40-44: a machine alert nobody explains;
    # 60-64 and 80-84: sensor alerts nobody explains. Runs of 1 are below the 3-window minimum.
    label = FaultLabel(
        "m1", START + timedelta(seconds=90), START + timedelta(seconds=160), "machine_fault", "leak", ("a",)
    )
    result = SimEvalResult()
    windows = scored([10, 11, 12, 13, 14, 40, 41, 42, 43, 44, 90], [60, 61, 62, 63, 64, 80, 81, 82, 83, 84, 95])
    evaluate_asset(windows, [label], "m1", 60.0, result)
    assert result.machine_detected == 1 and result.false_machine_alerts == 1
    assert result.false_sensor_alerts == 2
    summary = result.summary()
    assert summary["false_sensor_alerts_per_asset_week"] == 2 / result.normal_weeks > 0


def test_an_unexplained_machine_alert_says_when_how_long_how_high_and_which_sensor() -> None:
    windows = scored([40, 41, 42, 43, 44], [])
    windows.anomaly_score[42] = 3.5
    windows.contributions[40:45] = [0.2, 0.8]  # sensor b carries the alert
    result = SimEvalResult()
    evaluate_asset(windows, [], "m1", 60.0, result)
    assert result.false_machine_alerts == 1
    (alert,) = result.unexplained
    assert alert["asset"] == "m1"
    assert alert["start"] == (START + timedelta(seconds=400)).isoformat()
    assert alert["duration_s"] == 40.0  # from the first flagged window's end to the last's
    assert alert["peak_score"] == 3.5
    assert alert["named_sensor"] == "b"
