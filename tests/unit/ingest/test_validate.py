"""Validation policy and the timestamp window."""

from __future__ import annotations

import pytest

from linewatch.ingest.records import Reading, Reject
from linewatch.ingest.validate import ValidationPolicy, check_reading, validate_readings

NOW = 1_700_000_000_000_000


def reading(ts_us: int) -> Reading:
    return Reading(ts_us, "a1", "temp", 1.0, NOW)


def test_defaults() -> None:
    p = ValidationPolicy()
    assert (p.max_future_skew_s, p.max_age_s) == (300.0, 604_800.0)
    assert (p.max_payload_bytes, p.quarantine_payload_bytes, p.accept_missing_ts) == (262_144, 4096, False)
    assert p.window_us(NOW) == (NOW - 604_800_000_000, NOW + 300_000_000)


@pytest.mark.parametrize("kwargs", [{"max_age_s": 0}, {"max_future_skew_s": -1}, {"max_payload_bytes": 0}])
def test_policy_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ValidationPolicy(**kwargs)  # type: ignore[arg-type]


def test_window_edges_inclusive() -> None:
    p = ValidationPolicy(max_future_skew_s=10, max_age_s=20)
    inside = [reading(NOW - 20_000_000), reading(NOW), reading(NOW + 10_000_000)]
    rejects: list[Reject] = []
    assert validate_readings(inside, NOW, p, rejects) is inside
    assert rejects == []


def test_outside_window_rejected() -> None:
    p = ValidationPolicy(max_future_skew_s=10, max_age_s=20)
    batch = [reading(NOW - 20_000_001), reading(NOW), reading(NOW + 10_000_001)]
    rejects: list[Reject] = []
    kept = validate_readings(batch, NOW, p, rejects)
    assert kept == [batch[1]]
    assert [r.reason for r in rejects] == ["ts_too_old", "ts_future"]


def test_check_reading() -> None:
    assert check_reading(reading(5), 0, 10) is None
    future = check_reading(reading(11_000_000), 0, 10)
    assert future is not None and future.reason == "ts_future"
