"""The ingest daemon: MQTT in, validated readings durable on disk, then acknowledged.

Threads: paho's network thread fills a bounded queue; one writer thread (the caller of :meth:`run`) decodes,
validates, batches, writes Parquet durably and only then acknowledges; an optional compaction thread merges
small files. One stop event drives shutdown: stop taking messages, drain and flush what was received,
acknowledge, mark offline, disconnect, close HTTP.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter as Tally
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from linewatch.core.clock import Clock, SystemClock
from linewatch.core.config import LinewatchConfig
from linewatch.core.http import MetricsServer
from linewatch.core.lifecycle import StopEvent
from linewatch.ingest.compaction import compact
from linewatch.ingest.metrics import IngestMetrics
from linewatch.ingest.mqtt import InboundMessage, MqttSource
from linewatch.ingest.pipeline import MessageProcessor
from linewatch.ingest.records import QuarantineRecord, Reading
from linewatch.ingest.store import ParquetStore
from linewatch.ingest.validate import ValidationPolicy

log = logging.getLogger(__name__)

_DRAIN_CHUNK = 2000  # messages taken from the queue per wake-up, to amortise wake-ups under load


@dataclass
class _Batch:
    messages: list[InboundMessage] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    results: Tally[str] = field(default_factory=Tally)
    rejects: Tally[str] = field(default_factory=Tally)
    newest: dict[str, int] = field(default_factory=dict)
    started: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.messages)


def policy_from_config(cfg: LinewatchConfig) -> ValidationPolicy:
    v = cfg.ingest.validation
    return ValidationPolicy(
        max_future_skew_s=v.max_future_skew_s,
        max_age_s=v.max_age_s,
        max_payload_bytes=v.max_payload_bytes,
        quarantine_payload_bytes=v.quarantine_payload_bytes,
        accept_missing_ts=v.accept_missing_ts,
    )


class IngestDaemon:
    """Owns the queue, the MQTT source, the writer loop and the metrics endpoint of one ingest process."""

    def __init__(
        self,
        cfg: LinewatchConfig,
        *,
        stop: StopEvent | None = None,
        registry: CollectorRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.cfg = cfg
        self.stop_event = stop or StopEvent()
        self.clock = clock or SystemClock()
        self.registry = registry or CollectorRegistry()
        self.metrics = IngestMetrics(self.registry)
        self.root = Path(cfg.data_root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = ParquetStore(self.root, writer_id=cfg.mqtt.client_id)
        self.processor = MessageProcessor(list(cfg.ingest.subscriptions), policy_from_config(cfg))
        self.inbox: queue.Queue[InboundMessage] = queue.Queue(maxsize=cfg.ingest.queue_size)
        self.metrics.queue_capacity.set(cfg.ingest.queue_size)
        self.source = MqttSource(cfg.mqtt, cfg.ingest, self.inbox, self.metrics, clock=self.clock)
        self.http: MetricsServer | None = None
        self._writer_alive = False
        self.started = False  # past start-up: connected or connecting, and writing
        self._last_flush_error: str | None = None
        self._seq_gaps_seen = 0
        self.processed_messages = 0  # durable and acknowledged (or quarantined) since start

    # -- health ----------------------------------------------------------------------------------------
    def healthy(self) -> tuple[bool, str]:
        return (True, "ok") if self._writer_alive else (False, "writer loop not running")

    def ready(self) -> tuple[bool, str]:
        if not self.source.connected:
            return False, "not connected to the MQTT broker"
        if self._last_flush_error is not None:
            return False, f"store not writable: {self._last_flush_error}"
        return True, "ok"

    # -- main loop -------------------------------------------------------------------------------------
    def run(self) -> None:
        """Run until the stop event is set; then drain, flush, acknowledge and disconnect."""
        endpoint = self.cfg.ingest.metrics
        self.http = MetricsServer(
            endpoint.host, endpoint.port, self.registry, healthy=self.healthy, ready=self.ready
        ).start()
        compactor = None
        if self.cfg.ingest.compaction.interval_s > 0:
            compactor = threading.Thread(target=self._compaction_loop, name="compaction", daemon=True)
            compactor.start()
        self._writer_alive = True
        self.source.start()
        log.info("ingest started: data root %s, writer id %s", self.root, self.cfg.mqtt.client_id)
        self.started = True
        try:
            self._writer_loop()
        finally:
            self._writer_alive = False
            self.source.stop()
            if compactor is not None:
                compactor.join(timeout=30)
            self.http.stop()
            log.info("ingest stopped (%s)", self.stop_event.reason)

    def _writer_loop(self) -> None:
        ing = self.cfg.ingest
        batch = _Batch()
        last_arrival = time.monotonic()
        draining = False
        while True:
            if self.stop_event.is_set() and not draining:
                draining = True
                self.source.pause()
                log.info("stopping: draining %d queued messages", self.inbox.qsize())
            if self._last_flush_error is None or draining:
                got = self._take(batch, wait=0.0 if draining else self._wait_time(batch, last_arrival))
            else:  # the store is failing: take nothing more, so the bounded queue pushes back on the broker
                got = 0
            now = time.monotonic()
            if got:
                last_arrival = now
            self.metrics.queue_depth.set(self.inbox.qsize())
            self.metrics.pending_acks.set(len(batch.messages))
            due = batch and (
                now - batch.started >= ing.flush_interval_s
                or len(batch.readings) >= ing.max_batch_readings
                or (now - last_arrival >= ing.idle_flush_s and self.inbox.empty())
                or draining
            )
            if due:
                if self._flush(batch):
                    batch = _Batch()
                elif draining:
                    log.error("giving up on %d unwritten messages; the broker will redeliver them", len(batch.messages))
                    return
                else:
                    self.stop_event.wait(1.0)  # store trouble: retry, without taking more messages meanwhile
            if draining and not batch and self.inbox.empty():
                return

    def _wait_time(self, batch: _Batch, last_arrival: float) -> float:
        if not batch:
            return 0.25
        ing = self.cfg.ingest
        now = time.monotonic()
        until_flush = ing.flush_interval_s - (now - batch.started)
        until_idle = ing.idle_flush_s - (now - last_arrival)
        return max(0.001, min(until_flush, until_idle, 0.25))

    def _take(self, batch: _Batch, wait: float) -> int:
        """Move up to a chunk of messages from the queue into the batch; block at most ``wait`` for the first."""
        try:
            first = self.inbox.get(timeout=wait) if wait > 0 else self.inbox.get_nowait()
        except queue.Empty:
            return 0
        self._process(batch, first)
        taken = 1
        while taken < _DRAIN_CHUNK and len(batch.readings) < self.cfg.ingest.max_batch_readings:
            try:
                self._process(batch, self.inbox.get_nowait())
            except queue.Empty:
                break
            taken += 1
        return taken

    def _process(self, batch: _Batch, message: InboundMessage) -> None:
        if not batch.messages:
            batch.started = time.monotonic()
        outcome = self.processor.process(message.topic, message.payload, message.received_us)
        batch.messages.append(message)
        if outcome.readings:
            batch.readings.extend(outcome.readings)
            newest = batch.newest
            for reading in outcome.readings:
                if reading.ts_us > newest.get(reading.asset, 0):
                    newest[reading.asset] = reading.ts_us
        if outcome.quarantined:
            batch.quarantine.extend(outcome.quarantined)
            for record in outcome.quarantined:
                batch.rejects[record.reason] += 1
            batch.results["partial" if outcome.readings else "quarantined"] += 1
        else:
            batch.results["stored" if outcome.readings else "empty"] += 1

    def _flush(self, batch: _Batch) -> bool:
        """Make the batch durable, then acknowledge its messages. False (nothing acknowledged) on failure."""
        started = time.perf_counter()
        try:
            if batch.readings:
                self.store.write_readings(batch.readings)
            if batch.quarantine:
                self.store.write_quarantine(batch.quarantine)
        except Exception as exc:  # disk full, permissions, ...: keep the data, retry, say why
            self.metrics.flush_errors.inc()
            self._last_flush_error = f"{type(exc).__name__}: {exc}"[:200]
            log.error("could not write %d readings: %s", len(batch.readings), self._last_flush_error)
            return False
        self._last_flush_error = None
        self.metrics.flush_duration.observe(time.perf_counter() - started)
        unacked = sum(1 for message in batch.messages if not self.source.ack(message))
        if unacked:
            log.info("%d stored messages belong to a closed connection; their redeliveries are deduplicated", unacked)
        self.processed_messages += len(batch.messages)
        m = self.metrics
        m.readings.inc(len(batch.readings))
        m.quarantined.inc(len(batch.quarantine))
        for result, n in batch.results.items():
            m.messages.labels(result=result).inc(n)
        for reason, n in batch.rejects.items():
            m.rejects.labels(reason=reason).inc(n)
        for asset, ts_us in batch.newest.items():
            m.last_reading.labels(asset=asset).set(ts_us / 1e6)
        gaps = int(getattr(self.processor, "seq_gaps", 0))
        if gaps > self._seq_gaps_seen:
            m.sparkplug_seq_gaps.inc(gaps - self._seq_gaps_seen)
            self._seq_gaps_seen = gaps
        return True

    def _compaction_loop(self) -> None:
        cc = self.cfg.ingest.compaction
        while not self.stop_event.wait(cc.interval_s):
            try:
                stats = compact(self.root, min_files=cc.min_files, older_than_s=cc.older_than_s)
            except Exception:
                log.exception("compaction failed; will retry in %.0f s", cc.interval_s)
                continue
            self.metrics.compactions.inc(stats.partitions_compacted)
            self.metrics.compaction_duplicates.inc(stats.duplicates_removed)
            self.metrics.corrupt_files.inc(stats.corrupt_files)
