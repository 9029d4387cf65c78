"""Sparkplug B: births, aliases, deaths, sequence gaps, datatypes, built with the module's protobuf classes."""

from __future__ import annotations

from typing import Any

import pytest

from linewatch.ingest.decoders import REJECT_REASONS
from linewatch.ingest.records import Reading, Reject
from linewatch.ingest.sparkplug import (
    BOOLEAN,
    DOUBLE,
    FLOAT,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    UINT32,
    UINT64,
    Payload,
    SparkplugDecoder,
    sensor_name,
)

MS = 1_700_000_000_000
RX = MS * 1000 + 5


def payload(metrics: list[dict[str, Any]], seq: int | None = None, ts: int | None = MS) -> bytes:
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


def feed(dec: SparkplugDecoder, topic: str, data: bytes) -> tuple[list[Reading], list[Reject]]:
    readings: list[Reading] = []
    rejects: list[Reject] = []
    dec(topic, {}, data, RX, readings, rejects)
    assert {r.reason for r in rejects} <= REJECT_REASONS
    return readings, rejects


NBIRTH = "spBv1.0/plant1/NBIRTH/edge1"
DBIRTH = "spBv1.0/plant1/DBIRTH/edge1/press-7"
DDATA = "spBv1.0/plant1/DDATA/edge1/press-7"
NDATA = "spBv1.0/plant1/NDATA/edge1"
NDEATH = "spBv1.0/plant1/NDEATH/edge1"


def birth_node(dec: SparkplugDecoder, seq: int = 0, bd_seq: int = 3) -> None:
    metrics = [
        {"name": "bdSeq", "datatype": INT64, "long_value": bd_seq},
        {"name": "Node Control/Rebirth", "datatype": BOOLEAN, "boolean_value": False},
        {"name": "Uptime", "alias": 1, "datatype": UINT64, "long_value": 10},
    ]
    readings, rejects = feed(dec, NBIRTH, payload(metrics, seq=seq))
    assert rejects == [] and [r.sensor for r in readings] == ["Uptime"]


def birth_device(dec: SparkplugDecoder, seq: int = 1) -> list[Reading]:
    metrics = [
        {"name": "Motor/Current", "alias": 10, "datatype": FLOAT, "float_value": 1.5},
        {"name": "Oil Temp", "alias": 11, "datatype": DOUBLE, "double_value": 40.25},
        {"name": "Running", "alias": 12, "datatype": BOOLEAN, "boolean_value": True},
        {"name": "Delta", "alias": 13, "datatype": INT32, "int_value": (-5) & 0xFFFFFFFF},
        {"name": "Mode", "alias": 14, "datatype": STRING, "string_value": "auto"},
    ]
    readings, rejects = feed(dec, DBIRTH, payload(metrics, seq=seq))
    assert rejects == []
    return readings


def test_sensor_name_mapping() -> None:
    assert sensor_name("Motor/Current") == "Motor_Current"
    assert sensor_name("Oil Temp/ C") == "Oil_Temp__C"


def test_birth_then_alias_only_data() -> None:
    dec = SparkplugDecoder()
    birth_node(dec)
    born = birth_device(dec)
    assert [(r.asset, r.sensor, r.value) for r in born] == [
        ("press-7", "Motor_Current", 1.5),
        ("press-7", "Oil_Temp", 40.25),
        ("press-7", "Running", 1.0),
        ("press-7", "Delta", -5.0),
    ]
    assert dec.skipped_metrics == 3  # bdSeq, Node Control/Rebirth, Mode (string)
    data = payload(
        [
            {"alias": 10, "float_value": 2.5, "timestamp": MS + 7},
            {"alias": 11, "double_value": 41.0},
            {"alias": 12, "boolean_value": False},
            {"alias": 13, "int_value": 7},
            {"alias": 14, "string_value": "manual"},
        ],
        seq=2,
        ts=MS + 100,
    )
    readings, rejects = feed(dec, DDATA, data)
    assert rejects == []
    assert readings == [
        Reading((MS + 7) * 1000, "press-7", "Motor_Current", 2.5, RX),
        Reading((MS + 100) * 1000, "press-7", "Oil_Temp", 41.0, RX),
        Reading((MS + 100) * 1000, "press-7", "Running", 0.0, RX),
        Reading((MS + 100) * 1000, "press-7", "Delta", 7.0, RX),
    ]
    assert dec.seq_gaps == 0


