"""The operator's path through the CLI: `linewatch simulate` / `replay` -> `linewatch ingest` -> `linewatch train`."""

from __future__ import annotations

import csv
import os
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from linewatch.ingest.reader import scan_readings
from linewatch.models.registry import Registry
from tests.integration.conftest import BrokerFactory
from tests.integration.ingest_proc import SHIPPED_LIMITS, IngestProcess, linewatch_exe, write_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SKAB = Path(os.environ.get("LINEWATCH_BENCH_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))


def _cli(*args: str, config: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINEWATCH_")}
    return subprocess.run(
        [linewatch_exe(), *args, "--config", str(config)], capture_output=True, text=True, timeout=timeout, env=env
    )


def _wait_rows(root: Path, n: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    rows = 0
    while time.monotonic() < deadline:
        if (root / "raw").exists():
            rows = int(scan_readings(root).select(pl.len()).collect().item())
            if rows >= n:
                return rows
        time.sleep(0.3)
    return rows


def test_simulate_ingest_train(tmp_path: Path, mosquitto_factory: BrokerFactory) -> None:
    broker = mosquitto_factory(config_extra=SHIPPED_LIMITS)
    config = write_config(tmp_path, broker)
    ingest = IngestProcess(config, tmp_path / "ingest.log").start()
    try:
        labels = tmp_path / "labels.csv"
        out = _cli(
            "simulate",
            "--speed",
            "0",
            "--duration",
            "7200",
            "--labels",
            str(labels),
            "--fault-free",
            "3600",
            "--fault-rate",
            "1",
            "--seed",
            "11",
            "--format",
            "record",
            config=config,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert "done:" in out.stderr
        rows = list(csv.DictReader(labels.open()))
        assert rows and set(rows[0]) == {"asset", "start", "end", "kind", "fault", "sensors"}
        stored = _wait_rows(ingest.data_root, 4 * 6 * 7200 * 95 // 100)
        assert stored >= 4 * 6 * 7200 * 95 // 100  # dropout faults remove some readings, nothing else may
        code, _ = ingest.terminate()
        assert code == 0

        trained = _cli("train", "--labels", str(labels), config=config, timeout=240)
        assert trained.returncode == 0, trained.stderr[-3000:]
        assert "first model of the group" in trained.stderr
        registry = Registry(ingest.data_root / "models")
        assert registry.champion("default") is not None
        listing = _cli("models", "list", config=config)
        assert listing.returncode == 0 and "default" in listing.stdout
        assert "clock" in listing.stdout and "UTC" in listing.stdout  # the zone its time of day is read in
    finally:
        ingest.cleanup()


@pytest.mark.skipif(not (SKAB / "skab" / "valve1" / "0.csv").exists(), reason=f"SKAB data not found under {SKAB}")
def test_replay_skab_file(tmp_path: Path, mosquitto_factory: BrokerFactory) -> None:
    broker = mosquitto_factory(config_extra=SHIPPED_LIMITS)
    config = write_config(tmp_path, broker)
    ingest = IngestProcess(config, tmp_path / "ingest.log").start()
    try:
        out = _cli("replay", str(SKAB / "skab" / "valve1" / "0.csv"), "--speed", "0", config=config)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "Volume_Flow_RateRMS" in out.stderr  # the renamed column is reported
        n_rows = pl.read_csv(SKAB / "skab" / "valve1" / "0.csv", separator=";").height
        assert _wait_rows(ingest.data_root, n_rows * 8) == n_rows * 8
        sensors = set(scan_readings(ingest.data_root).collect()["sensor"].unique().to_list())
        assert "Volume_Flow_RateRMS" in sensors and "anomaly" not in sensors and len(sensors) == 8
    finally:
        ingest.cleanup()
