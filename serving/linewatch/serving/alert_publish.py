"""Publish alert transitions to MQTT for HMIs and SCADA: events, and the retained current state per asset.

Topics (``<prefix>`` defaults to ``linewatch/alerts``):

* ``<prefix>/<asset>/events`` — every :class:`~linewatch.serving.alerts.Transition` as JSON, not retained.
* ``<prefix>/<asset>/state`` — the asset's current state (``{"machine": {...}, "sensor": {...}}``) RETAINED,
  so a panel that connects later sees at once what is active.
* the availability topic — ``online`` (retained) on every connect, ``offline`` as the last will and on a
  clean :meth:`AlertPublisher.close`.

The scoring loop must never wait on the broker. :meth:`AlertPublisher.publish` only hands messages to paho's
network thread (``loop_start``). While the broker is away:

* events queue in paho (QoS 1) up to ``max_queued`` messages in all; beyond that paho refuses the *newest*
  (``MQTT_ERR_QUEUE_SIZE``): those events are dropped, counted in :attr:`AlertPublisher.dropped` and logged;
* states are not queued at all: only the latest state per asset is kept here, and every state is
  republished after each (re)connect — which also restores retained states that a broker restarted without
  persistence forgot. A lost state message therefore never leaves a stale retained state behind.

Ordering matters for retained messages: paho resends messages that were in flight at the disconnect only
after ``on_connect`` returns, so a state republished from ``on_connect`` could be overwritten by an older
resent one. The republish therefore waits until nothing handed to paho before the reconnect is
unacknowledged (tracked by message id); callbacks only do that bookkeeping and a few ``publish`` calls.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from linewatch.core.config import TlsConfig
from linewatch.ingest.mqtt_auth import apply_credentials
from linewatch.serving.alerts import AlertState, Transition

log = logging.getLogger(__name__)

_FORBIDDEN = ("+", "#", "/", "\0")


def _check_level(name: str, what: str) -> None:
    if not name or any(ch in name for ch in _FORBIDDEN):
        raise ValueError(f"invalid {what} {name!r}: must be non-empty without '+', '#', '/' or NUL")


def _check_topic(topic: str, what: str) -> None:
    if not topic or any(ch in topic for ch in "+#\0") or topic.startswith("/") or topic.endswith("/"):
        raise ValueError(f"invalid {what} {topic!r}")


class AlertPublisher:
    """Publishes alert transitions and retained per-asset state; never blocks the caller on the broker."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        topic_prefix: str = "linewatch/alerts",
        availability_topic: str,
        username: str | None = None,
        password: str | None = None,
        tls: TlsConfig | None = None,
        qos: Literal[1, 2] = 1,
        keepalive_s: int = 30,
        max_queued: int = 10_000,
        reconnect_min_s: int = 1,
        reconnect_max_s: int = 60,
        client: mqtt.Client | None = None,
    ) -> None:
        _check_topic(topic_prefix, "topic prefix")
        _check_topic(availability_topic, "availability topic")
        if qos not in (1, 2):
            raise ValueError("qos must be 1 or 2: retained state needs acknowledgements")
        if max_queued < 1:
            raise ValueError("max_queued must be >= 1")
        self.host, self.port = host, port
        self.topic_prefix = topic_prefix
        self.availability_topic = availability_topic
        self.qos = qos
        self.keepalive_s = keepalive_s
        self.dropped = 0  # messages paho refused because its queue was full
        self._lock = threading.Lock()
        self._states: dict[str, AlertState] = {}
        self._unacked: set[int] = set()  # message ids handed to paho and not yet acknowledged
        self._early: set[int] = set()  # acknowledged before publish() returned the id (fast broker)
        self._resync = False  # republish every state once nothing older is in flight
        self._connected = threading.Event()
        self._closing = False
        self.client = client or mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.enable_logger(logging.getLogger("linewatch.serving.paho"))
        self.client.max_queued_messages_set(max_queued)
        self.client.reconnect_delay_set(min_delay=max(1, reconnect_min_s), max_delay=max(1, reconnect_max_s))
        self.client.will_set(availability_topic, b"offline", qos=qos, retain=True)
        apply_credentials(self.client, username, password, tls)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; paho retries with backoff until the broker answers."""
        log.info("publishing alerts to mqtt://%s:%s under %s/", self.host, self.port, self.topic_prefix)
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive_s)
        self.client.loop_start()

    def close(self, timeout: float = 5.0) -> None:
        """Publish ``offline``, wait up to ``timeout`` for it (and so everything before it), then disconnect.

        A clean disconnect: the broker does not send the last will, hence the explicit ``offline``."""
        self._closing = True
        if self._connected.is_set():
            info = self._send(self.availability_topic, b"offline")
            try:
                info.wait_for_publish(timeout=timeout)
            except (RuntimeError, ValueError):
                log.warning("could not publish the offline status before disconnecting")
        self.client.disable_logger()  # paho 2.x logs a spurious error from its loop after a clean disconnect
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    def __enter__(self) -> AlertPublisher:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # -- publishing (scoring thread) -----------------------------------------------------------------------
    def events_topic(self, asset: str) -> str:
        _check_level(asset, "asset name")
        return f"{self.topic_prefix}/{asset}/events"

    def state_topic(self, asset: str) -> str:
        _check_level(asset, "asset name")
        return f"{self.topic_prefix}/{asset}/state"

    def publish(self, transition: Transition) -> None:
        """Publish the event, and the asset's state after it (retained). Returns at once."""
        events = self.events_topic(transition.asset)
        payload = json.dumps(transition.to_dict(), allow_nan=False, separators=(",", ":")).encode()
        self._send(events, payload)
        if transition.state is not None:
            self.publish_state(transition.state)

    def publish_state(self, state: AlertState) -> None:
        """Remember ``state`` as the asset's latest and publish it retained when connected.

        Call it for every asset at start-up, so a restarted daemon replaces a retained "active" state that
        its previous run left behind."""
        topic = self.state_topic(state.asset)
        with self._lock:
            self._states[state.asset] = state
        if self._connected.is_set():
            self._send(topic, _state_payload(state), retain=True)

    def _send(self, topic: str, payload: bytes, *, retain: bool = False) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=self.qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            with self._lock:
                self.dropped += 1
                dropped = self.dropped
            if dropped == 1 or dropped % 1000 == 0:
                log.warning("alert publish queue full: %s messages dropped so far (latest to %s)", dropped, topic)
            return info
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("publish to %s failed: %s", topic, mqtt.error_string(info.rc))
            return info
        resync = False
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                resync = self._resync_due()
            else:
                self._unacked.add(info.mid)
        if resync:
            self._republish_states()
        return info

    # -- paho callbacks (network thread: bookkeeping and a few publish calls only) -------------------------
    def _on_connect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            log.error("alert broker refused the connection: %s", reason)
            return
        self._connected.set()
        log.info("alert publisher connected to %s:%s", self.host, self.port)
        with self._lock:
            self._resync = True
            resync = self._resync_due()
        self._send(self.availability_topic, b"online", retain=True)
        if resync:
            self._republish_states()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._closing:
            log.warning("alert publisher disconnected (%s); states are republished on reconnect", reason)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker rejected alert message %s: %s", mid, reason)
        with self._lock:
            if mid in self._unacked:
                self._unacked.discard(mid)
            else:
                self._early.add(mid)
            resync = self._resync_due()
        if resync:
            self._republish_states()

    def _resync_due(self) -> bool:
        """(Under the lock.) True once, when a resync is pending and nothing older is unacknowledged."""
        if self._resync and not self._unacked and self._connected.is_set():
            self._resync = False
            return True
        return False

    def _republish_states(self) -> None:
        with self._lock:
            states = list(self._states.values())
        for state in states:
            self._send(self.state_topic(state.asset), _state_payload(state), retain=True)
        if states:
            log.info("republished %s retained alert states", len(states))


def _state_payload(state: AlertState) -> bytes:
    return json.dumps(state.to_dict(), allow_nan=False, separators=(",", ":")).encode()
