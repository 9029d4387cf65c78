"""Data commands: ``simulate`` and ``replay`` (publish to MQTT) and ``store`` (compact, summary, report).

Long runs show a progress bar with an ETA; everything reads the same validated configuration as the daemons.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from linewatch.core.config import LinewatchConfig
from linewatch.core.lifecycle import StopEvent, install_signal_handlers
from linewatch.ingest.publish import PublishStats
from linewatch.ingest.records import Step
from linewatch.serving.cli_common import (
    ConfigOption,
    broker_problems,
    errors_as_messages,
    load_or_exit,
    make_console,
    storage_problems,
)

console = make_console(stderr=True)


def backfill_start(now: datetime, duration_s: float, speed: float) -> datetime:
    """Where data must start so that, published at ``speed``, no timestamp is ever ahead of the wall clock.

    Ingest quarantines readings from the future, so a run faster than real time is shifted into the past.
    """
    if speed == 0 or math.isinf(speed):
        return now - timedelta(seconds=duration_s)
    if speed <= 1:
        return now
    return now - timedelta(seconds=duration_s * (1 - 1 / speed))


def publish_with_progress(
    cfg: LinewatchConfig,
    steps: Iterator[Step],
    *,
    total_steps: int | None,
    speed: float,
    fmt: Literal["single", "record"],
    topic_prefix: str,
    what: str,
    client_id: str,
) -> PublishStats:
    """Publish steps to the configured broker with a progress bar; Ctrl-C/SIGTERM stop cleanly."""
    from linewatch.ingest.publish import PublishError, publish_stream

    stop = StopEvent()
    restore = install_signal_handlers(stop)
    counted = 0

    def counting(source: Iterator[Step]) -> Iterator[Step]:
        nonlocal counted
        for step in source:
            counted += 1
            yield step

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(what, total=total_steps, rate="")

            def report(stats: PublishStats) -> None:
                progress.update(task, completed=counted, rate=f"{stats.rate:,.0f} msg/s")

            stats = publish_stream(
                counting(steps),
                host=cfg.mqtt.host,
                port=cfg.mqtt.port,
                topic_prefix=topic_prefix,
                fmt=fmt,
                speed=speed,
                stop=stop,
                client_id=client_id,
                username=cfg.mqtt.username,
                password=cfg.mqtt.resolved_password() if cfg.mqtt.username is not None else None,
                tls=cfg.mqtt.tls if cfg.mqtt.tls.enabled else None,
                progress=report,
            )
            progress.update(task, completed=counted)
    except PublishError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from exc
    finally:
        restore()
    state = "stopped early" if stats.stopped else "done"
    console.print(
        f"{state}: {stats.messages:,} messages, {stats.readings:,} readings in {stats.seconds:.1f} s "
        f"({stats.rate:,.0f} msg/s), {stats.acked:,} acknowledged, {stats.skipped} non-finite values skipped"
    )
    return stats


SpeedOption = Annotated[
    float, typer.Option("--speed", help="1 = real time, 60 = a minute per second, 0 = as fast as possible.", min=0)
]


class PublishFormat(StrEnum):
    single = "single"
    record = "record"


FormatOption = Annotated[
    PublishFormat,
    typer.Option("--format", help="'single' (one reading per message) or 'record' (one message per asset step)."),
]
# help text is rich markup: the optional "[/<sensor>]" would otherwise read as a closing tag and crash --help
PrefixOption = Annotated[str, typer.Option("--topic-prefix", help=escape("Topics are <prefix>/<asset>[/<sensor>]."))]


def _fmt(value: PublishFormat) -> Literal["single", "record"]:
    return "single" if value is PublishFormat.single else "record"


def _positive(value: float | None) -> float | None:
    """Option callback: reject before anything starts, not after a banner or a traceback."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter("must be a number greater than 0")
    return value


