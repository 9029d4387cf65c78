"""``linewatch store report``: per asset group, a Markdown report with plots of the store's recent readings.

See :mod:`linewatch.models.datareport` for what it shows and why. This module only finds the data (the last
``--hours`` of each group's readings, ending at its newest reading, so a replayed or stopped plant still has a
report), the model in service and the period's quarantine, and shows progress with an ETA per asset.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from linewatch.core.config import LinewatchConfig
from linewatch.serving.cli_common import ConfigOption, load_or_exit, make_console, storage_problems

if TYPE_CHECKING:
    import polars as pl

    from linewatch.core.config_sections import AssetGroupConfig
    from linewatch.models.datareport import ModelView
    from linewatch.models.model import Model
    from linewatch.models.registry import Registry

console = make_console(stderr=True)


def group_assets(cfg: LinewatchConfig, available: list[str]) -> dict[str, list[str]]:
    """Assets per asset group, as serving assigns them (:meth:`ModelsConfig.group_of`)."""
    out: dict[str, list[str]] = {g.name: [] for g in cfg.models.asset_groups}
    for asset in available:
        if (group := cfg.models.group_of(asset)) is not None:
            out[group.name].append(asset)
    return out


def newest_reading(root: Path, assets: list[str]) -> datetime | None:
    """The newest reading of ``assets``, reading only each asset's newest day partition."""
    import polars as pl

    from linewatch.ingest.reader import read_files
    from linewatch.ingest.store import list_data_files, list_partitions

    newest: datetime | None = None
    for asset in assets:
        partitions = list_partitions(root, asset)
        for _, partition in reversed(partitions):  # an empty newest day (all files unreadable): try the one before
            frame = read_files(list_data_files(partition))
            if frame.height:
                last = frame.select(pl.col("ts").max()).item()
                newest = last if newest is None or last > newest else newest
                break
    return newest


def quarantined_between(root: Path, start: datetime, end: datetime) -> dict[str, int]:
    """Quarantined messages received in ``[start, end)`` by reason (the whole store: a bad message has no asset)."""
    import polars as pl

    from linewatch.ingest.store import list_data_files, partitions_in

    base = root / "quarantine"
    first = start.date() - timedelta(days=1)  # a file lives in the partition of its batch's first record
    files = [f for _, p in partitions_in(base, first, end.date()) for f in list_data_files(p)]
    counts: dict[str, int] = {}
    for path in files:
        try:
            frame = pl.read_parquet(path, columns=["received_at", "reason"])
        except (OSError, pl.exceptions.PolarsError) as exc:  # a corrupt file is reported, not fatal
            console.print(f"[yellow]skipped unreadable quarantine file {path.name}: {exc}[/yellow]")
            continue
        inside = frame.filter((pl.col("received_at") >= start) & (pl.col("received_at") < end))
        for reason, n in inside.group_by("reason").len().iter_rows():
            counts[str(reason)] = counts.get(str(reason), 0) + int(n)
    return counts


def write_store_reports(
    cfg: LinewatchConfig, groups: list[AssetGroupConfig], hours: float, folder: Path, *, plots: bool = True
) -> list[Path]:
    """One report per group that has readings (``folder/<group>/report.md``); returns their paths."""
    from linewatch.ingest.reader import SkippedFile, list_assets, scan_readings
    from linewatch.models.datareport import MAX_SCORED_WINDOWS, asset_view, write_report
    from linewatch.models.registry import Registry

    root = Path(cfg.data_root)
    members = group_assets(cfg, list_assets(root))
    registry = Registry(root / "models")
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    written: list[Path] = []
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("store report", total=sum(len(members[g.name]) for g in groups))
        for g in groups:
            assets = members[g.name]
            end = newest_reading(root, assets) if assets else None
            if end is None:
                console.print(f"asset group {g.name}: no readings")
                continue
            end += timedelta(microseconds=1)  # the newest reading itself is in the period
            start = end - timedelta(hours=hours)
            model, label = _champion(registry, g)
            trained = {} if model is None else training_ranges(model)
            stride = max(1, math.ceil(hours * 3600 / g.cadence_s / MAX_SCORED_WINDOWS))
            views, rows = [], 0
            skipped: list[SkippedFile] = []
            for asset in assets:  # one asset's readings in memory at a time; a view keeps only what it draws
                progress.update(task, description=f"{g.name}: {asset}")
                readings = scan_readings(root, [asset], start, end, skipped=skipped).collect()
                rows += readings.height
                view = asset_view(readings, asset, g.cadence_s, start, end, trained)
                if model is not None and readings.height:
                    view = replace(view, model_view=_model_view(model, readings, start, end, stride))
                views.append(view)
                progress.advance(task)
            quarantined = quarantined_between(root, start, end)
            path = write_report(
                folder / g.name, g.name, start, end, views, model=label, quarantined=quarantined, plots=plots
            )
            written.append(path)
            if skipped:  # the reader logged each; the person running the report should see it too
                console.print(f"[yellow]asset group {g.name}: {len(skipped)} unreadable store files skipped[/yellow]")
            console.print(f"asset group {g.name}: {len(assets)} assets, {rows:,} readings -> {path}")
    return written


