"""Loading recorded datasets (CSV/Parquet, wide/long) into readings for replay."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from linewatch.core.schema import is_valid_name
from linewatch.ingest.replay import (
    DatasetError,
    asset_from_path,
    labels_from_columns,
    load_dataset,
    replay_steps,
    sanitise_name,
)

REPO = Path(__file__).resolve().parents[3]
BENCH_DATA = Path(os.environ.get("LINEWATCH_BENCH_DATA", REPO.parent / "shared" / "data"))
SKAB_FILE = BENCH_DATA / "skab" / "valve1" / "0.csv"


def test_sanitise_name() -> None:
    assert sanitise_name("Volume Flow RateRMS") == "Volume_Flow_RateRMS"
    assert sanitise_name("  temp (°C) / inlet ") == "temp_C_inlet"
    assert sanitise_name("..hidden") == "hidden"
    assert sanitise_name("a..b") == "a_b"
    assert sanitise_name("###") == "sensor"
    assert len(sanitise_name("x" * 100)) == 64
    assert asset_from_path(Path("skab/valve1/0.csv")) == "valve1-0"
    assert asset_from_path(Path("data/line 3.csv")) == "line_3"


@pytest.mark.skipif(not SKAB_FILE.exists(), reason=f"SKAB data not found at {SKAB_FILE} (set LINEWATCH_BENCH_DATA)")
def test_skab_file_loads_with_sanitised_names_and_labels() -> None:
    ds = load_dataset(SKAB_FILE)
    assert ds.asset == "valve1-0"
    sensors = sorted(ds.readings["sensor"].unique())
    assert len(sensors) == 8
    assert all(is_valid_name(s) for s in sensors)
    assert ds.renames == {"Volume Flow RateRMS": "Volume_Flow_RateRMS"}
    assert "anomaly" not in sensors and "changepoint" not in sensors
    assert ds.labels is not None and set(ds.labels.columns) == {"ts", "anomaly", "changepoint"}
    assert ds.readings.schema["ts"] == pl.Datetime("us", "UTC")
    assert ds.readings["ts"].min() == datetime(2020, 3, 9, 10, 14, 33, tzinfo=UTC)
    windows = labels_from_columns(ds)
    assert windows and all(w.asset == "valve1-0" and w.fault == "anomaly" for w in windows)
    steps = list(replay_steps(ds.readings))
    assert len(steps) == ds.labels.height
    assert len(steps[0][2]) == 8


def test_csv_with_commas_bad_values_and_no_named_time_column(tmp_path: Path) -> None:
    path = tmp_path / "7.csv"
    path.write_text("when,a b,label,c\n2024-01-01 00:00:00,1.5,0,x\n2024-01-01 00:00:01,2.5,1,3\n")
    ds = load_dataset(path, asset="m1")
    assert ds.asset == "m1"
    assert ds.dropped_values == 1
    assert ds.renames == {"a b": "a_b"}
    assert ds.readings.height == 3
    steps = list(replay_steps(ds.readings))
    assert steps[0] == (datetime(2024, 1, 1, tzinfo=UTC), "m1", {"a_b": 1.5})
    assert steps[1][2] == {"a_b": 2.5, "c": 3.0}
    [window] = labels_from_columns(ds, "label")
    assert window.start == datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_name_clashes_get_suffixes(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("ts;a b;a_b\n2024-01-01T00:00:00Z;1;2\n")
    ds = load_dataset(path)
    assert sorted(ds.readings["sensor"]) == ["a_b", "a_b_2"]


def test_parquet_long_and_wide(tmp_path: Path) -> None:
    ts = [datetime(2024, 1, 1, 0, 0, s) for s in range(3)]
    long = pl.DataFrame({"ts": ts * 2, "asset": ["p1"] * 3 + ["p2"] * 3, "sensor": ["v"] * 6,
                         "value": [1.0, 2.0, float("nan"), 4.0, 5.0, 6.0]})  # fmt: skip
    long.write_parquet(tmp_path / "long.parquet")
    ds = load_dataset(tmp_path / "long.parquet")
    assert ds.asset is None and ds.dropped_values == 1
    assert [(a, v) for _, a, v in replay_steps(ds.readings)][:2] == [("p1", {"v": 1.0}), ("p2", {"v": 4.0})]
    pl.DataFrame({"timestamp": ts, "speed": [1.0, 2.0, 3.0]}).write_parquet(tmp_path / "wide.parquet")
    wide = load_dataset(tmp_path / "wide.parquet")
    assert wide.asset == "wide" and wide.readings.height == 3
    assert wide.readings["ts"][0] == datetime(2024, 1, 1, tzinfo=UTC)


def test_epoch_seconds_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("time,x\n1700000000,1\n1700000001,2\n")
    assert load_dataset(path).readings["ts"][0] == datetime.fromtimestamp(1700000000, UTC)
    bad = tmp_path / "b.csv"
    bad.write_text("time,x\nnot a time,1\n")
    with pytest.raises(DatasetError, match="cannot parse time column"):
        load_dataset(bad)
    with pytest.raises(DatasetError, match="unsupported file type"):
        load_dataset(tmp_path / "x.json")
    with pytest.raises(DatasetError, match="invalid asset"):
        load_dataset(path, asset="../etc")