def _non_negative(value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter("must be a number of at least 0")
    return value


def _new_file(value: Path | None) -> Path | None:
    """A file that the command will create: its folder must exist and it must not be a folder itself."""
    if value is not None:
        if value.is_dir():
            raise typer.BadParameter(f"{value} is a folder")
        if not value.parent.is_dir():
            raise typer.BadParameter(f"folder {value.parent} does not exist")
    return value


def register(app: typer.Typer) -> None:
    """Add the data commands to the main app (kept here so cli.py stays small)."""
    from linewatch.serving import cli_report

    store_app = typer.Typer(help="Inspect and maintain the Parquet store.", no_args_is_help=True)
    app.add_typer(store_app, name="store")
    cli_report.register(store_app)

    @app.command("simulate")
    def simulate(
        config: ConfigOption = None,
        speed: SpeedOption = 1.0,
        duration: Annotated[
            float | None,
            typer.Option("--duration", help="Seconds of plant time (default: run until stopped).", callback=_positive),
        ] = None,
        labels: Annotated[
            Path | None,
            typer.Option("--labels", help="Write the injected faults (ground truth) to this CSV.", callback=_new_file),
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same plant.")] = 0,
        fault_rate: Annotated[
            float, typer.Option("--fault-rate", help="Faults per asset per hour.", callback=_non_negative)
        ] = 0.5,
        fault_free: Annotated[
            float,
            typer.Option(
                "--fault-free", help="Seconds at the start with no faults (training data).", callback=_non_negative
            ),
        ] = 3600.0,
        fmt: FormatOption = PublishFormat.single,
        topic_prefix: PrefixOption = "plant/site1",
    ) -> None:
        """Publish a synthetic plant (pumps, compressor, press) with injected faults to the MQTT broker."""
        from linewatch.ingest.labels import FaultLabel, write_labels
        from linewatch.ingest.simulate import Plant, PlantConfig

        cfg = load_or_exit(config, check=broker_problems)
        if duration is None and speed != 1:
            raise typer.BadParameter("a run faster or slower than real time needs --duration", param_hint="--speed")
        plant_cfg = PlantConfig(seed=seed, fault_rate_per_asset_per_hour=fault_rate, fault_free_s=fault_free)
        plant = Plant(plant_cfg)
        start = backfill_start(datetime.now(UTC).replace(microsecond=0), duration or 0.0, speed)
        begun: list[FaultLabel] = []

        def on_fault(label: FaultLabel) -> None:
            begun.append(label)
            if labels is not None:
                write_labels(labels, begun)

        with errors_as_messages():  # the labels file or a password/TLS file that cannot be used
            if labels is not None:
                write_labels(labels, [])
            total = None if duration is None else math.ceil(duration / plant_cfg.cadence_s) * len(plant_cfg.assets)
            console.print(
                f"simulating {len(plant_cfg.assets)} assets from {start.isoformat()} "
                f"({'until stopped' if duration is None else f'{duration:g} s'}, speed {speed:g}) "
                f"to mqtt://{cfg.mqtt.host}:{cfg.mqtt.port}/{topic_prefix}/...",
                markup=False,
            )
            publish_with_progress(
                cfg,
                plant.iter_steps(start, duration, on_fault=on_fault),
                total_steps=total,
                speed=speed,
                fmt=_fmt(fmt),
                topic_prefix=topic_prefix,
                what="simulate",
                client_id=f"linewatch-simulate-{seed}",
            )
            if labels is not None and duration is not None:
                write_labels(labels, plant.schedule(start, duration))
        if labels is not None:
            console.print(f"fault labels ({len(begun)} faults) written to {labels}")

    @app.command("replay")
    def replay(
        file: Annotated[Path, typer.Argument(help="CSV or Parquet dataset (wide or long), e.g. a SKAB file.")],
        config: ConfigOption = None,
        speed: SpeedOption = 0.0,
        asset: Annotated[str | None, typer.Option("--asset", help="Asset name (default: from the file name).")] = None,
        keep_timestamps: Annotated[
            bool,
            typer.Option("--keep-timestamps", help="Publish the file's own times (old data will be quarantined)."),
        ] = False,
        fmt: FormatOption = PublishFormat.record,
        topic_prefix: PrefixOption = "plant/replay",
    ) -> None:
        """Publish a recorded dataset to MQTT, shifted to end now unless --keep-timestamps."""
        from linewatch.ingest.replay import DatasetError, load_dataset, replay_steps

        cfg = load_or_exit(config, check=broker_problems)
        try:
            dataset = load_dataset(file, asset=asset)
        except DatasetError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(code=2) from exc
        frame = dataset.readings
        for original, renamed in dataset.renames.items():
            console.print(f"renamed column {original!r} -> sensor {renamed!r}")
        if dataset.dropped_values:
            console.print(f"dropped {dataset.dropped_values} non-numeric or non-finite values")
        first, last = frame["ts"].min(), frame["ts"].max()
        assert isinstance(first, datetime) and isinstance(last, datetime)
        if not keep_timestamps:
            span = (last - first).total_seconds()
            shift = backfill_start(datetime.now(UTC), span, speed) - first
            frame = frame.with_columns(frame["ts"] + shift)
            console.print(f"timestamps shifted by {shift} so the replay ends no later than now")
        steps = frame.select("ts", "asset").unique().height
        with errors_as_messages():  # a password or TLS file that cannot be used after all
            publish_with_progress(
                cfg,
                replay_steps(frame),
                total_steps=steps,
                speed=speed,
                fmt=_fmt(fmt),
                topic_prefix=topic_prefix,
                what=f"replay {file.name}",
                client_id="linewatch-replay",
            )

    @store_app.command("compact")
    def store_compact(config: ConfigOption = None) -> None:
        """Merge small files and remove duplicate readings (safe while ingest runs)."""
        from linewatch.ingest.compaction import compact

        cfg = load_or_exit(config, check=storage_problems)
        with errors_as_messages():
            stats = compact(Path(cfg.data_root), min_files=2, older_than_s=0)
        console.print(
            f"compacted {stats.partitions_compacted} of {stats.partitions_seen} partitions: "
            f"{stats.files_in} files -> {stats.files_out}, {stats.duplicates_removed} duplicates removed, "
            f"{stats.partitions_locked} busy, {stats.corrupt_files} corrupt files moved aside ({stats.seconds:.1f} s)"
        )

    @store_app.command("summary")
    def store_summary(config: ConfigOption = None) -> None:
        """Per asset and sensor: readings, time span, value range; quarantine by reason."""
        root = Path(load_or_exit(config, check=storage_problems).data_root)
        with errors_as_messages():
            print_store_summary(root)


def print_store_summary(root: Path) -> None:
    """A table a person can read to get a feel for what is in the store."""
    import polars as pl

    from linewatch.ingest.reader import SkippedFile, scan_readings

    skipped: list[SkippedFile] = []
    if not (root / "raw").exists():
        console.print(f"no readings under {root} yet")
        return
    summary = (
        scan_readings(root, skipped=skipped)
        .group_by("asset", "sensor")
        .agg(
            pl.len().alias("readings"),
            pl.col("ts").min().alias("first"),
            pl.col("ts").max().alias("last"),
            pl.col("value").min().alias("min"),
            pl.col("value").mean().alias("mean"),
            pl.col("value").max().alias("max"),
        )
        .sort("asset", "sensor")
        .collect()
    )
    table = Table(title=f"readings in {root}")
    for column in ("asset", "sensor", "readings", "first", "last", "min", "mean", "max"):
        table.add_column(column, justify="right" if column in ("readings", "min", "mean", "max") else "left")
    for row in summary.iter_rows(named=True):
        table.add_row(
            row["asset"],
            row["sensor"],
            f"{row['readings']:,}",
            f"{row['first']:%Y-%m-%d %H:%M:%S}",
            f"{row['last']:%Y-%m-%d %H:%M:%S}",
            f"{row['min']:.4g}",
            f"{row['mean']:.4g}",
            f"{row['max']:.4g}",
        )
    make_console().print(table)
    quarantine_files = sorted((root / "quarantine").rglob("*.parquet")) if (root / "quarantine").exists() else []
    if quarantine_files:
        reasons = (
            pl.concat([pl.read_parquet(f, columns=["reason"]) for f in quarantine_files])
            .group_by("reason")
            .len()
            .sort("len", descending=True)
        )
        text = ", ".join(f"{r}: {n:,}" for r, n in reasons.iter_rows())
        make_console().print(f"quarantined: {text}")
    else:
        make_console().print("quarantined: nothing")
    if skipped:
        make_console().print(f"[yellow]{len(skipped)} unreadable files skipped[/yellow]")
