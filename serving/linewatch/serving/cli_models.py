"""Model commands: ``train`` and ``models list|promote|rollback``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from linewatch.core.config import LinewatchConfig

if TYPE_CHECKING:
    from linewatch.models.registry import Registry
from linewatch.serving.cli_common import (
    ConfigOption,
    describe_error,
    errors_as_messages,
    load_or_exit,
    make_console,
    storage_problems,
)

console = make_console(stderr=True)


def registry_for(cfg: LinewatchConfig) -> Registry:
    from linewatch.models.registry import Registry  # lazy: keeps `linewatch --help` fast

    return Registry(Path(cfg.data_root) / "models")


def run_training(
    cfg: LinewatchConfig,
    *,
    group_name: str | None = None,
    labels_file: Path | None = None,
    promote: str = "if_better",
    adapt_from: str | None = None,
) -> list[dict[str, object]]:
    """Train every configured asset group (or one) and print what happened; returns JSON-able summaries."""
    from linewatch.ingest.labels import read_labels
    from linewatch.models.adapt import AdaptSourceError, load_source
    from linewatch.models.train import TrainingError, describe, train_group

    groups = [g for g in cfg.models.asset_groups if group_name is None or g.name == group_name]
    if not groups:
        known = ", ".join(g.name for g in cfg.models.asset_groups)
        raise typer.BadParameter(f"no asset group {group_name!r}; configured: {known}", param_hint="--asset-group")
    registry = registry_for(cfg)
    source = None
    if adapt_from is not None:
        if group_name is None:
            raise typer.BadParameter("adapting needs --asset-group: the group that gets the adapted model")
        try:
            source = load_source(registry, adapt_from)
        except AdaptSourceError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(code=1) from exc
    results = []
    for group in groups:
        path = labels_file or group.training.labels_file
        with errors_as_messages():  # a LabelError names the file and line: missing, unreadable, malformed
            labels = read_labels(path) if path is not None else []
        started = time.monotonic()
        with console.status(f"training asset group {group.name} ({group.detector.name})..."):
            try:
                report = train_group(
                    Path(cfg.data_root),
                    group,
                    registry,
                    labels=labels,
                    promote=promote,
                    say=console.print,
                    adapt_from=source,
                )
            except TrainingError as exc:
                console.print(f"[red]group {group.name}: {exc}[/red]")
                raise typer.Exit(code=1) from exc
        registry.prune(group.name, cfg.models.keep_versions)
        summary = describe(report)
        m = report.metrics
        console.print(
            f"[bold]group {group.name}[/bold]: version {report.version} in {time.monotonic() - started:.1f} s; "
            f"held-out false-alarm rate {m['false_alarm_rate']:.4f}"
            + (f", event recall {m['event_recall']:.2f}" if "event_recall" in m else "")
            + f"; {report.decision}"
        )
        results.append(summary)
    return results


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(help="List, promote and roll back model versions.", no_args_is_help=True)
    app.add_typer(models_app, name="models")

    @app.command("train")
    def train(
        config: ConfigOption = None,
        asset_group: Annotated[
            str | None, typer.Option("--asset-group", help="Train only this group (default: all).")
        ] = None,
        labels: Annotated[
            Path | None, typer.Option("--labels", help="Labels CSV: faults and maintenance not to train on.")
        ] = None,
        promote: Annotated[str, typer.Option("--promote", help="if_better (default), always, or never.")] = "if_better",
        json_out: Annotated[Path | None, typer.Option("--json", help="Also write the summary as JSON.")] = None,
        adapt_from: Annotated[
            str | None,
            typer.Option(
                "--adapt-from",
                help="Start from this model instead of training one: an asset group (its champion), GROUP@VERSION, "
                "or a bundle directory from another site. Keeps its detector; learns sensor levels, spreads and the "
                "threshold from this group's data (hours are enough). Needs --asset-group.",
            ),
        ] = None,
    ) -> None:
        """Train (or retrain) models from the store; promote a new one only if no worse than the champion."""
        if promote not in ("if_better", "always", "never"):
            raise typer.BadParameter("must be if_better, always or never", param_hint="--promote")
        cfg = load_or_exit(config, check=storage_problems)
        results = run_training(cfg, group_name=asset_group, labels_file=labels, promote=promote, adapt_from=adapt_from)
        if json_out is not None:
            json_out.write_text(json.dumps(results, indent=2, default=str))

    @models_app.command("list")
    def models_list(config: ConfigOption = None) -> None:
        """Versions per asset group with their held-out metrics; * marks the champion."""
        from linewatch.models.registry import RegistryError

        registry = registry_for(load_or_exit(config, check=storage_problems))
        with errors_as_messages():
            groups = registry.groups()
        if not groups:
            make_console().print(f"no models yet under {registry.root}", markup=False, highlight=False)
            return
        table = Table(title="linewatch models")
        # "threshold x": the alarm threshold in units of the training windows' 99 % score; well over the few the
        # simulated plant's three days of training give (1.9-4.8) means the model is blind to weaker faults.
        columns = ("group", "version", "champion", "created", "false alarms", "recall", "threshold x", "adapted from")
        for column in (*columns, "clock"):
            table.add_column(column)
        unreadable: list[str] = []
        for group in groups:
            try:
                infos = registry.info(group)
            except RegistryError as exc:  # e.g. a corrupt champion.json: list the other groups, then fail
                unreadable.append(f"group {group}: {describe_error(exc)}")
                continue
            for info in infos:
                table.add_row(
                    group,
                    info.version,
                    "*" if info.is_champion else "",
                    info.created_at[:19],
                    f"{info.metrics.get('false_alarm_rate', float('nan')):.4f}",
                    f"{info.metrics['event_recall']:.2f}" if "event_recall" in info.metrics else "-",
                    f"{ratio:.1f}" if (ratio := info.metrics.get("threshold_over_training_line")) is not None else "-",
                    info.adapted_from or "-",
                    info.clock,
                )
        if table.row_count:
            make_console().print(table)
        for problem in unreadable:
            console.print(f"error: {problem}", markup=False, highlight=False)
        if unreadable:
            raise typer.Exit(code=1)

    @models_app.command("promote")
    def models_promote(
        group: Annotated[str, typer.Argument(help="Asset group.")],
        version: Annotated[str, typer.Argument(help="Version to put in service.")],
        config: ConfigOption = None,
    ) -> None:
        """Make a version the champion (serving picks it up without a restart)."""
        from linewatch.models.bundle import BundleError
        from linewatch.models.registry import RegistryError

        try:
            registry_for(load_or_exit(config)).promote(group, version, reason="promoted by operator")
        except (RegistryError, BundleError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(code=1) from exc
        console.print(f"{group}: champion is now {version}")

    @models_app.command("rollback")
    def models_rollback(
        group: Annotated[str, typer.Argument(help="Asset group.")], config: ConfigOption = None
    ) -> None:
        """Put the previous champion back in service."""
        from linewatch.models.bundle import BundleError
        from linewatch.models.registry import RegistryError

        try:
            version = registry_for(load_or_exit(config)).rollback(group)
        except (RegistryError, BundleError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(code=1) from exc
        console.print(f"{group}: rolled back to {version}")
