"""Publishing to a real Mosquitto: every message arrives, pacing holds, and a broker restart loses nothing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from linewatch.ingest.publish import PublishError, publish_stream
from linewatch.ingest.simulate import AssetSpec, Plant, PlantConfig

from .conftest import BrokerFactory, MosquittoBroker, free_port

pytestmark = pytest.mark.integration
START = datetime(2024, 5, 1, tzinfo=UTC)
PLANT = Plant(PlantConfig(assets=(AssetSpec("pump-01", "pump"), AssetSpec("press-01", "press")), seed=1))


class Collector:
    """A QoS 1 subscriber recording (topic, payload) pairs."""

    def __init__(self, broker: MosquittoBroker, client_id: str, persistent: bool = False) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.reconnect_delay_set(0.1, 0.5)
        props = Properties(PacketTypes.CONNECT)
        if persistent:
            props.SessionExpiryInterval = 600
        self.client.connect(broker.host, broker.port, clean_start=not persistent, properties=props)
        self.client.loop_start()
        assert self.subscribed.wait(5)

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        client.subscribe("plant/#", qos=1)
        self.subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload))

    def wait_for(self, count: int, timeout: float = 20.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(set(self.messages)) >= count:
                    break
            time.sleep(0.05)
        time.sleep(0.2)
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def collector(mosquitto_broker: MosquittoBroker) -> Iterator[Collector]:
    c = Collector(mosquitto_broker, "test-collector")
    yield c
    c.close()


def test_single_format_delivers_every_reading(mosquitto_broker: MosquittoBroker, collector: Collector) -> None:
    steps = list(PLANT.iter_steps(START, 300))
    stats = publish_stream(steps, host=mosquitto_broker.host, port=mosquitto_broker.port, speed=0)
    expected = {
        (f"plant/site1/{asset}/{sensor}", ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"), value)
        for ts, asset, values in steps
        for sensor, value in values.items()
    }
    assert stats.messages == stats.readings == stats.acked == len(expected) == 300 * 2 * 6
    got = collector.wait_for(len(expected))
    decoded = {(topic, json.loads(p)["ts"], json.loads(p)["value"]) for topic, p in got}
    assert decoded == expected
    assert len(got) == len(expected)
    assert set(json.loads(got[0][1])) == {"ts", "value"}


def test_record_format(mosquitto_broker: MosquittoBroker, collector: Collector) -> None:
    steps = list(PLANT.iter_steps(START, 50))
    stats = publish_stream(steps, host=mosquitto_broker.host, port=mosquitto_broker.port, speed=0, fmt="record",
                           topic_prefix="plant/lineA")  # fmt: skip
    assert stats.messages == 100 and stats.readings == 600
    got = collector.wait_for(100)
    by_key = {(t, json.loads(p)["ts"]): json.loads(p)["values"] for t, p in got}
    for ts, asset, values in steps:
        assert by_key[(f"plant/lineA/{asset}", ts.strftime("%Y-%m-%dT%H:%M:%S.000Z"))] == values


def test_pacing_follows_data_time(mosquitto_broker: MosquittoBroker) -> None:
    steps = list(PLANT.iter_steps(START, 21))  # 20 s of data between first and last step
    began = time.monotonic()
    stats = publish_stream(steps, host=mosquitto_broker.host, port=mosquitto_broker.port, speed=10)
    elapsed = time.monotonic() - began
    assert stats.messages == 21 * 12
    assert 1.8 < elapsed < 4.0


def test_refused_or_absent_broker_is_a_clear_error(mosquitto_factory: BrokerFactory) -> None:
    with pytest.raises(PublishError, match="no connection"):
        publish_stream([], host="127.0.0.1", port=free_port(), connect_timeout_s=1.5)
    broker = mosquitto_factory(config_extra=["allow_anonymous false"])
    # "allow_anonymous true" comes first in the file; Mosquitto uses the last value, so this broker refuses us.
    with pytest.raises(PublishError, match="refused"):
        publish_stream([], host=broker.host, port=broker.port, connect_timeout_s=5)


def test_broker_restart_mid_stream_loses_nothing(mosquitto_factory: BrokerFactory) -> None:
    broker = mosquitto_factory(persistence=True)  # unlimited offline queue (see conftest)
    sub = Collector(broker, "test-persistent-sub", persistent=True)
    steps = list(PLANT.iter_steps(START, 600))  # 7200 messages, about 4 s at speed 150
    result: dict[str, object] = {}

    def run() -> None:
        result["stats"] = publish_stream(steps, host=broker.host, port=broker.port, speed=150, client_id="pub-1")

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.5)
    broker.restart(downtime_s=1.0)
    thread.join(60)
    assert not thread.is_alive()
    stats = result["stats"]
    assert stats.messages == stats.acked == 7200  # type: ignore[attr-defined]
    assert stats.reconnects >= 1  # type: ignore[attr-defined]
    got = sub.wait_for(7200, timeout=30)
    sub.close()
    unique = set(got)
    assert len(unique) == 7200, f"lost {7200 - len(unique)} messages; broker log:\n{broker.log_text()[-3000:]}"