def register(store_app: typer.Typer) -> None:
    @store_app.command("report")
    def store_report(
        config: ConfigOption = None,
        group: Annotated[
            str | None, typer.Option("--asset-group", help="Only this asset group (default: every group).")
        ] = None,
        hours: Annotated[
            float, typer.Option("--hours", help="Hours of readings, ending at the group's newest reading.", min=0.01)
        ] = 168.0,
        out: Annotated[
            Path | None,
            typer.Option("--out", help="Folder for the reports (default: <data>/reports/store-<UTC time>)."),
        ] = None,
        plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw the PNG plots.")] = True,
    ) -> None:
        """Data quality and plots of each asset's recent readings, against the model's training range."""
        from linewatch.ingest.reader import list_assets

        cfg = load_or_exit(config, check=storage_problems)
        root = Path(cfg.data_root)
        groups = [g for g in cfg.models.asset_groups if group is None or g.name == group]
        if not groups:
            known = ", ".join(g.name for g in cfg.models.asset_groups)
            console.print(f"[red]error:[/red] no asset group {group!r} (configured: {known})")
            raise typer.Exit(code=2)
        if not list_assets(root):
            console.print(f"no readings under {root} yet")
            raise typer.Exit(code=1)
        folder = out or root / "reports" / f"store-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        if not write_store_reports(cfg, groups, hours, folder, plots=plots):
            raise typer.Exit(code=1)


def _champion(registry: Registry, group: AssetGroupConfig) -> tuple[Model | None, str | None]:
    """The group's model in service and its name (``group/version``); None, None without one."""
    from linewatch.models.model import Model
    from linewatch.models.registry import RegistryError

    try:
        manifest, tensors, version = registry.load_champion(group.name)
        return Model.from_bundle(manifest, tensors, version), f"{group.name}/{version}"
    except (RegistryError, ValueError, OSError, KeyError) as exc:
        console.print(f"asset group {group.name}: no model in service ({exc})")
        return None, None


def training_ranges(model: Model) -> dict[str, tuple[float, float]]:
    """Each sensor's 0.1-99.9 % range of the readings the model was trained on (from its bundle)."""
    stats = model.preprocessor.stats
    return {s: (float(stats.p001[i]), float(stats.p999[i])) for i, s in enumerate(model.sensors)}


def _model_view(model: Model, readings: pl.DataFrame, start: datetime, end: datetime, stride: int) -> ModelView:
    """Score one asset's period with the model in service, as serving would (its own preprocessing)."""
    from linewatch.models.datareport import epoch_us, model_view
    from linewatch.models.simeval import score_asset
    from linewatch.models.windows import MissingSensorsError

    start_us, end_us = epoch_us(start), epoch_us(end)
    try:
        scored = score_asset(model, readings.select("ts", "sensor", "value"), stride)
    except MissingSensorsError as exc:
        return model_view(None, start_us, end_us, stride, note=f"the model needs {', '.join(exc.missing)}")
    except ValueError as exc:  # e.g. too little data for one window
        return model_view(None, start_us, end_us, stride, note=str(exc))
    return model_view(scored, start_us, end_us, stride)
