"""`linewatch store report` on a real Parquet store with a real trained model (no broker needed)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from linewatch.core.config import AssetGroupConfig
from linewatch.ingest.records import QuarantineRecord, Reading
from linewatch.ingest.simulate import AssetSpec, Plant, PlantConfig
from linewatch.ingest.store import ParquetStore
from linewatch.models.registry import Registry
from linewatch.models.train import train_group
from linewatch.serving.cli import app

START = datetime(2026, 11, 2, tzinfo=UTC)
CONFIG = """home: {home}
models:
  asset_groups:
    - name: pumps
      assets: ["pump-*"]
    - name: presses
      assets: ["press-*"]
"""


def _write(store: ParquetStore, frame: pl.DataFrame) -> None:
    us = frame["ts"].dt.epoch("us").to_list()
    rows = zip(us, frame["asset"], frame["sensor"], frame["value"], strict=True)
    store.write_readings([Reading(t, a, s, v, t) for t, a, s, v in rows])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two pumps: 3 h to train the group's model on, then an hour in which pump-02's flow reads 3x."""
    home = tmp_path_factory.mktemp("report")
    assets = (AssetSpec("pump-01", "pump"), AssetSpec("pump-02", "pump"))
    frame, _ = Plant(PlantConfig(assets=assets, seed=3, fault_rate_per_asset_per_hour=0.0)).generate(START, 4 * 3600)
    split = START + timedelta(hours=3)
    later = frame.filter(pl.col("ts") >= split).with_columns(
        pl.when((pl.col("asset") == "pump-02") & (pl.col("sensor") == "flow"))
        .then(pl.col("value") * 3)
        .otherwise(pl.col("value"))
        .alias("value")
    )
    store = ParquetStore(home / "data", "test")
    _write(store, frame.filter(pl.col("ts") < split))
    train_group(home / "data", AssetGroupConfig(name="pumps", assets=["pump-*"]), Registry(home / "data" / "models"))
    _write(store, later)
    received = int((split + timedelta(minutes=5)).timestamp() * 1e6)
    store.write_quarantine([QuarantineRecord(received, "plant/x", b"{", "bad_json", "truncated")] * 3)
    (home / "lw.yaml").write_text(CONFIG.format(home=home))
    return home


def test_report_per_group_against_the_model_in_service(site: Path) -> None:
    out = site / "reports"
    res = CliRunner().invoke(
        app, ["store", "report", "--config", str(site / "lw.yaml"), "--hours", "1", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "asset group presses: no readings" in res.output
    text = (out / "pumps" / "report.md").read_text()
    assert "Readings from 2026-11-02 02:59:59 to 2026-11-02 03:59:59 UTC." in text
    assert "Model in service: pumps/" in text
    assert "Quarantined in the period (whole store, by reason): bad_json 3." in text
    for asset in ("pump-01", "pump-02"):
        assert f"## {asset}" in text and (out / "pumps" / f"{asset}.png").stat().st_size > 10_000

    def outside(asset: str, sensor: str) -> float:
        section = text.split(f"## {asset}")[1]
        row = next(line for line in section.splitlines() if line.startswith(f"| {sensor} |"))
        return float(row.rstrip(" |").rsplit("|", 1)[1].strip().rstrip("%")) / 100

    assert outside("pump-02", "flow") > 0.9  # 3x its training range: the report says so
    assert outside("pump-01", "flow") < 0.05

    def verdict(asset: str) -> tuple[float, str]:
        line = next(x for x in text.split(f"## {asset}")[1].splitlines() if x.startswith("Model's view ("))
        share = float(line.split("threshold in ")[1].split("%")[0]) / 100
        return share, line.split("blamed most when over: ")[1] if "blamed most" in line else ""

    alarmed, blamed = verdict("pump-02")
    assert alarmed > 0.5 and blamed.startswith("flow (")  # the model sees it too, and points at the flow
    assert verdict("pump-01")[0] < 0.05
    assert not (out / "presses").exists()


def test_report_refuses_an_unknown_group_and_an_empty_store(site: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["store", "report", "--config", str(site / "lw.yaml"), "--asset-group", "fans"])
    assert res.exit_code == 2 and "no asset group 'fans' (configured: pumps, presses)" in res.output
    empty = tmp_path / "lw.yaml"
    empty.write_text(CONFIG.format(home=tmp_path))
    res = CliRunner().invoke(app, ["store", "report", "--config", str(empty)])
    assert res.exit_code == 1 and "no readings under" in res.output


def test_a_corrupt_store_file_is_skipped_and_said(site: Path, tmp_path: Path) -> None:
    shutil.copytree(site / "data", tmp_path / "data")
    (tmp_path / "lw.yaml").write_text(CONFIG.format(home=tmp_path))
    day = next((tmp_path / "data" / "raw" / "asset=pump-01").iterdir())
    (day / "zz-damaged.parquet").write_bytes(b"PAR1 not really parquet")
    res = CliRunner().invoke(
        app, ["store", "report", "--config", str(tmp_path / "lw.yaml"), "--hours", "1", "--no-plots"]
    )
    assert res.exit_code == 0, res.output
    assert "asset group pumps: 1 unreadable store files skipped" in res.output
    (report,) = (tmp_path / "data" / "reports").glob("store-*/pumps/report.md")
    assert "## pump-01" in report.read_text() and not list(report.parent.glob("*.png"))
