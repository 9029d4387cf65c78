"""Data-quality summary on literal readings: coverage, gaps, flat lines, duplicates, counters, limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from linewatch.models.quality import QualityReport, UsabilityRules, render_text, summarise, usable_sensors

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def long_frame(rows: list[tuple[str, int, float]], asset: str = "p") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(seconds=s) for _, s, _ in rows],
            "asset": [asset] * len(rows),
            "sensor": [n for n, _, _ in rows],
            "value": [v for _, _, v in rows],
        },
        schema={"ts": pl.Datetime("us", "UTC"), "asset": pl.String, "sensor": pl.String, "value": pl.Float64},
    )


def test_coverage_gaps_duplicates_distribution() -> None:
    rows = [("a", 10 * i, float(i % 5)) for i in range(20) if i not in (3, 4, 10)]
    rows.append(("a", 0, 0.0))  # duplicate timestamp
    rows += [("b", 10 * i, 1.0) for i in range(20)]
    q = summarise(long_frame(rows), 10.0).sensors["a"]
    assert (q.expected_steps, q.observed_steps, q.readings, q.duplicates) == (20, 17, 18, 1)
    assert q.coverage == 17 / 20 and q.gaps == 2 and q.longest_gap_steps == 2
    assert q.min == 0.0 and q.max == 4.0 and q.median == 2.0 and not q.monotonic


def test_late_start_counts_as_missing_and_flat_line_and_counter() -> None:
    rows = [("late", 10 * i, float(i % 3)) for i in range(10, 20)]
    rows += [("flat", 10 * i, 6.0 if i < 10 else 5.0) for i in range(20)]  # two flat runs: never moves otherwise
    rows += [("idle", 10 * i, 5.0 if i < 15 or i % 2 else float(i)) for i in range(20)]  # idle 80 %, then moves
    rows += [("counter", 10 * i, float(i * i)) for i in range(20)]
    report = summarise(long_frame(rows), 10.0, flat_run=10)
    assert report.sensors["late"].coverage == 0.5 and report.sensors["late"].longest_gap_steps == 10
    assert report.sensors["flat"].flat_share == 1.0
    assert report.sensors["idle"].flat_share == 16 / 20
    assert report.sensors["counter"].monotonic
    usable, excluded = usable_sensors(report)
    assert usable == ["idle"]  # a sensor that rests most of the time but moves carries events: kept
    assert "coverage 50%" in excluded["late"]
    assert excluded["flat"] == "flat-lined 100% of the time (> 95%)" and "monotonic" in excluded["counter"]


def test_zero_variance_limits_and_rules_are_parameters() -> None:
    rows = [("const", 10 * i, 2.0) for i in range(30)] + [("hot", 10 * i, float(i)) for i in range(30)]
    rows += [("ok", 10 * i, float((i * 7) % 11)) for i in range(30)]
    report = summarise(long_frame(rows), 10.0, limits={"hot": (None, 20.0)})
    assert report.sensors["hot"].out_of_range_share == 9 / 30
    assert report.sensors["ok"].out_of_range_share is None
    usable, excluded = usable_sensors(report, UsabilityRules(max_flat_share=1.0, exclude_monotonic=False))
    assert usable == ["ok"]
    assert excluded["const"] == "zero variance"
    assert "outside the configured limits" in excluded["hot"]


def test_several_assets_are_pooled() -> None:
    a = long_frame([("x", 10 * i, float(i % 4)) for i in range(10)], "p")
    b = long_frame([("x", 10 * i, float(i % 4)) for i in range(0, 10, 2)], "q")
    q = summarise(pl.concat([a, b]), 10.0).sensors["x"]
    assert q.expected_steps == 19 and q.observed_steps == 15 and q.gaps == 4  # q's range: bins 0..8


def test_wide_frame_uses_the_observed_mask() -> None:
    wide = pl.DataFrame(
        {
            "ts": [T0 + timedelta(seconds=10 * i) for i in range(6)],
            "a": [1.0, 1.0, 1.0, None, 3.0, 2.0],
            "a:observed": [True, False, False, False, True, True],  # rows 1-2 forward-filled
        }
    )
    q = summarise(wide, 10.0).sensors["a"]
    assert (q.readings, q.observed_steps, q.gaps, q.longest_gap_steps) == (3, 3, 1, 3)
    assert q.coverage == 0.5


def test_dict_round_trip_and_text() -> None:
    rows = [("a", 10 * i, float(i % 5)) for i in range(20)] + [("b", 10 * i, 1.0) for i in range(20)]
    report = summarise(long_frame(rows), 10.0)
    data = json.loads(json.dumps(report.to_dict()))
    assert QualityReport.from_dict(data) == report
    _, excluded = usable_sensors(report)
    text = render_text(report, excluded)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["sensor", "readings", "coverage"]
    assert lines[1].split()[0] == "a" and lines[1].split()[-1] == "yes"
    assert lines[2].split()[-1] == "no" and "excluded b: " in text
    assert np.isfinite(report.sensors["a"].std or np.nan)
