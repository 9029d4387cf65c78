"""Writer side of the raw store: layout, schema, durability conventions and name checks (real files)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from linewatch.core.clock import ManualClock
from linewatch.core.paths import UnsafePathError
from linewatch.core.schema import READING_SCHEMA
from linewatch.ingest.fsutil import atomic_write_parquet, is_temp_name, temp_name_for
from linewatch.ingest.records import QuarantineRecord, Reading
from linewatch.ingest.store import (
    QUARANTINE_SCHEMA,
    ParquetStore,
    day_of_us,
    is_data_file,
    partition_dir,
    readings_table,
)

DAY_US = 86_400_000_000
T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


def reading(ts_us: int, asset: str = "pump-1", sensor: str = "temp", value: float = 1.0) -> Reading:
    return Reading(ts_us=ts_us, asset=asset, sensor=sensor, value=value, received_us=ts_us + 5)


def test_partitions_by_asset_and_utc_date(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path, "ingest-a", clock=ManualClock(datetime(2024, 1, 3, 12, tzinfo=UTC)))
    rows = [
        reading(T0 + 1, "pump-1"),
        reading(T0 + DAY_US - 1, "pump-1", "vib"),
        reading(T0 + DAY_US, "pump-1"),
        reading(T0 + 7, "fan.2"),
    ]
    paths = store.write_readings(rows)
    rel = sorted(p.relative_to(tmp_path.resolve()).parent.as_posix() for p in paths)
    assert rel == [
        "raw/asset=fan.2/date=2024-01-01",
        "raw/asset=pump-1/date=2024-01-01",
        "raw/asset=pump-1/date=2024-01-02",
    ]
    for path in paths:
        assert path.name.startswith("ingest-a-20240103T120000-") and path.name.endswith(".parquet")
        assert pq.read_schema(path).remove_metadata() == READING_SCHEMA
    assert sum(pq.read_metadata(p).num_rows for p in paths) == 4


def test_rows_sorted_by_sensor_then_ts_within_a_file(tmp_path: Path) -> None:
    rows = [reading(T0 + 3, sensor="b"), reading(T0 + 2, sensor="a"), reading(T0 + 1, sensor="b")]
    (path,) = ParquetStore(tmp_path, "w").write_readings(rows)
    table = pq.read_table(path)
    assert table.column("sensor").to_pylist() == ["a", "b", "b"]
    assert [t.timestamp() for t in table.column("ts").to_pylist()] == [
        (T0 + 2) / 1e6,
        (T0 + 1) / 1e6,
        (T0 + 3) / 1e6,
    ]


def test_file_names_never_collide(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
    a, b = ParquetStore(tmp_path, "a", clock=clock), ParquetStore(tmp_path, "a", clock=clock)
    paths = [p for _ in range(20) for s in (a, b) for p in s.write_readings([reading(T0)])]
    assert len(set(paths)) == 40


def test_empty_batches_write_nothing(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path, "w")
    assert store.write_readings([]) == []
    assert store.write_quarantine([]) is None
    assert not (tmp_path / "raw").exists()


def test_quarantine_file(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path, "w")
    records = [
        QuarantineRecord(T0 + 10, "plant/x/../y", b"\x00\xffjunk", "bad_topic", "asset name"),
        QuarantineRecord(T0 + 5, "plant/a/b/c", b"{}", "bad_json", ""),
    ]
    path = store.write_quarantine(records)
    assert path is not None
    assert path.parent == tmp_path.resolve() / "quarantine" / "date=2024-01-01"
    table = pq.read_table(path)
    assert table.schema.remove_metadata() == QUARANTINE_SCHEMA
    assert table.column("payload").to_pylist() == [b"\x00\xffjunk", b"{}"]
    assert table.column("reason").to_pylist() == ["bad_topic", "bad_json"]


@pytest.mark.parametrize("asset", ["..", "../etc", "a/b", "", ".hidden", "x" * 65, "a\0b", "a..b"])
def test_hostile_asset_names_fail_before_touching_disk(tmp_path: Path, asset: str) -> None:
    store = ParquetStore(tmp_path, "w")
    with pytest.raises(UnsafePathError):
        store.write_readings([reading(T0, "good"), reading(T0, asset)])
    assert list(tmp_path.iterdir()) == []  # not even the good asset's partition was created
    with pytest.raises(UnsafePathError):
        partition_dir(tmp_path, asset, date(2024, 1, 1))


@pytest.mark.parametrize("writer", ["../w", "a/b", "", "compacted"])
def test_bad_writer_ids_are_refused(tmp_path: Path, writer: str) -> None:
    with pytest.raises(ValueError, match="writer"):
        ParquetStore(tmp_path, writer)


def test_atomic_write_leaves_no_temp_and_refuses_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "f.parquet"
    table = readings_table([reading(T0)])
    atomic_write_parquet(table, target)
    assert [p.name for p in target.parent.iterdir()] == ["f.parquet"]
    with pytest.raises(FileExistsError):
        atomic_write_parquet(table, target)
    assert pq.read_table(target).num_rows == 1


def test_temp_names_are_invisible_to_readers(tmp_path: Path) -> None:
    tmp = temp_name_for(tmp_path / "x.parquet")
    assert is_temp_name(tmp.name)
    assert not is_data_file(tmp.name)
    assert not is_data_file(".compact.lock")
    assert not is_data_file("_SUCCESS")
    assert is_data_file("w-20240101T000000-abc.parquet")


def test_day_of_us_floors_before_1970() -> None:
    assert day_of_us(0) == date(1970, 1, 1)
    assert day_of_us(-1) == date(1969, 12, 31)
    assert day_of_us(T0 + DAY_US - 1) == date(2024, 1, 1)


def test_pre_1970_readings_land_in_their_day(tmp_path: Path) -> None:
    (path,) = ParquetStore(tmp_path, "w").write_readings([reading(-1)])
    assert path.parent.name == "date=1969-12-31"
