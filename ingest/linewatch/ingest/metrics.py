"""Every metric the ingest daemon exports, in one place, on an injected registry.

Names follow Prometheus conventions (``linewatch_ingest_`` prefix, base units, ``_total`` counters); labels are
bounded: ``result`` and ``reason`` come from fixed sets, ``asset`` from validated names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_P = "linewatch_ingest_"


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.messages = Counter(
            _P + "messages",
            "MQTT messages processed, by result: stored (all readings kept), partial (some quarantined), "
            "quarantined (none kept).",
            ["result"],
            registry=registry,
        )
        self.readings = Counter(_P + "readings", "Readings written durably to the raw store.", registry=registry)
        self.rejects = Counter(
            _P + "rejects",
            "Rejected messages or readings, by reason (all kept in quarantine).",
            ["reason"],
            registry=registry,
        )
        self.quarantined = Counter(
            _P + "quarantine_records", "Records written to the quarantine store.", registry=registry
        )
        self.queue_depth = Gauge(_P + "queue_depth", "Messages waiting between MQTT and the writer.", registry=registry)
        self.queue_capacity = Gauge(_P + "queue_capacity", "Bound of the in-memory message queue.", registry=registry)
        self.queue_full = Counter(
            _P + "queue_full",
            "Times the MQTT thread waited because the queue was full (back-pressure).",
            registry=registry,
        )
        self.pending_acks = Gauge(
            _P + "pending_acks", "Messages received but not yet durable and acknowledged.", registry=registry
        )
        self.flush_duration = Histogram(
            _P + "flush_duration_seconds",
            "Time to make one batch durable (Parquet write, fsync, rename).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.flush_errors = Counter(
            _P + "flush_errors",
            "Failed attempts to write a batch (retried; messages stay unacknowledged).",
            registry=registry,
        )
        self.connected = Gauge(_P + "broker_connected", "1 while connected to the MQTT broker.", registry=registry)
        self.connects = Counter(_P + "broker_connects", "Successful broker connections.", registry=registry)
        self.disconnects = Counter(_P + "broker_disconnects", "Lost or closed broker connections.", registry=registry)
        self.connect_failures = Counter(
            _P + "broker_connect_failures",
            "Refused connection attempts (CONNACK failure), by reason.",
            ["reason"],
            registry=registry,
        )
        self.last_reading = Gauge(
            _P + "last_reading_timestamp_seconds",
            "Timestamp of the newest stored reading per asset (Unix seconds).",
            ["asset"],
            registry=registry,
        )
        self.sparkplug_seq_gaps = Counter(
            _P + "sparkplug_seq_gaps",
            "Sparkplug B sequence-number gaps (possible lost messages upstream).",
            registry=registry,
        )
        self.compactions = Counter(_P + "compacted_partitions", "Partitions merged by compaction.", registry=registry)
        self.compaction_duplicates = Counter(
            _P + "compaction_duplicates_removed", "Duplicate readings removed by compaction.", registry=registry
        )
        self.corrupt_files = Counter(
            _P + "corrupt_files", "Unreadable store files moved aside by compaction.", registry=registry
        )
