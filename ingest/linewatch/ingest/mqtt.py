"""The MQTT side of ingest: connect, subscribe, enqueue, and acknowledge only what is durable.

paho callbacks run on its network thread, so they do no work: ``on_message`` copies the message into a bounded
queue and returns. Messages are acknowledged manually (``manual_ack=True``) by the writer once their readings
are on disk; anything unacknowledged when the process dies is redelivered by the broker from the persistent
session. Acknowledgements are only sent on the connection that received the message: after a reconnect the
broker redelivers unacknowledged messages, so a stale packet id is never acknowledged on a new connection.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from linewatch.core.clock import Clock, SystemClock
from linewatch.core.config import IngestConfig, MqttConfig
from linewatch.ingest.metrics import IngestMetrics
from linewatch.ingest.mqtt_auth import apply_credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    generation: int  # connection that received it; acks go only to the same connection
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_us: int


def subscription_filters(cfg: IngestConfig) -> list[tuple[str, int]]:
    """The filters to subscribe to, with the shared-subscription prefix when a group is configured."""
    prefix = f"$share/{cfg.shared_group}/" if cfg.shared_group else ""
    return [(prefix + sub.topic, sub.qos) for sub in cfg.subscriptions]


def _decode_topic(raw: bytes) -> str:
    # Topics are untrusted; undecodable bytes stay visible (escaped) so validation can reject them by name.
    return raw.decode("utf-8", "backslashreplace")


class MqttSource:
    """A paho client configured for at-least-once ingest."""

    def __init__(
        self,
        mqtt_cfg: MqttConfig,
        ingest_cfg: IngestConfig,
        inbox: queue.Queue[InboundMessage],
        metrics: IngestMetrics,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._cfg = mqtt_cfg
        self._ingest = ingest_cfg
        self._inbox = inbox
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._paused = threading.Event()
        self._connected = threading.Event()
        self._stopping = threading.Event()  # our own disconnect: not a broker problem to warn about
        self._lock = threading.Lock()
        self.generation = 0
        self.availability_topic = ingest_cfg.availability_topic.replace("{client_id}", mqtt_cfg.client_id)
        v5 = mqtt_cfg.protocol == "5"
        self._v5 = v5
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=mqtt_cfg.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        self.client.enable_logger(logging.getLogger("linewatch.ingest.paho"))
        # The writer bounds what is pending; paho's own outgoing queue must never drop our status messages.
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(
            min_delay=max(1, round(mqtt_cfg.reconnect.min_delay_s)),
            max_delay=max(1, round(mqtt_cfg.reconnect.max_delay_s)),
        )
        self.client.will_set(self.availability_topic, b"offline", qos=1, retain=True)
        apply_credentials(
            self.client,
            mqtt_cfg.username,
            mqtt_cfg.resolved_password() if mqtt_cfg.username is not None else None,
            mqtt_cfg.tls,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; paho retries with backoff until the broker answers."""
        self._stopping.clear()
        props = None
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self._ingest.session_expiry_s
            props.ReceiveMaximum = 65535
        log.info(
            "connecting to mqtt://%s:%s as %s (MQTT %s, tls=%s)",
            self._cfg.host,
            self._cfg.port,
            self._cfg.client_id,
            self._cfg.protocol,
            self._cfg.tls.enabled,
        )
        self.client.connect_async(
            self._cfg.host,
            self._cfg.port,
            keepalive=self._cfg.keepalive_s,
            clean_start=False if self._v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=props,
        )
        self.client.loop_start()

    def pause(self) -> None:
        """Stop taking new messages; they stay unacknowledged and the broker redelivers them later."""
        self._paused.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Mark this client offline and disconnect cleanly (so the last will is not sent)."""
        self._stopping.set()
        if self._connected.is_set():
            info = self.client.publish(self.availability_topic, b"offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=timeout)
            except (RuntimeError, ValueError):
                log.warning("could not publish offline status before disconnecting")
        # paho 2.x logs a spurious "Client is not connected" error from its loop after a clean disconnect.
        self.client.disable_logger()
        self.client.disconnect()
        self.client.loop_stop()
        self._metrics.connected.set(0)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def ack(self, message: InboundMessage) -> bool:
        """Acknowledge a durable message; False when its connection is gone (the broker will redeliver)."""
        if message.qos == 0:
            return True
        with self._lock:
            if message.generation != self.generation or not self._connected.is_set():
                return False
        return self.client.ack(message.mid, message.qos) == mqtt.MQTT_ERR_SUCCESS

    def _now_us(self) -> int:
        # The hot path: integer nanoseconds avoid building a datetime per message under the system clock.
        if isinstance(self._clock, SystemClock):
            return time.time_ns() // 1000
        return int(self._clock.now().timestamp() * 1_000_000)

    # -- paho callbacks (network thread: no work here) -----------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: ReasonCode, _props: Any
    ) -> None:
        if reason_code.is_failure:
            self._metrics.connect_failures.labels(reason=str(reason_code)[:64]).inc()
            log.error("broker refused the connection: %s", reason_code)
            return
        with self._lock:
            self.generation += 1
            self._connected.set()
        self._metrics.connected.set(1)
        self._metrics.connects.inc()
        log.info("connected (session present: %s)", getattr(flags, "session_present", None))
        filters = subscription_filters(self._ingest)
        client.subscribe(filters)
        client.publish(self.availability_topic, b"online", qos=1, retain=True)

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reason_codes: list[ReasonCode], _props: Any
    ) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("broker refused subscriptions: %s", ", ".join(failed))

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: ReasonCode, _props: Any
    ) -> None:
        with self._lock:
            was_connected = self._connected.is_set()
            self._connected.clear()
        self._metrics.connected.set(0)
        if was_connected and self._stopping.is_set():
            log.info("disconnected from broker (stopping): %s", reason_code)
        elif was_connected:
            self._metrics.disconnects.inc()
            log.warning("disconnected from broker: %s", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._paused.is_set():
            return
        item = InboundMessage(
            generation=self.generation,
            mid=msg.mid,
            qos=msg.qos,
            topic=_decode_topic(msg._topic),  # the raw bytes: .topic raises on invalid UTF-8
            payload=bytes(msg.payload),
            received_us=self._now_us(),
        )
        while not self._paused.is_set():
            try:
                self._inbox.put(item, timeout=0.5)
                return
            except queue.Full:
                self._metrics.queue_full.inc()
