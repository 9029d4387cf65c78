"""JSON decoders: literal cases for every shape and every reject reason, and the registry."""

from __future__ import annotations

import json
import typing

import pytest

from linewatch.core.config import DecoderName
from linewatch.ingest.decoders import DECODERS, REJECT_REASONS, DecoderOptions, make_decoder
from linewatch.ingest.records import Reading, Reject

T0 = 1_700_000_000
T0_US = T0 * 1_000_000
RX = T0_US + 1


def run(
    name: str, payload: object, fields: dict[str, str] | None = None, *, accept_missing_ts: bool = False
) -> tuple[list[Reading], list[Reject]]:
    decoder = make_decoder(name, DecoderOptions(accept_missing_ts=accept_missing_ts))
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    readings: list[Reading] = []
    rejects: list[Reject] = []
    decoder("t", fields if fields is not None else {"asset": "a1", "sensor": "temp"}, raw, RX, readings, rejects)
    assert {r.reason for r in rejects} <= REJECT_REASONS
    return readings, rejects


def reasons(rejects: list[Reject]) -> list[str]:
    return [r.reason for r in rejects]


def test_registry_keys_equal_config_literal() -> None:
    assert set(DECODERS) == set(typing.get_args(DecoderName))


def test_unknown_decoder() -> None:
    with pytest.raises(KeyError, match="known"):
        make_decoder("xml")


def test_reason_codes_are_snake_case() -> None:
    assert all(r.replace("_", "").isalpha() and r.islower() for r in REJECT_REASONS)


# -- json_single ---------------------------------------------------------------------------------------------
def test_single() -> None:
    readings, rejects = run("json_single", {"ts": T0, "value": 21.5, "unit": "C"})
    assert readings == [Reading(T0_US, "a1", "temp", 21.5, RX)] and rejects == []


def test_single_int_value_and_iso_ts() -> None:
    readings, _ = run("json_single", {"ts": "2023-11-14T22:13:20Z", "value": 3})
    assert readings == [Reading(T0_US, "a1", "temp", 3.0, RX)]
    assert type(readings[0].value) is float


def test_single_bare_number() -> None:
    assert reasons(run("json_single", b"21.5")[1]) == ["missing_ts"]
    readings, rejects = run("json_single", b"21.5", accept_missing_ts=True)
    assert readings == [Reading(RX, "a1", "temp", 21.5, RX)] and rejects == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe\x00", "bad_json"),
        (b"", "bad_json"),
        (b"[" * 100_000, "bad_json"),
        (b"1" * 5000, "bad_json"),  # over Python's int-digit limit
        (b'"text"', "bad_shape"),
        (b"[1, 2]", "bad_shape"),
        (b"true", "bad_shape"),
        ({"ts": T0}, "bad_shape"),
        ({"ts": T0, "value": True}, "bad_value"),
        ({"ts": T0, "value": "21.5"}, "bad_value"),
        ({"ts": T0, "value": None}, "bad_value"),
        ({"ts": T0, "value": [1]}, "bad_value"),
        (b'{"ts": 1700000000, "value": NaN}', "non_finite"),
        (b'{"ts": 1700000000, "value": Infinity}', "non_finite"),
        (b'{"ts": 1700000000, "value": 1e999}', "non_finite"),
        (b'{"ts": 1700000000, "value": 1' + b"0" * 400 + b"}", "non_finite"),
        ({"value": 1.0}, "missing_ts"),
        ({"ts": None, "value": 1.0}, "missing_ts"),
        ({"ts": True, "value": 1.0}, "bad_ts"),
        ({"ts": "soon", "value": 1.0}, "bad_ts"),
        ({"ts": -5, "value": 1.0}, "bad_ts"),
    ],
)
def test_single_rejects(payload: object, reason: str) -> None:
    readings, rejects = run("json_single", payload)
    assert readings == []
    assert reasons(rejects) == [reason]


def test_single_without_sensor_field() -> None:
    assert reasons(run("json_single", {"ts": T0, "value": 1}, {"asset": "a1"})[1]) == ["bad_shape"]


# -- json_record ---------------------------------------------------------------------------------------------
def test_record() -> None:
    readings, rejects = run("json_record", {"ts": T0 * 1000, "values": {"temp": 1.5, "rpm": 1200}}, {"asset": "a1"})
    assert rejects == []
    assert readings == [Reading(T0_US, "a1", "temp", 1.5, RX), Reading(T0_US, "a1", "rpm", 1200.0, RX)]


