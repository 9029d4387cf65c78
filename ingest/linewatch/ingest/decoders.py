"""Payload decoders, registered by the names a subscription's ``decoder:`` key accepts.

Every decoder has the same call shape (:class:`Decoder`) and appends to two lists instead of returning new
containers, so the hot path allocates little beyond the :class:`Reading` objects themselves. A message may
be partly good: good readings are kept and each bad one becomes its own :class:`Reject`; a message that
cannot be read at all is a single reject. Reject reasons are a small fixed set (:data:`REJECT_REASONS`)
because they become a metric label.

JSON payloads (parsed with ``json.loads``, which also accepts UTF-16/32 and the ``NaN``/``Infinity`` literals
that some gateways emit; those are then refused as ``non_finite``):

* ``json_single``: ``{"ts": T, "value": 1.5}`` (other keys such as ``unit`` are ignored) or a bare number
  ``1.5``, which has no timestamp. Asset and sensor come from the topic.
* ``json_record``: ``{"ts": T, "values": {"temp": 1.5, "rpm": 1200}}``; the asset comes from the topic. An
  optional ``"asset"`` key must equal the topic's asset, else the whole record is an ``asset_mismatch``:
  a payload that disagrees with its topic is a misconfigured gateway, and writing it under either name
  would silently mix two machines' data.
* ``json_batch``: a list whose items are single readings (``{"ts", "value"}``, with ``"sensor"`` when the
  topic has no ``{sensor}``; an item's ``"sensor"`` wins over the topic's) or records (``{"ts", "values"}``)
  or a mix. A single object is accepted as a batch of one.
* ``sparkplug_b``: see :mod:`linewatch.ingest.sparkplug`.

Timestamps (:mod:`linewatch.ingest.timestamps`): a missing or ``null`` ``"ts"`` takes the receive time only
when ``accept_missing_ts`` is set, else the reading is a ``missing_ts`` reject. Values must be JSON numbers
and finite; ``true``/``false`` are refused (``bad_value``) even though Python's ``bool`` is an ``int``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final, Protocol

from linewatch.core.config import DecoderName
from linewatch.core.logs import excerpt
from linewatch.core.schema import is_valid_name
from linewatch.ingest.records import Reading, Reject
from linewatch.ingest.sparkplug import SparkplugDecoder
from linewatch.ingest.timestamps import TimestampError, to_us

#: Every reason code the ingest stage produces (topic matching, decoding, validation). Bounded on purpose:
#: each becomes a value of the rejects-by-reason metric label.
REJECT_REASONS: Final[frozenset[str]] = frozenset(
    {
        "no_subscription",  # no configured filter matches the topic
        "bad_topic",  # the topic matches a filter but not its template (or is not a Sparkplug topic)
        "bad_name",  # an asset or sensor name fails linewatch.core.schema.is_valid_name
        "too_large",  # payload over max_payload_bytes; not decoded
        "bad_json",  # not JSON (syntax, encoding, nesting depth, giant integers)
        "bad_shape",  # JSON of the wrong structure (missing "value"/"values", empty batch, ...)
        "bad_value",  # a value that is not a number (string, bool, null, object)
        "non_finite",  # NaN or an infinity (or an integer too large for a float)
        "missing_ts",  # no timestamp and accept_missing_ts is off
        "bad_ts",  # an unparseable or absurd timestamp
        "ts_future",  # timestamp beyond now + max_future_skew_s
        "ts_too_old",  # timestamp before now - max_age_s
        "asset_mismatch",  # a payload "asset" that differs from the topic's asset
        "bad_protobuf",  # a Sparkplug payload that is not a valid protobuf
        "sparkplug_no_birth",  # Sparkplug DATA before (or after the death of) its BIRTH
        "sparkplug_unknown_alias",  # a Sparkplug alias that the BIRTH did not define
        "sparkplug_state_full",  # too many Sparkplug nodes/devices remembered
        "decoder_error",  # an unexpected exception (a bug): the message is kept, the daemon keeps going
    }
)


class Decoder(Protocol):
    """Turns one payload into readings and rejects (appended to the given lists); never raises on bad input.

    ``fields`` are the topic template's values (``asset`` always, ``sensor`` when the template has one),
    already checked to be valid names.
    """

    def __call__(
        self,
        topic: str,
        fields: Mapping[str, str],
        payload: bytes,
        received_us: int,
        readings: list[Reading],
        rejects: list[Reject],
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class DecoderOptions:
    """Settings every decoder receives when it is built."""

    accept_missing_ts: bool = False


class _Bad(Enum):
    """Marker for "already rejected" results, cheaper than raising on the hot path."""

    BAD = 0


def _load(payload: bytes, rejects: list[Reject]) -> object:
    try:
        return json.loads(payload)
    except RecursionError:
        rejects.append(Reject("bad_json", "JSON nested too deeply"))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        rejects.append(Reject("bad_json", f"not JSON: {excerpt(str(exc), 120)}"))
    return _Bad.BAD


def _value(raw: object, what: str, rejects: list[Reject]) -> float | _Bad:
    if type(raw) is float:
        value = raw
    elif type(raw) is int:
        try:
            value = float(raw)
        except OverflowError:
            rejects.append(Reject("non_finite", f"{what}: integer too large for a float"))
            return _Bad.BAD
    else:
        shown = excerpt(json.dumps(raw) if raw is None or isinstance(raw, bool | str) else type(raw).__name__, 60)
        rejects.append(Reject("bad_value", f"{what}: value is not a number ({shown})"))
        return _Bad.BAD
    if not math.isfinite(value):
        rejects.append(Reject("non_finite", f"{what}: value {value!r}"))
        return _Bad.BAD
    return value


class _JsonDecoder:
    """Shared timestamp and value handling of the JSON decoders."""

    __slots__ = ("accept_missing_ts",)

    def __init__(self, options: DecoderOptions) -> None:
        self.accept_missing_ts = options.accept_missing_ts

    def _ts(self, doc: Mapping[str, object], what: str, received_us: int, rejects: list[Reject]) -> int | _Bad:
        raw = doc.get("ts")
        if raw is None:
            if self.accept_missing_ts:
                return received_us
            rejects.append(Reject("missing_ts", f'{what}: no "ts"'))
            return _Bad.BAD
        try:
            return to_us(raw)
        except TimestampError as exc:
            rejects.append(Reject("bad_ts", f"{what}: {exc}"))
            return _Bad.BAD

    def _single(
        self,
        doc: Mapping[str, object],
        asset: str,
        sensor: str | None,
        received_us: int,
        readings: list[Reading],
        rejects: list[Reject],
    ) -> None:
        if sensor is None:
            rejects.append(Reject("bad_shape", 'reading has no "sensor" and the topic names none'))
            return
        if "value" not in doc:
            rejects.append(Reject("bad_shape", f'sensor {sensor}: no "value"'))
            return
        value = _value(doc["value"], f"sensor {sensor}", rejects)
        if value is _Bad.BAD:
            return
        ts = self._ts(doc, f"sensor {sensor}", received_us, rejects)
        if ts is _Bad.BAD:
            return
        readings.append(Reading(ts, asset, sensor, value, received_us))

    def _record(
        self,
        doc: Mapping[str, object],
        asset: str,
        received_us: int,
        readings: list[Reading],
        rejects: list[Reject],
    ) -> None:
        values = doc.get("values")
        if type(values) is not dict or not values:
            rejects.append(Reject("bad_shape", 'record needs a non-empty "values" object'))
            return
        claimed = doc.get("asset", asset)
        if claimed != asset:
            shown = excerpt(claimed if isinstance(claimed, str) else type(claimed).__name__, 80)
            rejects.append(Reject("asset_mismatch", f"payload asset {shown!r} differs from topic asset {asset!r}"))
            return
        ts = self._ts(doc, "record", received_us, rejects)
        if ts is _Bad.BAD:
            return
        for sensor, raw in values.items():
            if not is_valid_name(sensor):
                rejects.append(Reject("bad_name", f"sensor {excerpt(sensor, 80)!r} is not a valid name"))
                continue
            value = _value(raw, f"sensor {sensor}", rejects)
            if value is not _Bad.BAD:
                readings.append(Reading(ts, asset, sensor, value, received_us))


class JsonSingleDecoder(_JsonDecoder):
    """``{"ts": T, "value": x}`` or a bare number, one reading named by the topic."""

    __slots__ = ()

    def __call__(
        self,
        topic: str,
        fields: Mapping[str, str],
        payload: bytes,
        received_us: int,
        readings: list[Reading],
        rejects: list[Reject],
    ) -> None:
        doc = _load(payload, rejects)
        if doc is _Bad.BAD:
            return
        asset, sensor = fields["asset"], fields.get("sensor")
        if type(doc) is dict:
            self._single(doc, asset, sensor, received_us, readings, rejects)
        elif type(doc) is int or type(doc) is float:
            self._single({"value": doc}, asset, sensor, received_us, readings, rejects)
        else:
            rejects.append(Reject("bad_shape", f"expected an object or a number, got {type(doc).__name__}"))


class JsonRecordDecoder(_JsonDecoder):
    """``{"ts": T, "values": {sensor: x, ...}}``, many sensors of the topic's asset at one time."""

    __slots__ = ()

    def __call__(
        self,
        topic: str,
        fields: Mapping[str, str],
        payload: bytes,
        received_us: int,
        readings: list[Reading],
        rejects: list[Reject],
    ) -> None:
        doc = _load(payload, rejects)
        if doc is _Bad.BAD:
            return
        if type(doc) is not dict:
            rejects.append(Reject("bad_shape", f"expected an object, got {type(doc).__name__}"))
            return
        self._record(doc, fields["asset"], received_us, readings, rejects)


