"""Sparkplug B (Eclipse Tahu) payloads: stateful decoding of BIRTH/DATA/DEATH into readings.

Topics are ``spBv1.0/<group>/<type>/<edge_node>[/<device>]``. Sparkplug is stateful: a BIRTH message names
every metric, gives it a datatype and usually a numeric alias, and later DATA messages may carry only the
alias. So the decoder keeps, per ``(group, edge_node, device)``, the alias map and datatypes of the last
BIRTH, and refuses DATA it cannot interpret (reason ``sparkplug_no_birth``) instead of guessing. BIRTH is
not retained by brokers, so DATA arriving after linewatch starts but before the next rebirth is quarantined
(kept, not lost) until the edge node rebirths.

Decisions, each because the data must map onto ``(asset, sensor)`` names that are safe as paths and labels:

* **asset** = the device id when the topic has one, else the edge node id; it must pass ``is_valid_name``.
* **sensor** = the metric name with ``/`` and spaces mapped to ``_`` (``Motor/Current`` -> ``Motor_Current``,
  deterministic, so training and serving agree), then ``is_valid_name`` or a ``bad_name`` reject.
* Numeric metrics (Int*, UInt*, Float, Double) become readings; signed integers travel as two's complement
  in ``int_value``/``long_value`` and are sign-converted at the datatype's width. Booleans become 0.0/1.0.
  String, Text, UUID, DateTime, Bytes, File, DataSet, Template and null metrics are not sensor values: they
  are skipped without a reject and counted in :attr:`SparkplugDecoder.skipped_metrics`, as are ``bdSeq``
  and the ``Node Control/*`` and ``Device Control/*`` metrics.
* A metric's timestamp (ms) falls back to the payload's; without either the reading takes the receive time
  if ``accept_missing_ts`` is set, else it is a ``missing_ts`` reject.
* NCMD, DCMD and STATE are commands and host state, not data: they are ignored (empty outcome, no reject)
  and counted in :attr:`SparkplugDecoder.ignored_messages`.
* ``seq`` (0..255, wrapping) is tracked per edge node from its NBIRTH; every jump is counted in
  :attr:`SparkplugDecoder.seq_gaps` (a metric: gaps mean lost messages). An NDEATH whose ``bdSeq`` differs
  from the current NBIRTH's is stale (from an earlier session) and ignored.

The protobuf message classes are built at import time from a descriptor written here (a wire-compatible
subset of Tahu's ``sparkplug_b.proto``: same package, message names and field numbers), so no generated
code or ``protoc`` is needed; fields left out (metadata, properties, dataset, template, extensions) are
skipped as unknown fields by the parser.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, MutableSequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol, cast

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from linewatch.core.logs import excerpt
from linewatch.core.schema import is_valid_name
from linewatch.ingest.records import Reading, Reject
from linewatch.ingest.timestamps import MAX_TS_US

if TYPE_CHECKING:
    from google.protobuf.message import Message

NAMESPACE: Final = "spBv1.0"
NODE_TYPES: Final = frozenset({"NBIRTH", "NDATA", "NDEATH", "NCMD"})
DEVICE_TYPES: Final = frozenset({"DBIRTH", "DDATA", "DDEATH", "DCMD"})
#: Default bound on remembered births, so a flood of made-up device ids cannot exhaust memory.
DEFAULT_MAX_BIRTHS: Final = 100_000

# Sparkplug datatypes (Tahu DataType enum).
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME = 9, 10, 11, 12, 13
_SIGNED_BITS: Final[Mapping[int, int]] = {INT8: 8, INT16: 16, INT32: 32, INT64: 64}
_CONTROL_PREFIXES: Final = ("Node Control/", "Device Control/")


def _build_classes() -> tuple[type[Message], type[Message]]:
    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="linewatch/sparkplug_b.proto", package="org.eclipse.tahu.protobuf", syntax="proto2"
    )
    payload = proto.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    for name, number, kind in (
        ("name", 1, f.TYPE_STRING),
        ("alias", 2, f.TYPE_UINT64),
        ("timestamp", 3, f.TYPE_UINT64),
        ("datatype", 4, f.TYPE_UINT32),
        ("is_historical", 5, f.TYPE_BOOL),
        ("is_transient", 6, f.TYPE_BOOL),
        ("is_null", 7, f.TYPE_BOOL),
    ):
        metric.field.add(name=name, number=number, type=kind, label=f.LABEL_OPTIONAL)
    for name, number, kind in (
        ("int_value", 10, f.TYPE_UINT32),
        ("long_value", 11, f.TYPE_UINT64),
        ("float_value", 12, f.TYPE_FLOAT),
        ("double_value", 13, f.TYPE_DOUBLE),
        ("boolean_value", 14, f.TYPE_BOOL),
        ("string_value", 15, f.TYPE_STRING),
        ("bytes_value", 16, f.TYPE_BYTES),
    ):
        metric.field.add(name=name, number=number, type=kind, label=f.LABEL_OPTIONAL, oneof_index=0)
    payload.field.add(name="timestamp", number=1, type=f.TYPE_UINT64, label=f.LABEL_OPTIONAL)
    payload.field.add(
        name="metrics",
        number=2,
        type=f.TYPE_MESSAGE,
        label=f.LABEL_REPEATED,
        type_name=".org.eclipse.tahu.protobuf.Payload.Metric",
    )
    payload.field.add(name="seq", number=3, type=f.TYPE_UINT64, label=f.LABEL_OPTIONAL)
    payload.field.add(name="uuid", number=4, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    payload.field.add(name="body", number=5, type=f.TYPE_BYTES, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()  # private: never clashes with a generated tahu module
    pool.Add(proto)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("org.eclipse.tahu.protobuf.Payload")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("org.eclipse.tahu.protobuf.Payload.Metric")),
    )


#: ``org.eclipse.tahu.protobuf.Payload`` and its nested ``Metric`` (for building payloads in tests/tools).
Payload, Metric = _build_classes()


class _MetricView(Protocol):
    """The fields of a parsed Metric this module reads (the classes are dynamic, so typed by protocol)."""

    name: str | bytes  # upb hands back bytes for a proto2 string that is not valid UTF-8
    alias: int
    timestamp: int
    datatype: int
    is_null: bool
    int_value: int
    long_value: int
    float_value: float
    double_value: float
    boolean_value: bool

    def HasField(self, field_name: str) -> bool: ...  # noqa: N802 - protobuf's API
    def WhichOneof(self, oneof_group: str) -> str | None: ...  # noqa: N802


class _PayloadView(Protocol):
    timestamp: int
    seq: int
    metrics: MutableSequence[_MetricView]

    def HasField(self, field_name: str) -> bool: ...  # noqa: N802


@dataclass(slots=True)
class _Birth:
    """What a BIRTH told us about one node or device."""

    sensors: dict[int, str] = field(default_factory=dict)  # alias -> raw metric name
    datatypes: dict[str, int] = field(default_factory=dict)  # raw metric name -> datatype
    bd_seq: int | None = None  # NBIRTH only


def sensor_name(metric_name: str) -> str:
    """The sensor name for a Sparkplug metric name: ``/`` and spaces become ``_`` (may still be invalid)."""
    return metric_name.replace("/", "_").replace(" ", "_")


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


_Key = tuple[str, str, str | None]


class SparkplugDecoder:
    """Decodes Sparkplug B messages; one instance per stream of messages (it holds the BIRTH state).

    Call it like the other decoders: ``decoder(topic, fields, payload, received_us, readings, rejects)``;
    ``fields`` (the template's) is unused because Sparkplug fixes the topic layout. A lock makes each call
    atomic, but messages of one edge node must still be processed in order (one worker per node).
    """

    def __init__(self, accept_missing_ts: bool = False, max_births: int = DEFAULT_MAX_BIRTHS) -> None:
        self.accept_missing_ts = accept_missing_ts
        self.max_births = max_births
        #: Sequence-number jumps seen (lost or reordered messages), over all edge nodes.
        self.seq_gaps = 0
        #: Metrics that carry no sensor value (strings, datasets, nulls, control metrics), over all messages.
        self.skipped_metrics = 0
        #: NCMD, DCMD and STATE messages, which carry no readings.
        self.ignored_messages = 0
        self._births: dict[_Key, _Birth] = {}
        self._devices: dict[tuple[str, str], set[str]] = {}
        self._next_seq: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def births(self) -> int:
        """How many nodes and devices currently have BIRTH state."""
        return len(self._births)

    def __call__(
        self,
        topic: str,
        fields: Mapping[str, str],
        payload: bytes,
        received_us: int,
        readings: list[Reading],
        rejects: list[Reject],
    ) -> None:
        levels = topic.split("/", 5)
        if len(levels) >= 2 and levels[0] == NAMESPACE and levels[1] == "STATE":
            self.ignored_messages += 1
            return
        kind = levels[2] if len(levels) >= 3 else ""
        expected = 4 if kind in NODE_TYPES else 5 if kind in DEVICE_TYPES else 0
        if levels[0] != NAMESPACE or len(levels) != expected or not all(levels):
            rejects.append(Reject("bad_topic", f"not a Sparkplug B topic: {excerpt(topic, 120)}"))
            return
        if kind in ("NCMD", "DCMD"):
            self.ignored_messages += 1
            return
        try:
            message = cast("_PayloadView", Payload.FromString(payload))
        except Exception as exc:  # the parser raises DecodeError, but hostile bytes deserve a wide net
            rejects.append(Reject("bad_protobuf", f"undecodable Sparkplug payload: {excerpt(str(exc), 120)}"))
            return
        group, node = levels[1], levels[3]
        device = levels[4] if expected == 5 else None
        with self._lock:
            self._handle(kind, group, node, device, message, received_us, readings, rejects)

    def _handle(
        self,
        kind: str,
        group: str,
        node: str,
        device: str | None,
        message: _PayloadView,
        received_us: int,
        readings: list[Reading],
        rejects: list[Reject],
    ) -> None:
        node_key = (group, node)
        key: _Key = (group, node, device)
        if kind == "NDEATH":
            self._node_death(node_key, message)
            return
        if kind == "NBIRTH":
            self._forget_node(node_key)
        else:
            self._check_seq(node_key, message)
        if kind in ("NBIRTH", "DBIRTH"):
            birth = self._birth(key, message, rejects)
            if birth is None:
                return
            if kind == "NBIRTH" and message.HasField("seq"):
                self._next_seq[node_key] = (message.seq + 1) % 256
        elif kind == "DDEATH":
            self._births.pop(key, None)
            self._devices.get(node_key, set()).discard(device or "")
            return
        else:  # NDATA, DDATA
            found = self._births.get(key)
            if found is None:
                rejects.append(
                    Reject(
                        "sparkplug_no_birth",
                        f"{kind} from {excerpt(device or node, 80)} (group {excerpt(group, 80)}) before its "
                        f"{'DBIRTH' if device else 'NBIRTH'}; waiting for a rebirth",
                    )
                )
                return
            birth = found
        self._emit(device or node, birth, message, received_us, readings, rejects)

    def _birth(self, key: _Key, message: _PayloadView, rejects: list[Reject]) -> _Birth | None:
        if key not in self._births and len(self._births) >= self.max_births:
            rejects.append(Reject("sparkplug_state_full", f"more than {self.max_births} births remembered"))
            return None
        birth = _Birth()
        for metric in message.metrics:
            name = metric.name
            if not isinstance(name, str) or not name:
                continue  # reported per metric when emitted
            if metric.HasField("alias"):
                birth.sensors[metric.alias] = name
            if metric.HasField("datatype"):
                birth.datatypes[name] = metric.datatype
            if name == "bdSeq" and key[2] is None:
                kind = metric.WhichOneof("value")
                birth.bd_seq = metric.long_value if kind == "long_value" else metric.int_value
        self._births[key] = birth
        if key[2] is not None:
            self._devices.setdefault((key[0], key[1]), set()).add(key[2])
        return birth

    def _forget_node(self, node_key: tuple[str, str]) -> None:
        """Drop the node's BIRTH, its devices' BIRTHs and its sequence state (a new session starts)."""
        self._births.pop((node_key[0], node_key[1], None), None)
        for device in self._devices.pop(node_key, ()):
            self._births.pop((node_key[0], node_key[1], device), None)
        self._next_seq.pop(node_key, None)

    def _node_death(self, node_key: tuple[str, str], message: _PayloadView) -> None:
        current = self._births.get((node_key[0], node_key[1], None))
        if current is not None and current.bd_seq is not None:
            for metric in message.metrics:
                if metric.name == "bdSeq":
                    kind = metric.WhichOneof("value")
                    bd_seq = metric.long_value if kind == "long_value" else metric.int_value
                    if bd_seq != current.bd_seq:
                        return  # a stale will from an earlier session: the current session is alive
        self._forget_node(node_key)

    def _check_seq(self, node_key: tuple[str, str], message: _PayloadView) -> None:
        expected = self._next_seq.get(node_key)
        if expected is None or not message.HasField("seq"):
            return
        seq = message.seq % 256
        if seq != expected:
            self.seq_gaps += 1
        self._next_seq[node_key] = (seq + 1) % 256

    def _emit(
        self,
        asset: str,
        birth: _Birth,
        message: _PayloadView,
        received_us: int,
        readings: list[Reading],
        rejects: list[Reject],
    ) -> None:
        asset_checked = False
        payload_ts = message.timestamp if message.HasField("timestamp") else None
        for metric in message.metrics:
            raw_name = metric.name if metric.HasField("name") else None
            if raw_name is None and metric.HasField("alias"):
                raw_name = birth.sensors.get(metric.alias)
                if raw_name is None:
                    rejects.append(
                        Reject("sparkplug_unknown_alias", f"alias {metric.alias} is not in the {asset} birth")
                    )
                    continue
            if not isinstance(raw_name, str) or not raw_name:
                rejects.append(Reject("bad_name", "metric has neither a valid name nor an alias"))
                continue
            if raw_name == "bdSeq" or raw_name.startswith(_CONTROL_PREFIXES) or metric.is_null:
                self.skipped_metrics += 1
                continue
            datatype = metric.datatype if metric.HasField("datatype") else birth.datatypes.get(raw_name, 0)
            value = _numeric(metric, datatype)
            if value is None:
                self.skipped_metrics += 1
                continue
            sensor = sensor_name(raw_name)
            if not is_valid_name(sensor):
                rejects.append(Reject("bad_name", f"metric {excerpt(raw_name, 80)!r} is not a valid sensor name"))
                continue
            if not math.isfinite(value):
                rejects.append(Reject("non_finite", f"metric {sensor}: value {value!r}"))
                continue
            ts_ms = metric.timestamp if metric.HasField("timestamp") else payload_ts
            if ts_ms is None:
                if not self.accept_missing_ts:
                    rejects.append(Reject("missing_ts", f"metric {sensor}: no metric or payload timestamp"))
                    continue
                ts_us = received_us
            else:
                ts_us = ts_ms * 1000
                if ts_us > MAX_TS_US:
                    rejects.append(Reject("bad_ts", f"metric {sensor}: timestamp {ts_ms} ms out of range"))
                    continue
            if not asset_checked:  # only when there is something to store: births may carry no values
                if not is_valid_name(asset):
                    rejects.append(Reject("bad_name", f"asset {excerpt(asset, 80)!r} is not a valid name"))
                    return
                asset_checked = True
            readings.append(Reading(ts_us, asset, sensor, value, received_us))


def _numeric(metric: _MetricView, datatype: int) -> float | None:
    """The metric's value as a float, or None when it is not a sensor value (string, bytes, date, ...)."""
    kind = metric.WhichOneof("value")
    if kind == "int_value" or kind == "long_value":
        if datatype == DATETIME:
            return None
        raw = metric.int_value if kind == "int_value" else metric.long_value
        bits = _SIGNED_BITS.get(datatype)
        return float(_signed(raw, bits) if bits is not None else raw)
    if kind == "double_value":
        return metric.double_value
    if kind == "float_value":
        return metric.float_value
    if kind == "boolean_value":
        return 1.0 if metric.boolean_value else 0.0
    return None
