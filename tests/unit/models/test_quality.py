"""Data-quality summary on literal readings: coverage, gaps, flat lines, duplicates, counters, limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from linewatch.models.quality import (
    QualityReport,
    UsabilityRules,
    render_text,
    summarise,
    usable_sensors,
    wandering_levels,
)
from linewatch.models.unit_root import unexplained_p, unit_root_p

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


def test_a_wandering_level_is_excluded_with_its_reason() -> None:
    rng = np.random.default_rng(7)
    n = 600
    walk = np.cumsum(rng.normal(size=n))  # a random walk: no normal level to learn from this span
    noise = rng.normal(size=n)  # returns to its mean at once
    rows = [("walk", i, float(v)) for i, v in enumerate(walk)] + [("noise", i, float(v)) for i, v in enumerate(noise)]
    report = summarise(long_frame(rows), 1.0)
    assert (report.sensors["walk"].unit_root_p or 0.0) > 0.05
    assert (report.sensors["noise"].unit_root_p or 1.0) < 0.01
    assert usable_sensors(report)[0] == ["noise", "walk"]  # reported, but the rule is opt-in
    usable, excluded = usable_sensors(report, UsabilityRules(max_unit_root_p=0.05))  # nothing else explains it
    assert usable == ["noise"]
    assert excluded["walk"].startswith("level wanders like a random walk over the training data (ADF p = ")
    assert "adf p" in render_text(report, excluded).splitlines()[0]


def test_a_wander_other_sensors_explain_is_kept_and_a_lone_one_is_not() -> None:
    """Load-driven sensors wander together on a short span (kept: the model learns their relation); a level that
    wanders on its own is left out. Partners are matched by asset and by time step."""
    rng = np.random.default_rng(11)
    n = 800
    frames = []
    for asset in "pq":
        load = np.cumsum(rng.normal(size=n))  # a wandering load
        series = {
            "current": 2.0 * load + rng.normal(scale=0.3, size=n),
            "flow": -0.5 * load + rng.normal(scale=0.3, size=n),
            "thermo": np.cumsum(rng.normal(size=n)),  # a drift of its own
            "vibration": rng.normal(size=n),  # does not wander: not a partner, not judged
        }
        rows = [(name, i, float(v)) for name, values in series.items() for i, v in enumerate(values)]
        frames.append(long_frame(rows[::-1], asset))  # reverse order: alignment must not rely on row order
    report = summarise(pl.concat(frames), 1.0)
    q = report.sensors
    assert all((q[s].unit_root_p or 0.0) > 0.05 for s in ("current", "flow", "thermo"))
    explained = [q[s].unexplained_p for s in ("current", "flow")]
    assert all(p is not None and p < 0.01 for p in explained), explained
    assert (q["thermo"].unexplained_p or 0.0) > 0.05
    assert q["vibration"].unexplained_p is None
    usable, excluded = usable_sensors(report, UsabilityRules(max_unit_root_p=0.05))
    assert usable == ["current", "flow", "vibration"]
    # Kept instead (the default), the same level is the one training gives room to wander.
    assert wandering_levels(report, ["vibration", "thermo", "flow", "absent"], 0.05) == [1]
    assert wandering_levels(report, ["thermo"], None) == []
    assert "no other sensor explains it (Engle-Granger p = " in excluded["thermo"]
    assert render_text(report, excluded).splitlines()[0].split()[9:12] == ["adf", "p", "alone"]
    # The wander level follows the rule's: a sensor at or below it is not judged, nor anyone's partner.
    level = q["current"].unit_root_p
    assert level is not None
    raised = summarise(pl.concat(frames), 1.0, wander_p=level).sensors
    assert raised["current"].unexplained_p is None
    for name in ("flow", "thermo"):
        assert (raised[name].unexplained_p is None) == ((q[name].unit_root_p or 0.0) <= level)
    # Asset q's partners paired with asset p's target would explain nothing: each asset is judged on its own.
    alone = summarise(frames[0], 1.0).sensors
    assert alone["current"].unexplained_p is not None and alone["current"].unexplained_p < 0.01


def test_unexplained_p_edge_cases() -> None:
    rng = np.random.default_rng(12)
    walk = np.cumsum(rng.normal(size=400))
    assert unexplained_p(walk, np.zeros((400, 0))) == unit_root_p(walk)  # no partner: its own ADF p
    assert unexplained_p(walk, np.ones((400, 1))) == unit_root_p(walk)  # a constant partner explains nothing
    assert unexplained_p(walk[:20], walk[:20, None]) is None  # too short to test
    assert unexplained_p(walk, 3.0 * walk[:, None]) == 0.0  # explained exactly
    many = np.column_stack(
        [walk + rng.normal(scale=0.1, size=400)] + [np.cumsum(rng.normal(size=400)) for _ in range(8)]
    )
    p = unexplained_p(walk, many)  # more partners than MacKinnon tabulated: still found
    assert p is not None and p < 0.05


def test_unit_root_is_judged_per_asset_and_pooled_by_median() -> None:
    rng = np.random.default_rng(8)
    frames = [long_frame([("x", i, float(v)) for i, v in enumerate(rng.normal(size=300))], a) for a in "pq"]
    frames.append(long_frame([("x", i, float(v)) for i, v in enumerate(np.cumsum(rng.normal(size=300)))], "r"))
    q = summarise(pl.concat(frames), 1.0).sensors["x"]
    assert q.unit_root_p is not None and q.unit_root_p < 0.05  # one wandering asset of three does not drop it
    assert usable_sensors(summarise(frames[2], 1.0), UsabilityRules(max_unit_root_p=0.05))[0] == []
    short = summarise(long_frame([("s", i, float(i % 7)) for i in range(20)]), 1.0).sensors["s"]
    assert short.unit_root_p is None  # too short to test: the rule does not apply


def test_reports_without_the_unit_root_field_still_load() -> None:
    rows = [("a", 10 * i, float(i % 5)) for i in range(20)]
    data = summarise(long_frame(rows), 10.0).to_dict()
    del data["sensors"]["a"]["unit_root_p"]  # a bundle trained before the rule existed
    assert QualityReport.from_dict(data).sensors["a"].unit_root_p is None
