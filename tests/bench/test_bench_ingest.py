"""Ingest benchmark (``make bench``; not part of ``make test``). Writes ``.bench/ingest.json``.

Consumer throughput is measured the same way for linewatch ingest and for a baseline paho client that only
counts messages: the messages are queued in the broker for the client's persistent session first, then the
client connects and the clock runs until the last message is durable (ingest) or counted (baseline). Both run
in the same session against the same private broker with the shipped limits, so the ratio is fair; the
publisher's own speed does not enter either figure.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import polars as pl
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.integration.conftest import BrokerFactory, MosquittoBroker
from tests.integration.ingest_proc import SHIPPED_LIMITS, IngestProcess, metric_value, write_config

pytestmark = pytest.mark.timeout(1200)

OUT = Path(__file__).resolve().parents[2] / ".bench"
N_SINGLE = int(os.environ.get("LINEWATCH_BENCH_SINGLE", "100000"))
N_BATCH_MSGS = int(os.environ.get("LINEWATCH_BENCH_BATCH_MSGS", "2000"))


def _client(client_id: str, v5_session: bool = True) -> mqtt.Client:
    return mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )


def _session_props() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 65535
    return props


def _payloads(shape: str, n_msgs: int, asset: str = "bench-01") -> list[tuple[str, bytes]]:
    now = datetime.now(UTC).timestamp()
    if shape == "single":
        return [
            (f"plant/b/{asset}/s{i % 8}", json.dumps({"ts": now - 600 + i * 1e-3, "value": float(i)}).encode())
            for i in range(n_msgs)
        ]
    out = []
    for i in range(n_msgs):
        values = {f"s{k}": float(i + k) for k in range(100)}
        out.append((f"plant/b/{asset}", json.dumps({"ts": now - 600 + i * 1e-3, "values": values}).encode()))
    return out


def _publish_all(broker: MosquittoBroker, messages: list[tuple[str, bytes]]) -> float:
    pub = _client("bench-publisher")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    started = time.perf_counter()
    # Packet ids are 16 bits: never have more than 65,535 messages unacknowledged at once.
    for chunk in range(0, len(messages), 20_000):
        infos = [pub.publish(topic, payload, qos=1) for topic, payload in messages[chunk : chunk + 20_000]]
        for info in infos:
            info.wait_for_publish(60)
    seconds = time.perf_counter() - started
    pub.disconnect()
    pub.loop_stop()
    return seconds


def _counting_client_rate(broker: MosquittoBroker, messages: list[tuple[str, bytes]], readings_per_msg: int) -> float:
    """Baseline: a paho client that only counts (auto-ack), draining a pre-filled persistent session."""
    client_id = f"bench-counter-{len(messages)}-{readings_per_msg}"
    counter = _client(client_id)
    got = threading.Event()
    count = 0

    def on_message(_c: Any, _u: Any, _m: mqtt.MQTTMessage) -> None:
        nonlocal count
        count += 1
        if count >= len(messages):
            got.set()

    counter.on_message = on_message
    counter.connect(broker.host, broker.port, clean_start=False, properties=_session_props())
    counter.subscribe("plant/#", qos=1)
    counter.loop(2)
    counter.disconnect()  # session (with its subscription) stays on the broker
    _publish_all(broker, messages)
    counter.connect(broker.host, broker.port, clean_start=False, properties=_session_props())
    started = time.perf_counter()
    counter.loop_start()
    assert got.wait(600), f"counting client got {count} of {len(messages)}"
    seconds = time.perf_counter() - started
    counter.disconnect()
    counter.loop_stop()
    return len(messages) * readings_per_msg / seconds


def _rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Vm")}
    return int(fields["VmRSS"]) / 1024, int(fields["VmHWM"]) / 1024


def _ingest_rate(
    tmp: Path, broker: MosquittoBroker, messages: list[tuple[str, bytes]], readings_per_msg: int
) -> dict[str, float]:
    """linewatch ingest draining the same pre-filled session until every reading is durable."""
    ingest = IngestProcess(write_config(tmp, broker), tmp / "ingest.log")
    ingest.start()  # creates the persistent session and its subscriptions
    ingest.terminate()
    _publish_all(broker, messages)
    total = len(messages) * readings_per_msg
    ingest.start(wait_ready=False)
    assert ingest.proc is not None
    peak_rss = 0.0
    started: float | None = None  # the clock starts when the broker connection is up (start-up excluded)
    done_at_start = 0.0
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                page = ingest.http("/metrics")[1]
                done = metric_value(page, "linewatch_ingest_readings_total")
                if started is None and metric_value(page, "linewatch_ingest_broker_connected") == 1:
                    started, done_at_start = time.perf_counter(), done
            except OSError:
                done = 0.0
            peak_rss = max(peak_rss, _rss_mb(ingest.proc.pid)[1])
            if done >= total:
                break
            assert time.monotonic() < deadline, f"ingest stored {done} of {total}"
            time.sleep(0.005)
        assert started is not None
        seconds = time.perf_counter() - started
        peak_rss = max(peak_rss, _rss_mb(ingest.proc.pid)[1])
    finally:
        ingest.terminate()
    total -= int(done_at_start)
    return {"readings_per_s": total / seconds, "seconds": seconds, "peak_rss_mb": peak_rss}


def _latency(tmp: Path, broker: MosquittoBroker, rate_msgs: int, seconds: int) -> dict[str, float]:
    """Steady load: publish->durable latency = file mtime minus the publish time carried as the reading ts."""
    ingest = IngestProcess(write_config(tmp, broker), tmp / "ingest-latency.log").start()
    try:
        pub = _client("bench-latency-publisher")
        pub.max_inflight_messages_set(1000)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        n = rate_msgs * seconds
        t0 = time.perf_counter()
        for i in range(n):
            target = t0 + i / rate_msgs
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            payload = json.dumps({"ts": time.time(), "values": {f"s{k}": float(k) for k in range(10)}})
            pub.publish("plant/lat/latency-01", payload, qos=1)
        time.sleep(3)
        pub.disconnect()
        pub.loop_stop()
        _, _ = ingest.terminate()
    finally:
        ingest.cleanup()
    lat = []
    for f in (ingest.data_root / "raw").rglob("*.parquet"):
        mtime = f.stat().st_mtime
        ts = pl.read_parquet(f, columns=["ts", "sensor"]).filter(pl.col("sensor") == "s0")["ts"]
        lat.extend(mtime - t.timestamp() for t in ts.to_list())
    arr = np.array(lat)
    return {
        "messages": float(n),
        "stored_messages": float(arr.size),
        "p50_s": float(np.percentile(arr, 50)),
        "p99_s": float(np.percentile(arr, 99)),
        "max_s": float(arr.max()),
    }


def test_bench_ingest(tmp_path: Path, mosquitto_factory: BrokerFactory) -> None:
    broker = mosquitto_factory(config_extra=SHIPPED_LIMITS)
    results: dict[str, Any] = {"broker": "mosquitto (private, shipped limits)", "cores": os.cpu_count()}
    for shape, n_msgs, per in (("single", N_SINGLE, 1), ("batch100", N_BATCH_MSGS, 100)):
        messages = _payloads("single" if per == 1 else "record", n_msgs)
        baseline = _counting_client_rate(broker, messages, per)
        ours = _ingest_rate(tmp_path / shape, broker, messages, per)
        results[shape] = {
            "messages": n_msgs,
            "readings": n_msgs * per,
            "counting_client_readings_per_s": baseline,
            "ingest_readings_per_s": ours["readings_per_s"],
            "ratio": ours["readings_per_s"] / baseline,
            "goal_ratio": 0.7,
            "ingest_peak_rss_mb": ours["peak_rss_mb"],
            "goal_rss_mb": 250,
        }
    results["latency_10_readings_per_msg_500_msgs_per_s"] = _latency(tmp_path / "latency", broker, 500, 10)
    results["latency_goal_p99_s"] = 2.0
    OUT.mkdir(exist_ok=True)
    (OUT / "ingest.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
