"""Alert publishing against a real Mosquitto: events, retained state for late subscribers, and the last will."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from linewatch.serving.alert_publish import AlertPublisher
from linewatch.serving.alerts import AlertPolicy, Transition

from .conftest import MosquittoBroker

pytestmark = pytest.mark.integration
T0 = 1_714_521_600.0
PREFIX = "linewatch/alerts"
STATUS = "linewatch/status/serve-test"


class Watcher:
    """A QoS 1 subscriber to ``linewatch/#`` keeping every message with its retain flag."""

    def __init__(self, broker: MosquittoBroker, client_id: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_connect = lambda c, *_a: c.subscribe("linewatch/#", qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert subscribed.wait(5)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self.cond.notify_all()

    def wait_for(
        self, pred: Callable[[tuple[str, bytes, bool]], bool], timeout: float = 10.0
    ) -> tuple[str, bytes, bool]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.messages:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching message within {timeout} s; got {self.messages}")
                self.cond.wait(left)

    def latest(self, topic: str, timeout: float = 10.0) -> bytes:
        self.wait_for(lambda m: m[0] == topic, timeout)
        with self.cond:
            return [p for t, p, _ in self.messages if t == topic][-1]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def raised(asset: str = "pump-01", risk: float = 0.995) -> Transition:
    policy = AlertPolicy(asset)
    for i in range(11):
        got = policy.update(T0 + i, 1.5, risk, {}, "temp", True)
    assert len(got) == 1
    return got[0]


@pytest.fixture
def watcher(mosquitto_broker: MosquittoBroker) -> Iterator[Watcher]:
    w = Watcher(mosquitto_broker, "test-watcher")
    yield w
    w.close()


def make_publisher(broker: MosquittoBroker, **kwargs: object) -> AlertPublisher:
    return AlertPublisher(
        broker.host,
        broker.port,
        client_id="serve-test",
        availability_topic=STATUS,
        **kwargs,  # type: ignore[arg-type]
    )


def test_online_event_and_retained_state(mosquitto_broker: MosquittoBroker, watcher: Watcher) -> None:
    pub = make_publisher(mosquitto_broker)
    pub.start()
    try:
        assert pub.wait_connected(10)
        watcher.wait_for(lambda m: m[0] == STATUS and m[1] == b"online")
        tr = raised()
        pub.publish(tr)
        event = json.loads(watcher.latest(f"{PREFIX}/pump-01/events"))
        assert event == tr.to_dict()
        assert event["event"] == "raised" and event["severity"] == "major"
        state = json.loads(watcher.latest(f"{PREFIX}/pump-01/state"))
        assert state["machine"]["active"] is True and state["machine"]["severity"] == "major"
        assert state["machine"]["since"] == "2024-05-01T00:00:10.000Z"

        # A panel that connects later gets the current state and the availability at once (retained).
        late = Watcher(mosquitto_broker, "test-late")
        try:
            _, payload, retain = late.wait_for(lambda m: m[0] == f"{PREFIX}/pump-01/state")
            assert retain and json.loads(payload) == state
            _, status, retain = late.wait_for(lambda m: m[0] == STATUS)
            assert retain and status == b"online"
            time.sleep(0.3)
            assert not any(t.endswith("/events") for t, _, _ in late.messages)  # events are not retained
        finally:
            late.close()
    finally:
        pub.close()
    watcher.wait_for(lambda m: m[0] == STATUS and m[1] == b"offline")


def test_states_survive_outage_and_broker_forgetting_retained(mosquitto_broker: MosquittoBroker) -> None:
    pub = make_publisher(mosquitto_broker)
    pub.start()
    try:
        assert pub.wait_connected(10)
        pub.publish(raised("pump-01", risk=0.5))
        mosquitto_broker.stop()  # no persistence: every retained message is forgotten
        deadline = time.monotonic() + 10
        while pub.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pub.connected
        # While the broker is away, publishing never blocks; only the latest state per asset matters.
        policy = AlertPolicy("press-01")
        began = time.monotonic()
        for i in range(200):
            for tr in policy.update(T0 + i, 1.5 if i < 100 else 0.1, 0.9995, {}, "force", True):
                pub.publish(tr)
        assert time.monotonic() - began < 1.0
        assert not policy.active  # raised at 10, cleared at 130
        mosquitto_broker.start()
        late = Watcher(mosquitto_broker, "test-late")
        try:
            pump = json.loads(late.latest(f"{PREFIX}/pump-01/state", timeout=15))
            press = json.loads(late.latest(f"{PREFIX}/press-01/state", timeout=15))
            assert pump["machine"]["active"] is True and pump["machine"]["severity"] == "warning"
            assert press["machine"]["active"] is False
            late.wait_for(lambda m: m[0] == STATUS and m[1] == b"online")
        finally:
            late.close()
    finally:
        pub.close()


WILL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from linewatch.serving.alert_publish import AlertPublisher
    from linewatch.serving.alerts import AlertPolicy

    host, port, status = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    pub = AlertPublisher(host, port, client_id="serve-doomed", availability_topic=status, keepalive_s=2)
    pub.start()
    assert pub.wait_connected(10)
    policy = AlertPolicy("pump-01")
    for i in range(11):
        for tr in policy.update(1_714_521_600.0 + i, 1.5, 0.5, {}, "temp", True):
            pub.publish(tr)
    print("published", flush=True)
    sys.stdin.readline()
    os._exit(0)  # no DISCONNECT: the broker must send the last will
    """
)


def test_last_will_marks_a_dead_publisher_offline(mosquitto_broker: MosquittoBroker, watcher: Watcher) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WILL_SCRIPT, mosquitto_broker.host, str(mosquitto_broker.port), STATUS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == b"published"
        watcher.wait_for(lambda m: m[0] == STATUS and m[1] == b"online")
        watcher.wait_for(lambda m: m[0] == f"{PREFIX}/pump-01/state")
        proc.stdin.write(b"die\n")
        proc.stdin.flush()
        assert proc.wait(10) == 0
        began = time.monotonic()
        watcher.wait_for(lambda m: m[0] == STATUS and m[1] == b"offline", timeout=10)
        assert time.monotonic() - began < 6  # at most 1.5 keepalives, usually at once (socket closed)
        late = Watcher(mosquitto_broker, "test-late")
        try:
            _, status, retain = late.wait_for(lambda m: m[0] == STATUS)
            assert retain and status == b"offline"
        finally:
            late.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@pytest.mark.parametrize("asset", ["", "a/b", "a+", "a#", "a\0b"])
def test_unsafe_asset_names_are_refused(asset: str) -> None:
    pub = AlertPublisher("127.0.0.1", 1, client_id="x", availability_topic=STATUS)  # never started
    with pytest.raises(ValueError, match="asset"):
        pub.publish(Transition(asset, "machine", "raised", "warning", T0, 1.5, 0.5, None))


@pytest.mark.parametrize(
    "kwargs",
    [{"topic_prefix": "a/#"}, {"topic_prefix": "a/"}, {"availability_topic": ""}, {"qos": 0}, {"max_queued": 0}],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"client_id": "x", "availability_topic": STATUS, **kwargs}
    with pytest.raises(ValueError):
        AlertPublisher("127.0.0.1", 1, **args)  # type: ignore[arg-type]