def test_node_data_uses_edge_node_as_asset() -> None:
    dec = SparkplugDecoder()
    birth_node(dec)
    readings, rejects = feed(dec, NDATA, payload([{"alias": 1, "long_value": 11}], seq=1))
    assert rejects == [] and [(r.asset, r.sensor, r.value) for r in readings] == [("edge1", "Uptime", 11.0)]


def test_data_before_birth() -> None:
    dec = SparkplugDecoder()
    readings, rejects = feed(dec, DDATA, payload([{"alias": 10, "float_value": 1.0}], seq=5))
    assert readings == [] and [r.reason for r in rejects] == ["sparkplug_no_birth"]
    assert "DBIRTH" in rejects[0].detail


def test_seq_gap_counted_and_wraps() -> None:
    dec = SparkplugDecoder()
    birth_node(dec, seq=254)
    birth_device(dec, seq=255)
    feed(dec, DDATA, payload([{"alias": 10, "float_value": 1.0}], seq=0))  # wrap: no gap
    assert dec.seq_gaps == 0
    feed(dec, DDATA, payload([{"alias": 10, "float_value": 1.0}], seq=3))  # 1 and 2 lost
    assert dec.seq_gaps == 1
    feed(dec, DDATA, payload([{"alias": 10, "float_value": 1.0}], seq=4))
    assert dec.seq_gaps == 1


def test_ndeath_clears_until_rebirth() -> None:
    dec = SparkplugDecoder()
    birth_node(dec, bd_seq=3)
    birth_device(dec)
    assert dec.births() == 2
    assert feed(dec, NDEATH, payload([{"name": "bdSeq", "datatype": INT64, "long_value": 3}], ts=None)) == ([], [])
    assert dec.births() == 0
    data = payload([{"alias": 10, "float_value": 1.0}], seq=2)
    assert [r.reason for r in feed(dec, DDATA, data)[1]] == ["sparkplug_no_birth"]
    assert [r.reason for r in feed(dec, NDATA, data)[1]] == ["sparkplug_no_birth"]
    birth_node(dec, bd_seq=4)
    assert [r.reason for r in feed(dec, DDATA, data)[1]] == ["sparkplug_no_birth"]  # device not reborn yet
    birth_device(dec)
    readings, rejects = feed(dec, DDATA, data)
    assert rejects == [] and len(readings) == 1


def test_stale_ndeath_is_ignored() -> None:
    dec = SparkplugDecoder()
    birth_node(dec, bd_seq=4)
    feed(dec, NDEATH, payload([{"name": "bdSeq", "datatype": INT64, "long_value": 3}], ts=None))
    assert dec.births() == 1


def test_ddeath_clears_device_only() -> None:
    dec = SparkplugDecoder()
    birth_node(dec)
    birth_device(dec)
    assert feed(dec, "spBv1.0/plant1/DDEATH/edge1/press-7", payload([], seq=2)) == ([], [])
    assert [r.reason for r in feed(dec, DDATA, payload([{"alias": 10, "float_value": 1.0}], seq=3))[1]] == [
        "sparkplug_no_birth"
    ]
    assert feed(dec, NDATA, payload([{"alias": 1, "long_value": 1}], seq=4))[1] == []


@pytest.mark.parametrize(
    ("datatype", "field", "raw", "expected"),
    [
        (INT8, "int_value", 0xFFFFFFFB, -5.0),
        (INT8, "int_value", 0xFB, -5.0),
        (INT16, "int_value", 0xFFFF8000, -32768.0),
        (INT32, "int_value", 0x7FFFFFFF, 2147483647.0),
        (INT64, "long_value", 2**64 - 1, -1.0),
        (UINT32, "int_value", 0xFFFFFFFF, 4294967295.0),
        (UINT64, "long_value", 2**63, float(2**63)),
        (FLOAT, "float_value", 0.5, 0.5),
        (DOUBLE, "double_value", -1e300, -1e300),
        (BOOLEAN, "boolean_value", True, 1.0),
    ],
)
def test_datatypes(datatype: int, field: str, raw: object, expected: float) -> None:
    dec = SparkplugDecoder()
    readings, rejects = feed(dec, NBIRTH, payload([{"name": "m", "datatype": datatype, field: raw}]))
    assert rejects == [] and [r.value for r in readings] == [expected]