class JsonBatchDecoder(_JsonDecoder):
    """A list of single readings and/or records (a single object counts as a batch of one)."""

    __slots__ = ()

    def __call__(
        self,
        topic: str,
        fields: Mapping[str, str],
        payload: bytes,
        received_us: int,
        readings: list[Reading],
        rejects: list[Reject],
    ) -> None:
        doc = _load(payload, rejects)
        if doc is _Bad.BAD:
            return
        items = [doc] if type(doc) is dict else doc
        if type(items) is not list or not items:
            rejects.append(Reject("bad_shape", "expected a non-empty list of readings or records"))
            return
        asset, topic_sensor = fields["asset"], fields.get("sensor")
        for index, item in enumerate(items):
            if type(item) is not dict:
                rejects.append(Reject("bad_shape", f"item {index}: expected an object, got {type(item).__name__}"))
            elif "values" in item:
                self._record(item, asset, received_us, readings, rejects)
            else:
                sensor = item.get("sensor", topic_sensor)
                if "asset" in item and item["asset"] != asset:
                    rejects.append(Reject("asset_mismatch", f"item {index}: payload asset differs from {asset!r}"))
                elif sensor is not None and (type(sensor) is not str or not is_valid_name(sensor)):
                    shown = excerpt(sensor if isinstance(sensor, str) else type(sensor).__name__, 80)
                    rejects.append(Reject("bad_name", f"item {index}: sensor {shown!r} is not a valid name"))
                else:
                    self._single(item, asset, sensor, received_us, readings, rejects)


def _sparkplug(options: DecoderOptions) -> Decoder:
    return SparkplugDecoder(accept_missing_ts=options.accept_missing_ts)


#: Decoder factories by configuration name. Factories, not instances: stateful decoders (Sparkplug) get one
#: instance per :class:`linewatch.ingest.pipeline.MessageProcessor`.
DECODERS: Final[Mapping[str, Callable[[DecoderOptions], Decoder]]] = MappingProxyType(
    {
        "json_single": JsonSingleDecoder,
        "json_record": JsonRecordDecoder,
        "json_batch": JsonBatchDecoder,
        "sparkplug_b": _sparkplug,
    }
)


def make_decoder(name: DecoderName | str, options: DecoderOptions | None = None) -> Decoder:
    """A new decoder for a configured name; ``KeyError`` names the known ones if ``name`` is not registered."""
    try:
        factory = DECODERS[name]
    except KeyError:
        raise KeyError(f"unknown decoder {name!r}; known: {', '.join(sorted(DECODERS))}") from None
    return factory(options if options is not None else DecoderOptions())
