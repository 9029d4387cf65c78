"""Publish simulated or replayed readings to an MQTT broker, paced like the real plant.

This is the only socket-owning module behind ``linewatch simulate`` and ``linewatch replay``. It plays the part
of a PLC gateway, so it must behave like a good one: QoS 1, a bounded number of messages in flight, no message
lost when the broker restarts (paho keeps unacknowledged and unsent messages and resends them after it
reconnects; we never cap its queue and only wait while too much is outstanding), and it returns only once the
broker acknowledged everything. Pacing follows the data timestamps scaled by ``speed`` against one start
instant, so a long run never drifts.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from linewatch.core.config import TlsConfig
from linewatch.core.lifecycle import StopEvent
from linewatch.core.schema import is_valid_name
from linewatch.ingest.labels import format_ts
from linewatch.ingest.mqtt_auth import apply_credentials
from linewatch.ingest.records import Step

log = logging.getLogger(__name__)

PublishFormat = Literal["single", "record"]


class PublishError(RuntimeError):
    """The broker could not be reached or refused us; the message says which and why."""


@dataclass(frozen=True, slots=True)
class PublishStats:
    """What a publish run did. ``messages`` were all acknowledged by the broker (QoS >= 1) unless stopped."""

    messages: int
    readings: int
    seconds: float
    acked: int = 0
    rejected: int = 0  # acknowledged with an error reason code (e.g. not authorised)
    skipped: int = 0  # non-finite values, which JSON cannot carry
    reconnects: int = 0
    last_ts: datetime | None = None
    stopped: bool = False

    @property
    def rate(self) -> float:
        """Messages per second over the whole run."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0


class _Tracker:
    """Connection and acknowledgement state shared with paho's network thread (callbacks only record)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.connected = False
        self.connack: ReasonCode | None = None
        self.connects = 0
        self.acked = 0
        self.rejected = 0
        self.closing = False

    def on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        with self.cond:
            self.connack = reason
            self.connected = not reason.is_failure
            if self.connected:
                self.connects += 1
            self.cond.notify_all()
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)

    def on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        with self.cond:
            was = self.connected
            self.connected = False
            self.cond.notify_all()
        if was and not self.closing:
            log.warning("disconnected from broker (%s); unacknowledged messages will be resent", reason)

    def on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, reason: ReasonCode, _p: Any) -> None:
        with self.cond:
            self.acked += 1
            if reason.is_failure:
                self.rejected += 1
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], stop: StopEvent, timeout: float | None) -> bool:
        """Wait until ``predicate`` holds (True), ``stop`` is set or ``timeout`` passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while not predicate():
                if stop.is_set():
                    return False
                left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True


def encode(step: Step, fmt: PublishFormat, topic_prefix: str) -> list[tuple[str, bytes]]:
    """Topics and JSON payloads for one step; non-finite values are left out (JSON has no NaN)."""
    ts, asset, values = step
    if not is_valid_name(asset):
        raise ValueError(f"invalid asset name {asset!r}")
    stamp = format_ts(ts)
    finite = {s: float(v) for s, v in values.items() if math.isfinite(v)}
    for sensor in finite:
        if not is_valid_name(sensor):
            raise ValueError(f"invalid sensor name {sensor!r}")
    if fmt == "single":
        return [
            (f"{topic_prefix}/{asset}/{sensor}", json.dumps({"ts": stamp, "value": v}).encode())
            for sensor, v in finite.items()
        ]
    if not finite:
        return []
    return [(f"{topic_prefix}/{asset}", json.dumps({"ts": stamp, "values": finite}).encode())]