def test_skipped_and_rejected_metrics() -> None:
    dec = SparkplugDecoder()
    metrics: list[dict[str, Any]] = [
        {"name": "s", "datatype": STRING, "string_value": "x"},
        {"name": "b", "datatype": 17, "bytes_value": b"\x00"},
        {"name": "dt", "datatype": 13, "long_value": MS},
        {"name": "n", "datatype": DOUBLE, "is_null": True},
        {"name": "nan", "datatype": DOUBLE, "double_value": float("nan")},
        {"name": "bad name!", "datatype": DOUBLE, "double_value": 1.0},
        {"alias": 99, "double_value": 1.0},
        {"datatype": DOUBLE, "double_value": 1.0},
    ]
    readings, rejects = feed(dec, NBIRTH, payload(metrics))
    assert readings == []
    assert [r.reason for r in rejects] == ["non_finite", "bad_name", "sparkplug_unknown_alias", "bad_name"]
    assert dec.skipped_metrics == 4


def test_timestamps() -> None:
    dec = SparkplugDecoder()
    assert [r.reason for r in feed(dec, NBIRTH, payload([{"name": "m", "double_value": 1.0}], ts=None))[1]] == [
        "missing_ts"
    ]
    lenient = SparkplugDecoder(accept_missing_ts=True)
    readings, _ = feed(lenient, NBIRTH, payload([{"name": "m", "double_value": 1.0}], ts=None))
    assert readings[0].ts_us == RX
    huge = payload([{"name": "m", "double_value": 1.0, "timestamp": 2**64 - 1}])
    assert [r.reason for r in feed(dec, NBIRTH, huge)[1]] == ["bad_ts"]


@pytest.mark.parametrize(
    "topic",
    [
        "spBv1.0/g/NDATA",
        "spBv1.0/g/DDATA/edge",
        "spBv1.0/g/NDATA/edge/extra",
        "spBv1.0/g/XDATA/edge",
        "spBv1.0//NDATA/edge",
        "spAv1.0/g/NDATA/edge",
        "spBv1.0/g/DDATA/edge/dev/more",
    ],
)
def test_bad_topics(topic: str) -> None:
    assert [r.reason for r in feed(SparkplugDecoder(), topic, payload([]))[1]] == ["bad_topic"]


@pytest.mark.parametrize("topic", ["spBv1.0/STATE/host1", "spBv1.0/g/NCMD/edge", "spBv1.0/g/DCMD/edge/dev"])
def test_commands_and_state_ignored(topic: str) -> None:
    dec = SparkplugDecoder()
    assert feed(dec, topic, b"\xff garbage") == ([], [])
    assert dec.ignored_messages == 1


def test_bad_asset_names() -> None:
    dec = SparkplugDecoder()
    feed(dec, "spBv1.0/g/NBIRTH/bad..node", payload([]))  # a birth without values is fine
    readings, rejects = feed(dec, "spBv1.0/g/NBIRTH/bad..node", payload([{"name": "m", "double_value": 1.0}]))
    assert readings == [] and [r.reason for r in rejects] == ["bad_name"]


def test_bad_protobuf() -> None:
    assert [r.reason for r in feed(SparkplugDecoder(), NBIRTH, b"\xff\xff\xff")[1]] == ["bad_protobuf"]


def test_state_is_bounded() -> None:
    dec = SparkplugDecoder(max_births=2)
    feed(dec, "spBv1.0/g/NBIRTH/e1", payload([]))
    feed(dec, "spBv1.0/g/NBIRTH/e2", payload([]))
    assert [r.reason for r in feed(dec, "spBv1.0/g/NBIRTH/e3", payload([]))[1]] == ["sparkplug_state_full"]
    assert feed(dec, "spBv1.0/g/NBIRTH/e1", payload([]))[1] == []  # rebirth of a known node still works
