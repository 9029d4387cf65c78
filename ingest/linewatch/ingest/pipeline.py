"""The pure message-processing stage: one MQTT message in, readings and quarantine records out.

``MessageProcessor.process(topic, payload, received_us)`` routes the topic to the first subscription whose
filter matches, applies that subscription's template, runs its decoder and checks the timestamp window.
Every reject becomes a :class:`QuarantineRecord` carrying the (bounded) topic and payload, so nothing is
dropped silently; the daemon counts results and reasons from the :class:`Outcome`. No I/O, no clock, no
logging on the hot path, and ``process`` never raises: an unexpected exception (a bug) is quarantined as
``decoder_error`` so one bad message cannot stop ingestion.

The only state is the Sparkplug BIRTH state, and a bounded cache from topic to route: matching a topic
against filters with paho's matcher costs microseconds, and plants publish the same few thousand topics
over and over, so each distinct topic is resolved once. Long topics are not cached, and the cache is
cleared when full, so hostile topics cannot grow memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from linewatch.core.config import Subscription
from linewatch.core.logs import excerpt
from linewatch.ingest.decoders import REJECT_REASONS, Decoder, DecoderOptions, make_decoder
from linewatch.ingest.records import Outcome, QuarantineRecord, Reading, Reject
from linewatch.ingest.sparkplug import SparkplugDecoder
from linewatch.ingest.topics import TopicTemplate, bad_name_field, filter_matches, strip_share
from linewatch.ingest.validate import ValidationPolicy, filter_window

__all__ = ["MAX_TOPIC_CHARS", "REJECT_REASONS", "MessageProcessor"]

#: Longest topic kept in a quarantine record (MQTT allows 65535 bytes; nobody needs that many to diagnose).
MAX_TOPIC_CHARS: Final = 512
#: Topics longer than this are resolved every time instead of being cached.
_MAX_CACHED_TOPIC_CHARS: Final = 256
_DEFAULT_ROUTE_CACHE: Final = 16_384
_US = 1_000_000


@dataclass(frozen=True, slots=True)
class _Route:
    topic_filter: str  # without any $share/<group>/ prefix
    template: TopicTemplate | None  # None: the decoder reads the topic itself (Sparkplug)
    decoder: Decoder


_Resolved = tuple[_Route, Mapping[str, str]] | Reject
_NO_FIELDS: Final[Mapping[str, str]] = {}


def _clean_topic(topic: object) -> str:
    """The topic as it is stored in quarantine: a str, at most MAX_TOPIC_CHARS, encodable as UTF-8."""
    text = topic if isinstance(topic, str) else repr(topic)
    text = text[:MAX_TOPIC_CHARS]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (e.g. from surrogateescape decoding) cannot go to Parquet
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")[:MAX_TOPIC_CHARS]
    return text


class MessageProcessor:
    """Routes, decodes and validates messages for a list of subscriptions (first matching filter wins).

    Not for concurrent use with Sparkplug: BIRTH/DATA order matters, so process each edge node's messages
    on one thread, in arrival order (the daemon's single writer loop does).
    """

    def __init__(
        self,
        subscriptions: Sequence[Subscription],
        policy: ValidationPolicy | None = None,
        *,
        route_cache_size: int = _DEFAULT_ROUTE_CACHE,
    ) -> None:
        self.policy = policy if policy is not None else ValidationPolicy()
        options = DecoderOptions(accept_missing_ts=self.policy.accept_missing_ts)
        self._sparkplug: SparkplugDecoder | None = None
        routes = []
        for sub in subscriptions:
            if sub.decoder == "sparkplug_b":
                if self._sparkplug is None:  # one BIRTH state for all Sparkplug subscriptions
                    self._sparkplug = SparkplugDecoder(accept_missing_ts=self.policy.accept_missing_ts)
                routes.append(_Route(strip_share(sub.topic), None, self._sparkplug))
            else:
                if sub.template is None:  # the config validator requires one for every JSON decoder
                    raise ValueError(f"subscription {sub.topic!r} with decoder {sub.decoder} needs a template")
                routes.append(
                    _Route(strip_share(sub.topic), TopicTemplate(sub.template), make_decoder(sub.decoder, options))
                )
        self._routes: tuple[_Route, ...] = tuple(routes)
        self._cache: dict[str, _Resolved] = {}
        self._cache_size = route_cache_size
        self._max_age_us = round(self.policy.max_age_s * _US)
        self._skew_us = round(self.policy.max_future_skew_s * _US)
        self._max_payload = self.policy.max_payload_bytes
        self._keep_payload = self.policy.quarantine_payload_bytes

    # -- counters the daemon exports (Sparkplug only; everything else is counted from Outcome) ----------
    @property
    def seq_gaps(self) -> int:
        """Sparkplug sequence-number gaps seen so far (monotonic)."""
        return self._sparkplug.seq_gaps if self._sparkplug is not None else 0

    @property
    def skipped_metrics(self) -> int:
        """Sparkplug metrics without a sensor value (strings, nulls, control metrics), skipped (monotonic)."""
        return self._sparkplug.skipped_metrics if self._sparkplug is not None else 0

    # -- the hot path ------------------------------------------------------------------------------------
    def process(self, topic: str, payload: bytes, received_us: int) -> Outcome:
        """Decode one message; never raises. Readings and quarantine records may both be non-empty."""
        try:
            return self._process(topic, payload, received_us)
        except Exception as exc:  # a bug, not bad input: keep the message and keep running
            try:
                detail = f"{type(exc).__name__}: {excerpt(str(exc), 200)}"
                return Outcome([], [self._record(topic, payload, received_us, Reject("decoder_error", detail))])
            except Exception:
                return Outcome([], [QuarantineRecord(0, "", b"", "decoder_error", "unprintable error")])

    def _process(self, topic: str, payload: bytes, received_us: int) -> Outcome:
        resolved = self._cache.get(topic)
        if resolved is None:
            resolved = self._resolve(topic)
            if len(topic) <= _MAX_CACHED_TOPIC_CHARS:
                if len(self._cache) >= self._cache_size:
                    self._cache.clear()
                self._cache[topic] = resolved
        if isinstance(resolved, Reject):
            return Outcome([], [self._record(topic, payload, received_us, resolved)])
        if len(payload) > self._max_payload:
            reject = Reject("too_large", f"payload of {len(payload)} bytes exceeds {self._max_payload}")
            return Outcome([], [self._record(topic, payload, received_us, reject)])
        route, fields = resolved
        readings: list[Reading] = []
        rejects: list[Reject] = []
        route.decoder(topic, fields, payload, received_us, readings, rejects)
        if readings:
            readings = filter_window(readings, received_us - self._max_age_us, received_us + self._skew_us, rejects)
        if not rejects:
            return Outcome(readings)
        kept = self._payload_excerpt(payload)
        clean = _clean_topic(topic)
        return Outcome(readings, [QuarantineRecord(received_us, clean, kept, r.reason, r.detail) for r in rejects])

    def _resolve(self, topic: str) -> _Resolved:
        for route in self._routes:
            if filter_matches(route.topic_filter, topic):
                break
        else:
            return Reject("no_subscription", f"no subscription matches topic {excerpt(topic, 120)!r}")
        if route.template is None:
            return route, _NO_FIELDS
        fields = route.template.match(topic)
        if fields is None:
            return Reject(
                "bad_topic",
                f"topic {excerpt(topic, 120)!r} matches {route.topic_filter!r} but not template "
                f"{route.template.template!r}",
            )
        bad = bad_name_field(fields)
        if bad is not None:
            return Reject("bad_name", f"{bad} {excerpt(fields[bad], 80)!r} in the topic is not a valid name")
        return route, fields

    def _payload_excerpt(self, payload: bytes) -> bytes:
        cut = payload[: self._keep_payload]
        return cut if type(cut) is bytes else bytes(cut)

    def _record(self, topic: str, payload: bytes, received_us: int, reject: Reject) -> QuarantineRecord:
        return QuarantineRecord(
            received_us, _clean_topic(topic), self._payload_excerpt(payload), reject.reason, reject.detail
        )
