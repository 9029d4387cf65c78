"""`linewatch ingest` end to end: a real broker, a real subprocess, real Parquet files, real HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import polars as pl
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from linewatch.ingest.compaction import compact
from linewatch.ingest.publish import PublishStats, publish_stream
from linewatch.ingest.reader import scan_readings
from tests.integration.conftest import BrokerFactory
from tests.integration.ingest_proc import SHIPPED_LIMITS, IngestProcess, metric_value, write_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SENSORS = ("s1", "s2", "s3", "s4", "s5")


def _steps(
    n: int, assets: tuple[str, ...] = ("pump-01", "pump-02")
) -> Iterator[tuple[datetime, str, dict[str, float]]]:
    """n steps of 5 readings, timestamps in the recent past (inside the validation window)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    for i in range(n):
        ts = start + timedelta(milliseconds=100 * (i // len(assets)))
        asset = assets[i % len(assets)]
        yield ts, asset, {s: float(i) + k / 10 for k, s in enumerate(SENSORS)}


def _distinct(root: Path) -> int:
    if not (root / "raw").exists():
        return 0
    return int(scan_readings(root).select(pl.len()).collect().item())


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _raw_rows(root: Path) -> pl.DataFrame:
    files = sorted((root / "raw").rglob("*.parquet"))
    return pl.concat([pl.read_parquet(f).select("asset", "sensor", "ts") for f in files])


def _publish_in_thread(broker_port: int, n_steps: int, out: list[PublishStats]) -> threading.Thread:
    def run() -> None:
        out.append(
            publish_stream(
                _steps(n_steps),
                host="127.0.0.1",
                port=broker_port,
                fmt="record",
                speed=0,
                client_id="lw-test-publisher",
                drain_timeout_s=180,
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_good_bad_and_hostile_input(tmp_path: Path, mosquitto_factory: BrokerFactory) -> None:
    broker = mosquitto_factory(config_extra=SHIPPED_LIMITS)
    ingest = IngestProcess(write_config(tmp_path, broker), tmp_path / "ingest.log").start()
    try:
        now = datetime.now(UTC)
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        client.connect(broker.host, broker.port)
        client.loop_start()
        msgs = [
            ("plant/s1/pump-01/temp", json.dumps({"ts": now.isoformat(), "value": 71.5})),
            ("plant/s1/pump-01", json.dumps({"ts": now.timestamp(), "values": {"a": 1.0, "b": 2.0}})),
            ("plant/s1/pump-01/temp", "not json"),
            ("plant/s1/pump-01/temp", json.dumps({"ts": now.isoformat(), "value": "NaN"})),
            ("plant/s1/../etc", json.dumps({"ts": now.isoformat(), "value": 1})),
            ("plant/s1/..", json.dumps({"ts": now.isoformat(), "values": {"x": 1}})),
            ("plant/s1/" + "x" * 300 + "/t", json.dumps({"ts": now.isoformat(), "value": 1})),
            ("plant/s1/pump-01/temp", json.dumps({"ts": (now + timedelta(days=2)).isoformat(), "value": 1})),
        ]
        for topic, payload in msgs:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()

        def settled() -> bool:
            page = ingest.http("/metrics")[1]
            return sum(
                metric_value(page, "linewatch_ingest_messages_total", f'result="{r}"')
                for r in ("stored", "partial", "quarantined")
            ) >= len(msgs)

        _wait_for(settled, 20, "all messages processed")
        page = ingest.http("/metrics")[1]
        assert metric_value(page, "linewatch_ingest_readings_total") == 3
        assert metric_value(page, "linewatch_ingest_messages_total", 'result="stored"') == 2
        assert metric_value(page, "linewatch_ingest_messages_total", 'result="quarantined"') == 6
        assert metric_value(page, "linewatch_ingest_broker_connected") == 1
        assert metric_value(page, "linewatch_ingest_last_reading_timestamp_seconds", 'asset="pump-01"') > 0

        stored = scan_readings(ingest.data_root).collect()
        assert sorted(stored["sensor"].to_list()) == ["a", "b", "temp"]
        quarantine = pl.concat([pl.read_parquet(f) for f in (ingest.data_root / "quarantine").rglob("*.parquet")])
        assert quarantine.height == 6
        assert quarantine["reason"].null_count() == 0 and (quarantine["reason"].str.len_chars() > 0).all()
        assert {"bad_json", "bad_name", "ts_future"} <= set(quarantine["reason"].to_list())
        # Nothing was created outside the data directory, and only validated names became directories.
        assert all(p.resolve().is_relative_to(ingest.data_root.resolve()) for p in ingest.data_root.rglob("*"))
        assert sorted(d.name for d in (ingest.data_root / "raw").iterdir()) == ["asset=pump-01"]

        code, seconds = ingest.terminate()
        assert code == 0 and seconds < 10
        assert "ingest stopped (SIGTERM)" in ingest.log()
        # Its own clean disconnect is news, not a broker problem: no warning for an admin to chase.
        gone = [line for line in ingest.log().splitlines() if "disconnected from broker" in line]
        assert gone and all("(stopping)" in line and "WARNING" not in line.upper() for line in gone), gone
    finally:
        ingest.cleanup()


def test_sigkill_twice_loses_nothing_and_compacts_to_exactly_once(
    tmp_path: Path, mosquitto_factory: BrokerFactory
) -> None:
    """100,000 readings at QoS 1; the ingest process is SIGKILLed twice mid-stream and restarted."""
    broker = mosquitto_factory(config_extra=SHIPPED_LIMITS)
    ingest = IngestProcess(write_config(tmp_path, broker), tmp_path / "ingest.log").start()
    n_steps, total = 20_000, 100_000
    published: list[PublishStats] = []
    try:
        publisher = _publish_in_thread(broker.port, n_steps, published)
        for threshold in (25_000, 60_000):
            _wait_for(lambda t=threshold: _distinct(ingest.data_root) >= t, 120, f"{threshold} readings stored")
            ingest.kill()
            ingest.start()
        publisher.join(180)
        assert published and published[0].messages == n_steps
        _wait_for(lambda: _distinct(ingest.data_root) >= total, 120, "all readings stored")
        code, _ = ingest.terminate()
        assert code == 0

        before = _raw_rows(ingest.data_root)
        assert before.unique().height == total  # every reading arrived...
        stats = compact(ingest.data_root, min_files=2, older_than_s=0)
        assert stats.corrupt_files == 0
        after = _raw_rows(ingest.data_root)
        assert after.height == total  # ...and exactly once after compaction
        assert after.unique().height == total
        # One file per partition: 2 assets x the UTC days the readings span (two when the test runs just after
        # midnight, its timestamps starting two hours back).
        files = list((ingest.data_root / "raw").rglob("*.parquet"))
        days = after.select(pl.col("ts").dt.date().n_unique()).item()
        assert len(files) == len({f.parent for f in files}) == 2 * days
    finally:
        ingest.cleanup()


def test_broker_restart_mid_stream_loses_nothing(tmp_path: Path, mosquitto_factory: BrokerFactory) -> None:
    """The broker is stopped and started again (persistence on) while readings stream in."""
    broker = mosquitto_factory(persistence=True, config_extra=SHIPPED_LIMITS)
    ingest = IngestProcess(write_config(tmp_path, broker), tmp_path / "ingest.log").start()
    n_steps, total = 10_000, 50_000
    published: list[PublishStats] = []
    try:
        publisher = _publish_in_thread(broker.port, n_steps, published)
        _wait_for(lambda: _distinct(ingest.data_root) >= 10_000, 120, "first readings stored")
        broker.restart(downtime_s=1.0)
        publisher.join(180)
        assert published and published[0].messages == n_steps
        _wait_for(lambda: _distinct(ingest.data_root) >= total, 120, "all readings after broker restart")
        assert _distinct(ingest.data_root) == total

        def reconnected() -> bool:
            # On a loaded machine every reading can be stored before the restart is noticed: wait for it.
            page = ingest.http("/metrics")[1]
            return metric_value(page, "linewatch_ingest_broker_connects_total") >= 2

        _wait_for(reconnected, 60, "ingest to reconnect after the broker restart")
        page = ingest.http("/metrics")[1]
        assert metric_value(page, "linewatch_ingest_broker_disconnects_total") >= 1
        code, _ = ingest.terminate()
        assert code == 0
    finally:
        ingest.cleanup()


def test_store_failure_holds_messages_until_it_recovers(tmp_path: Path, mosquitto_factory: BrokerFactory) -> None:
    """A write that fails (here: a file where a partition directory must go) leaves the messages
    unacknowledged and reported; once the store works again, they are stored and nothing is lost."""
    broker = mosquitto_factory(config_extra=SHIPPED_LIMITS)
    ingest = IngestProcess(write_config(tmp_path, broker), tmp_path / "ingest.log").start()
    try:
        (ingest.data_root / "raw").mkdir(parents=True, exist_ok=True)
        blocker = ingest.data_root / "raw" / "asset=pump-09"
        blocker.write_text("not a directory")
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        client.connect(broker.host, broker.port)
        client.loop_start()
        now = datetime.now(UTC).isoformat()
        for i in range(20):
            payload = json.dumps({"ts": now, "value": float(i)})
            client.publish(f"plant/s1/pump-09/t{i}", payload, qos=1).wait_for_publish(5)
        _wait_for(
            lambda: metric_value(ingest.http("/metrics")[1], "linewatch_ingest_flush_errors_total") >= 2,
            20,
            "flush errors reported",
        )
        code, body = ingest.http("/readyz")
        assert code == 503 and "store not writable" in body
        assert metric_value(ingest.http("/metrics")[1], "linewatch_ingest_readings_total") == 0
        blocker.unlink()
        _wait_for(
            lambda: metric_value(ingest.http("/metrics")[1], "linewatch_ingest_readings_total") >= 20,
            20,
            "recovery after the store works again",
        )
        assert ingest.http("/readyz")[0] == 200
        client.loop_stop()
        assert ingest.terminate()[0] == 0
        stored = scan_readings(ingest.data_root).collect()
        assert stored.height == 20 and set(stored["asset"].to_list()) == {"pump-09"}
    finally:
        ingest.cleanup()
