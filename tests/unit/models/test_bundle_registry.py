"""Bundles refuse any changed byte; the registry switches champions atomically and keeps the old one on refusal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from linewatch.models.bundle import MANIFEST, SUMS, WEIGHTS, BundleError, read_bundle, write_bundle
from linewatch.models.registry import Registry, RegistryError


def _bundle(path: Path, marker: float = 1.0) -> Path:
    return write_bundle(path, {"asset_group": "g", "metrics": {"x": marker}}, {"w": np.full((3, 2), marker)})


def test_round_trip(tmp_path: Path) -> None:
    manifest, tensors = read_bundle(_bundle(tmp_path / "b"))
    assert manifest["asset_group"] == "g" and manifest["schema_version"] == 1
    np.testing.assert_array_equal(tensors["w"], np.ones((3, 2)))
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted([MANIFEST, WEIGHTS, SUMS])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]


@pytest.mark.parametrize("name", [MANIFEST, WEIGHTS, SUMS])
def test_one_changed_byte_anywhere_is_refused(tmp_path: Path, name: str) -> None:
    bundle = _bundle(tmp_path / "b")
    path = bundle / name
    data = bytearray(path.read_bytes())
    for offset in (0, len(data) // 2, len(data) - 2):
        changed = bytearray(data)
        changed[offset] ^= 0x01
        path.write_bytes(bytes(changed))
        with pytest.raises(BundleError):
            read_bundle(bundle)
    path.write_bytes(bytes(data))
    read_bundle(bundle)  # restored: accepted again


def test_missing_file_and_wrong_schema(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    (bundle / WEIGHTS).unlink()
    with pytest.raises(BundleError, match="missing"):
        read_bundle(bundle)
    with pytest.raises(BundleError):
        read_bundle(tmp_path / "nowhere")


def test_registry_promote_rollback_and_tamper(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    v1 = reg.add("pumps", _bundle(tmp_path / "s1", 1.0), now=t0)
    v2 = reg.add("pumps", _bundle(tmp_path / "s2", 2.0), now=t0 + timedelta(minutes=1))
    assert reg.versions("pumps") == [v1, v2] and reg.champion("pumps") is None
    with pytest.raises(RegistryError, match="no champion"):
        reg.load_champion("pumps")
    reg.promote("pumps", v1)
    reg.promote("pumps", v2)
    assert reg.load_champion("pumps")[0]["metrics"]["x"] == 2.0
    assert reg.rollback("pumps") == v1 and reg.champion("pumps") == v1
    with pytest.raises(RegistryError):
        reg.rollback("pumps")

    # A tampered version cannot be promoted; the champion in service stays as it was.
    v3 = reg.add("pumps", _bundle(tmp_path / "s3", 3.0), now=t0 + timedelta(minutes=2))
    weights = reg.group_dir("pumps") / v3 / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(BundleError, match="checksum"):
        reg.promote("pumps", v3)
    assert reg.champion("pumps") == v1
    assert reg.load_champion("pumps")[0]["metrics"]["x"] == 1.0

    # A champion changed after promotion is refused at load, with the path in the message.
    manifest = reg.group_dir("pumps") / v1 / MANIFEST
    doc = json.loads(manifest.read_text())
    doc["metrics"]["x"] = 9.0
    manifest.write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=v1):
        reg.load_champion("pumps")


def test_registry_rejects_hostile_group_names(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for name in ("..", "../x", "a/b", ""):
        with pytest.raises(RegistryError):
            reg.group_dir(name)


def test_prune_keeps_champion(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "m")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    versions = [reg.add("g", _bundle(tmp_path / f"s{i}", float(i)), now=t0 + timedelta(minutes=i)) for i in range(5)]
    reg.promote("g", versions[0])
    removed = reg.prune("g", keep=2)
    assert versions[0] in reg.versions("g")
    assert set(removed) == set(versions[1:3])


def test_info_names_each_versions_clock(tmp_path: Path) -> None:
    """``models list`` shows the zone a version reads the time of day in: UTC for a bundle saved before the
    setting, and ``?`` (never the raw text) for a zone the database does not know."""
    reg = Registry(tmp_path / "models")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    specs = [None, {"timezone": "Asia/Tokyo"}, {"timezone": "[bold]Mars/Olympus"}, {"timezone": 7}, {}]
    for k, spec in enumerate(specs):
        manifest: dict[str, object] = {"asset_group": "g", "metrics": {}}
        if spec is not None:
            manifest["preprocessing"] = {"spec": spec}
        reg.add("g", write_bundle(tmp_path / f"s{k}", manifest, {"w": np.ones(1)}), now=t0 + timedelta(minutes=k))
    assert [info.clock for info in reg.info("g")] == ["UTC", "Asia/Tokyo", "?", "?", "UTC"]