def publish_stream(
    steps: Iterable[Step],
    *,
    host: str = "127.0.0.1",
    port: int = 1883,
    topic_prefix: str = "plant/site1",
    fmt: PublishFormat = "single",
    qos: Literal[0, 1, 2] = 1,
    speed: float = 1.0,
    stop: StopEvent | None = None,
    client_id: str | None = None,
    username: str | None = None,
    password: str | None = None,
    tls: TlsConfig | None = None,
    keepalive_s: int = 30,
    max_inflight: int = 1000,
    max_pending: int = 20_000,
    connect_timeout_s: float = 30.0,
    drain_timeout_s: float | None = None,
    progress: Callable[[PublishStats], None] | None = None,
    progress_interval_s: float = 1.0,
    client: mqtt.Client | None = None,
) -> PublishStats:
    """Publish ``steps`` (``(ts, asset, {sensor: value})`` in time order) and wait until all are acknowledged.

    ``speed``: 1 = real time, 10 = ten times faster, 0 or ``inf`` = as fast as the broker takes them.
    ``fmt="single"``: one message per reading on ``<prefix>/<asset>/<sensor>``, payload ``{"ts", "value"}``;
    ``fmt="record"``: one message per step on ``<prefix>/<asset>``, payload ``{"ts", "values": {...}}``.
    If the broker goes away, publishing continues into paho's queue until ``max_pending`` messages are
    unacknowledged, then waits for the reconnect; nothing is dropped. ``drain_timeout_s=None`` waits for the
    final acknowledgements until ``stop`` is set. Raises :class:`PublishError` when the first connection
    fails or is refused. ``client`` injects a pre-built paho client (tests).
    """
    if not (speed >= 0):
        raise ValueError("speed must be >= 0 (0 or inf: as fast as possible)")
    if not topic_prefix or any(ch in topic_prefix for ch in "#+\0") or topic_prefix.endswith("/"):
        raise ValueError(f"invalid topic prefix {topic_prefix!r}")
    stop = stop if stop is not None else StopEvent()
    paced = 0 < speed < math.inf
    tracker = _Tracker()
    cli = client if client is not None else _make_client(client_id, username, password, tls, keepalive_s)
    cli.on_connect = tracker.on_connect
    cli.on_disconnect = tracker.on_disconnect
    cli.on_publish = tracker.on_publish
    cli.max_inflight_messages_set(max_inflight)
    cli.max_queued_messages_set(0)  # unlimited: never drop while the broker is away; max_pending bounds memory
    cli.reconnect_delay_set(min_delay=1, max_delay=5)

    started = time.monotonic()
    cli.connect_async(host, port, keepalive=keepalive_s)
    cli.loop_start()
    messages = readings = skipped = 0
    last_ts: datetime | None = None
    try:
        if not tracker.wait_for(lambda: tracker.connack is not None, stop, connect_timeout_s):
            if stop.is_set():
                return PublishStats(0, 0, time.monotonic() - started, stopped=True)
            raise PublishError(f"no connection to MQTT broker {host}:{port} within {connect_timeout_s:g} s")
        if tracker.connack is not None and tracker.connack.is_failure:
            raise PublishError(f"MQTT broker {host}:{port} refused the connection: {tracker.connack}")
        log.info("publishing to %s:%s under %s/ (format %s, speed %s)", host, port, topic_prefix, fmt, speed)

        t0_wall: float | None = None
        t0_data: datetime | None = None
        next_progress = time.monotonic() + progress_interval_s
        for step in steps:
            if stop.is_set():
                break
            ts = step[0]
            if paced:
                if t0_wall is None or t0_data is None:
                    t0_wall, t0_data = time.monotonic(), ts
                target = t0_wall + (ts - t0_data).total_seconds() / speed
                delay = target - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
            encoded = encode(step, fmt, topic_prefix)
            skipped += sum(1 for v in step[2].values() if not math.isfinite(v))
            if qos > 0 and messages - tracker.acked >= max_pending:
                # Back-pressure: the broker is slow or away; wait for acknowledgements, not for a timer.
                low_water = messages - max_pending // 2
                tracker.wait_for(lambda: tracker.acked > low_water, stop, None)  # noqa: B023 (used at once)
                if stop.is_set():
                    break
            for topic, payload in encoded:
                info = cli.publish(topic, payload, qos=qos)
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    raise PublishError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
                messages += 1
            readings += len(step[2])
            last_ts = ts
            if progress is not None and time.monotonic() >= next_progress:
                next_progress = time.monotonic() + progress_interval_s
                progress(_stats(tracker, messages, readings, skipped, started, last_ts, stop.is_set()))

        # Wait for every acknowledgement (interruptible by stop); after a stop, allow a short grace period.
        if stop.is_set():
            done = tracker.wait_for(lambda: tracker.acked >= messages, StopEvent(), 5.0)
        else:
            done = tracker.wait_for(lambda: tracker.acked >= messages, stop, drain_timeout_s)
        if not done:
            log.warning("%s of %s messages were not acknowledged", messages - tracker.acked, messages)
        stats = _stats(tracker, messages, readings, skipped, started, last_ts, stop.is_set())
        if progress is not None:
            progress(stats)
        log.info("published %s messages (%s readings) in %.1f s", stats.messages, stats.readings, stats.seconds)
        return stats
    finally:
        tracker.closing = True
        cli.disconnect()
        cli.loop_stop()


def _stats(
    tracker: _Tracker,
    messages: int,
    readings: int,
    skipped: int,
    started: float,
    last_ts: datetime | None,
    stopped: bool,
) -> PublishStats:
    with tracker.cond:
        acked, rejected, connects = tracker.acked, tracker.rejected, tracker.connects
    return PublishStats(
        messages=messages,
        readings=readings,
        seconds=time.monotonic() - started,
        acked=acked,
        rejected=rejected,
        skipped=skipped,
        reconnects=max(0, connects - 1),
        last_ts=last_ts,
        stopped=stopped,
    )


def _make_client(
    client_id: str | None, username: str | None, password: str | None, tls: TlsConfig | None, keepalive_s: int
) -> mqtt.Client:
    del keepalive_s
    cli = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"linewatch-publish-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    apply_credentials(cli, username, password, tls)
    return cli