def test_record_partly_good() -> None:
    payload = b'{"ts": 1700000000, "values": {"ok": 1, "flag": true, "nan": NaN, "../x": 2, "s": "x"}}'
    readings, rejects = run("json_record", payload, {"asset": "a1"})
    assert [r.sensor for r in readings] == ["ok"]
    assert reasons(rejects) == ["bad_value", "non_finite", "bad_name", "bad_value"]


def test_record_asset_key() -> None:
    ok = {"ts": T0, "asset": "a1", "values": {"temp": 1}}
    assert run("json_record", ok, {"asset": "a1"})[1] == []
    readings, rejects = run("json_record", {**ok, "asset": "a2"}, {"asset": "a1"})
    assert readings == [] and reasons(rejects) == ["asset_mismatch"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([], "bad_shape"),
        ({"ts": T0}, "bad_shape"),
        ({"ts": T0, "values": {}}, "bad_shape"),
        ({"ts": T0, "values": [1, 2]}, "bad_shape"),
        ({"values": {"temp": 1}}, "missing_ts"),
        ({"ts": "later", "values": {"temp": 1}}, "bad_ts"),
        (b"{", "bad_json"),
    ],
)
def test_record_rejects(payload: object, reason: str) -> None:
    readings, rejects = run("json_record", payload, {"asset": "a1"})
    assert readings == [] and reasons(rejects) == [reason]


def test_record_missing_ts_accepted() -> None:
    readings, _ = run("json_record", {"values": {"temp": 1}}, {"asset": "a1"}, accept_missing_ts=True)
    assert readings == [Reading(RX, "a1", "temp", 1.0, RX)]


# -- json_batch ----------------------------------------------------------------------------------------------
def test_batch_mixed() -> None:
    payload = [
        {"ts": T0, "sensor": "temp", "value": 1},
        {"ts": T0 + 1, "values": {"rpm": 2, "amps": 3}},
        {"ts": T0 + 2, "sensor": "temp", "value": 4, "asset": "a1"},
    ]
    readings, rejects = run("json_batch", payload, {"asset": "a1"})
    assert rejects == []
    assert [(r.ts_us, r.sensor, r.value) for r in readings] == [
        (T0_US, "temp", 1.0),
        (T0_US + 1_000_000, "rpm", 2.0),
        (T0_US + 1_000_000, "amps", 3.0),
        (T0_US + 2_000_000, "temp", 4.0),
    ]


def test_batch_topic_sensor_and_item_override() -> None:
    payload = [{"ts": T0, "value": 1}, {"ts": T0, "value": 2, "sensor": "other"}]
    readings, _ = run("json_batch", payload, {"asset": "a1", "sensor": "temp"})
    assert [r.sensor for r in readings] == ["temp", "other"]


def test_batch_single_object_is_batch_of_one() -> None:
    readings, _ = run("json_batch", {"ts": T0, "sensor": "temp", "value": 1}, {"asset": "a1"})
    assert len(readings) == 1


def test_batch_per_item_rejects() -> None:
    payload = [
        {"ts": T0, "sensor": "temp", "value": 1},
        5,
        {"ts": T0, "value": 1},
        {"ts": T0, "sensor": "../etc", "value": 1},
        {"ts": T0, "sensor": 7, "value": 1},
        {"ts": T0, "sensor": "x", "value": 1, "asset": "a2"},
        {"ts": T0, "values": {"a": 1}, "asset": "a2"},
        {"sensor": "x", "value": 1},
        {"ts": T0, "sensor": "x", "value": False},
    ]
    readings, rejects = run("json_batch", payload, {"asset": "a1"})
    assert len(readings) == 1
    assert reasons(rejects) == [
        "bad_shape",
        "bad_shape",
        "bad_name",
        "bad_name",
        "asset_mismatch",
        "asset_mismatch",
        "missing_ts",
        "bad_value",
    ]


@pytest.mark.parametrize(("payload", "reason"), [([], "bad_shape"), (b'"x"', "bad_shape"), (b"[", "bad_json")])
def test_batch_whole_rejects(payload: object, reason: str) -> None:
    readings, rejects = run("json_batch", payload, {"asset": "a1"})
    assert readings == [] and reasons(rejects) == [reason]


def test_utf16_json_is_accepted() -> None:
    payload = json.dumps({"ts": T0, "value": 1}).encode("utf-16")
    assert len(run("json_single", payload)[0]) == 1
