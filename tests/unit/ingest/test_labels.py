"""Labels files: round trip, and errors that name the line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from linewatch.ingest.labels import FaultLabel, LabelError, format_ts, parse_labels, read_labels, write_labels

T0 = datetime(2024, 1, 1, 1, 0, 0, 250_000, tzinfo=UTC)
HEADER = "asset,start,end,kind,fault,sensors\n"


def test_round_trip(tmp_path: Path) -> None:
    labels = [
        FaultLabel("pump-02", T0 + timedelta(hours=1), T0 + timedelta(hours=2), "sensor_fault", "stuck", ("flow",)),
        FaultLabel(
            "pump-01",
            T0,
            T0 + timedelta(minutes=20),
            "machine_fault",
            "bearing_wear",
            ("vibration_rms", "bearing_temp"),
        ),
        FaultLabel("press-01", T0, T0 + timedelta(hours=8), "maintenance", "planned"),
    ]
    path = tmp_path / "labels.csv"
    write_labels(path, labels)
    text = path.read_text()
    assert text.startswith(HEADER)
    assert "pump-01,2024-01-01T01:00:00.250Z,2024-01-01T01:20:00.250Z,machine_fault,bearing_wear," in text
    assert "vibration_rms;bearing_temp" in text
    back = read_labels(path)
    assert sorted(back, key=repr) == sorted(labels, key=repr)
    assert not list(tmp_path.glob(".*tmp"))


def test_offsets_are_converted_to_utc() -> None:
    [label] = parse_labels(HEADER + "a1,2024-01-01T02:00:00+01:00,2024-01-01T01:30:00Z,machine_fault,leak,\n")
    assert label.start == datetime(2024, 1, 1, 1, 0, tzinfo=UTC)
    assert label.sensors == ()
    assert format_ts(datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=1)))) == "2024-01-01T01:00:00.000Z"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a1,2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,broken,leak,", "kind must be one of"),
        ("a1,2024-01-01T00:00:00,2024-01-01T01:00:00Z,machine_fault,leak,", "no UTC offset"),
        ("a1,yesterday,2024-01-01T01:00:00Z,machine_fault,leak,", "bad start time"),
        ("a1,2024-01-01T02:00:00Z,2024-01-01T01:00:00Z,machine_fault,leak,", "not after start"),
        ("../x,2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,machine_fault,leak,", "invalid asset"),
        ("a1,2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,machine_fault,leak,bad sensor", "invalid sensor"),
        ("a1,2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,machine_fault", "expected 6 fields"),
    ],
)
def test_bad_rows_name_file_and_line(row: str, message: str) -> None:
    good = "a0,2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,sensor_fault,spike,flow\n"
    with pytest.raises(LabelError, match=rf"labels\.csv:3: .*{message}"):
        parse_labels(HEADER + good + row + "\n", source="labels.csv")


def test_bad_header_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match=":1: header must be"):
        parse_labels("asset,begin,end,kind,fault,sensors\n")
    with pytest.raises(LabelError, match="empty file"):
        parse_labels("")
    with pytest.raises(LabelError, match="cannot read"):
        read_labels(tmp_path / "missing.csv")


def test_label_requires_aware_times() -> None:
    with pytest.raises(LabelError, match="timezone-aware"):
        FaultLabel("a1", datetime(2024, 1, 1), T0, "machine_fault", "leak")
