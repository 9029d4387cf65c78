"""MessageProcessor: routing, quarantine records, and hostile-input properties over every decoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linewatch.core.config import Subscription
from linewatch.core.paths import safe_child
from linewatch.core.schema import is_valid_name
from linewatch.ingest.decoders import REJECT_REASONS
from linewatch.ingest.pipeline import MAX_TOPIC_CHARS, MessageProcessor
from linewatch.ingest.records import Outcome, Reading
from linewatch.ingest.sparkplug import Payload
from linewatch.ingest.validate import ValidationPolicy

NOW = 1_700_000_000_000_000
T0 = NOW // 1_000_000

SUBSCRIPTIONS = [
    Subscription(topic="plant/+/+/+", template="plant/{site}/{asset}/{sensor}", decoder="json_single"),
    Subscription(topic="rec/+/+", template="rec/{site}/{asset}", decoder="json_record"),
    Subscription(topic="batch/#", template="batch/{asset}", decoder="json_batch"),
    Subscription(topic="spBv1.0/#", template="spBv1.0/{group}/{type}/{asset}", decoder="sparkplug_b"),
]
POLICY = ValidationPolicy(max_payload_bytes=2048, quarantine_payload_bytes=64)


def processor(policy: ValidationPolicy = POLICY) -> MessageProcessor:
    return MessageProcessor(SUBSCRIPTIONS, policy)


def reasons(outcome: Outcome) -> list[str]:
    return [q.reason for q in outcome.quarantined]


def test_single_reading() -> None:
    out = processor().process("plant/s1/press-1/temp", json.dumps({"ts": T0, "value": 2.5}).encode(), NOW)
    assert out.readings == [Reading(NOW, "press-1", "temp", 2.5, NOW)] and out.quarantined == []


def test_no_subscription() -> None:
    out = processor().process("elsewhere/x", b"{}", NOW)
    assert out.readings == [] and reasons(out) == ["no_subscription"]
    q = out.quarantined[0]
    assert (q.topic, q.payload, q.received_us) == ("elsewhere/x", b"{}", NOW)


def test_template_mismatch_is_bad_topic() -> None:
    assert reasons(processor().process("batch/a/b", b"[]", NOW)) == ["bad_topic"]


@pytest.mark.parametrize("topic", ["plant/s/../temp", "plant/s/a1/..", "plant/s/a\x00/t", "plant/s/" + "a" * 65 + "/t"])
def test_bad_names_in_topic(topic: str) -> None:
    out = processor().process(topic, b'{"ts": 1, "value": 1}', NOW)
    assert reasons(out) == ["bad_name"]
    assert "\x00" not in out.quarantined[0].detail


def test_too_large_not_decoded_and_truncated() -> None:
    payload = b"[" + b"1," * 5000 + b"1]"
    out = processor().process("batch/a1", payload, NOW)
    assert reasons(out) == ["too_large"]
    assert out.quarantined[0].payload == payload[:64]


def test_window_and_partial_message() -> None:
    payload = json.dumps(
        [
            {"ts": T0, "sensor": "ok", "value": 1},
            {"ts": T0 + 301, "sensor": "future", "value": 1},
            {"ts": T0 - 604_801, "sensor": "old", "value": 1},
            {"ts": T0, "sensor": "bad", "value": "x"},
        ]
    ).encode()
    out = processor().process("batch/a1", payload, NOW)
    assert [r.sensor for r in out.readings] == ["ok"]
    assert sorted(reasons(out)) == ["bad_value", "ts_future", "ts_too_old"]
    assert all(q.payload == payload[:64] and q.topic == "batch/a1" for q in out.quarantined)


def test_topic_bounded_and_utf8_safe() -> None:
    out = processor().process("x/\udcff" + "y" * 1000, b"", NOW)
    topic = out.quarantined[0].topic
    topic.encode("utf-8")
    assert len(topic) <= MAX_TOPIC_CHARS


def test_first_matching_subscription_wins() -> None:
    subs = [
        Subscription(topic="plant/s1/+/+", template="plant/s1/{asset}/{sensor}", decoder="json_single"),
        Subscription(topic="plant/#", template="plant/{asset}", decoder="json_batch"),
    ]
    p = MessageProcessor(subs)
    assert len(p.process("plant/s1/a/b", b'{"ts": 1700000000, "value": 1}', NOW).readings) == 1
    assert reasons(p.process("plant/s2/a/b", b'{"ts": 1700000000, "value": 1}', NOW)) == ["bad_topic"]


def test_share_prefix_subscription() -> None:
    sub = Subscription(topic="$share/g/rec/+", template="$share/g/rec/{asset}", decoder="json_record")
    out = MessageProcessor([sub]).process("rec/a1", b'{"ts": 1700000000, "values": {"t": 1}}', NOW)
    assert len(out.readings) == 1


def test_accept_missing_ts_policy() -> None:
    p = processor(ValidationPolicy(accept_missing_ts=True))
    out = p.process("plant/s/a1/temp", b"3.5", NOW)
    assert out.readings == [Reading(NOW, "a1", "temp", 3.5, NOW)]
    assert reasons(processor().process("plant/s/a1/temp", b"3.5", NOW)) == ["missing_ts"]


def test_route_cache_is_bounded() -> None:
    p = MessageProcessor(SUBSCRIPTIONS, POLICY, route_cache_size=8)
    for i in range(100):
        p.process(f"plant/s/a{i}/t", b"1", NOW)
    assert len(p._cache) <= 8


def test_decoder_bug_becomes_decoder_error(monkeypatch: pytest.MonkeyPatch) -> None:
    p = processor()

    def boom(
        topic: str, fields: Any, payload: bytes, received_us: int, readings: list[Reading], rejects: list[Any]
    ) -> None:
        raise RuntimeError("bug\nwith newline")

    route = p._routes[0]
    monkeypatch.setattr(p, "_routes", (type(route)(route.topic_filter, route.template, boom), *p._routes[1:]))
    out = p.process("plant/s/a1/temp", b"1", NOW)
    assert reasons(out) == ["decoder_error"] and "\n" not in out.quarantined[0].detail


def test_sparkplug_through_processor() -> None:
    p = processor()
    birth: Any = Payload(timestamp=T0 * 1000, seq=0)
    birth.metrics.add(name="Temp", alias=1, datatype=10, double_value=20.0)
    out = p.process("spBv1.0/g/NBIRTH/edge-1", birth.SerializeToString(), NOW)
    assert [(r.asset, r.sensor, r.value) for r in out.readings] == [("edge-1", "Temp", 20.0)]
    data: Any = Payload(timestamp=T0 * 1000, seq=5)
    data.metrics.add(alias=1, double_value=21.0)
    out = p.process("spBv1.0/g/NDATA/edge-1", data.SerializeToString(), NOW)
    assert [r.value for r in out.readings] == [21.0]
    assert p.seq_gaps == 1


# -- properties: hostile input never escapes -----------------------------------------------------------------
_levels = st.one_of(
    st.sampled_from(["", "..", ".", "a1", "temp", "\x00", "x" * 300, "NBIRTH", "DDATA", "NDATA", "STATE", "+", "#"]),
    st.text(max_size=20),
    st.binary(max_size=20).map(lambda b: b.decode("utf-8", "surrogateescape")),
)
_prefixes = st.sampled_from(["plant/s1", "rec/s1", "batch", "spBv1.0/g", "spBv1.0", "", "other"])
_topics = st.one_of(
    st.builds(lambda p, ls: "/".join([p, *ls]), _prefixes, st.lists(_levels, max_size=5)),
    st.text(max_size=100),
)


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**20), max_value=10**20),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=10),
        st.sampled_from([T0, T0 * 1000, "2023-11-14T22:13:20Z", "temp", "a1"]),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(
                st.sampled_from(["ts", "value", "values", "sensor", "asset", "x", "temp"]), inner, max_size=4
            ),
        ),
        max_leaves=12,
    )


def _sparkplug_payloads() -> st.SearchStrategy[bytes]:
    metric = st.fixed_dictionaries(
        {},
        optional={
            "name": st.sampled_from(["Temp", "Motor/Current", "bdSeq", "a b"]) | st.text(max_size=12),
            "alias": st.integers(0, 5),
            "datatype": st.integers(0, 30),
            "timestamp": st.just(T0 * 1000 + 1) | st.integers(0, 2**64 - 1),
            "int_value": st.integers(0, 2**32 - 1),
            "double_value": st.floats(),
            "boolean_value": st.booleans(),
            "is_null": st.booleans(),
        },
    )

    def build(ts: int | None, seq: int | None, metrics: list[dict[str, Any]]) -> bytes:
        p: Any = Payload()
        if ts is not None:
            p.timestamp = ts
        if seq is not None:
            p.seq = seq
        for spec in metrics:
            m = p.metrics.add()
            for key, value in spec.items():
                setattr(m, key, value)
        return bytes(p.SerializeToString())

    timestamps = st.none() | st.just(T0 * 1000) | st.integers(0, 2**64 - 1)
    return st.builds(build, timestamps, st.none() | st.integers(0, 300), st.lists(metric, max_size=4))


def _plausible_json() -> st.SearchStrategy[Any]:
    """Near-valid documents, so that properties also cover readings that pass (not only rejects)."""
    ts = st.one_of(st.sampled_from([T0, T0 * 1000, T0 * 1_000_000, "2023-11-14T22:13:20Z", T0 + 0.5]), _json_values())
    value = st.one_of(st.floats(), st.integers(), _json_values())
    sensor = st.one_of(st.sampled_from(["temp", "rpm", "a.b-c_d", "..", "a/b", ""]), st.text(max_size=70))
    single = st.fixed_dictionaries({"ts": ts, "value": value}, optional={"sensor": sensor, "asset": st.just("a1")})
    record = st.fixed_dictionaries({"ts": ts, "values": st.dictionaries(sensor, value, max_size=5)})
    return st.one_of(single, record, st.lists(st.one_of(single, record), max_size=5), value)


_payloads = st.one_of(
    st.binary(max_size=300),
    _json_values().map(lambda v: json.dumps(v).encode()),
    _plausible_json().map(lambda v: json.dumps(v).encode()),
    _sparkplug_payloads(),
)


def _check(out: Outcome, tmp_root: Path, topic: str) -> None:
    for q in out.quarantined:
        assert q.reason in REJECT_REASONS
        assert q.reason != "decoder_error", q.detail  # the catch-all is for bugs: none may show up here
        assert len(q.payload) <= POLICY.quarantine_payload_bytes
        assert len(q.topic) <= MAX_TOPIC_CHARS
        q.topic.encode("utf-8")
    for r in out.readings:
        assert is_valid_name(r.asset) and is_valid_name(r.sensor)
        assert isinstance(r.value, float) and isinstance(r.ts_us, int)
        assert tmp_root.resolve() in safe_child(tmp_root, "raw", f"asset={r.asset}", f"sensor={r.sensor}").parents
    if not out.readings and not out.quarantined:
        # only well-formed Sparkplug messages without values (births, deaths, commands) may yield nothing
        assert topic.startswith("spBv1.0/")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(st.tuples(_topics, _payloads), min_size=1, max_size=6))
def test_hostile_messages_never_raise(
    tmp_path_factory: pytest.TempPathFactory, messages: list[tuple[str, bytes]]
) -> None:
    tmp_root = tmp_path_factory.getbasetemp()
    p = processor()
    for topic, payload in messages:
        _check(p.process(topic, payload, NOW), tmp_root, topic)


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(
        ["plant/s1/a1/temp", "rec/s1/a1", "batch/a1", "spBv1.0/g/NBIRTH/e1", "spBv1.0/g/DDATA/e1/d1"]
    ),
    payload=_payloads,
)
def test_every_decoder_on_arbitrary_payloads(
    tmp_path_factory: pytest.TempPathFactory, prefix: str, payload: bytes
) -> None:
    out = processor().process(prefix, payload, NOW)
    _check(out, tmp_path_factory.getbasetemp(), prefix)
