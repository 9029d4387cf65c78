"""What every ``linewatch`` subcommand shares: the ``--config`` option and config loading with clear errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from linewatch.core.config import ConfigError, LinewatchConfig, load_config

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML configuration file (default: $LINEWATCH_CONFIG, else built-in defaults).",
        dir_okay=False,
    ),
]


def load_or_exit(path: Path | None) -> LinewatchConfig:
    """Load the configuration or print every problem (key path: reason) and exit with status 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from exc


def make_console(stderr: bool = False) -> Console:
    """A rich console; when output is not a terminal (logs, CI, pipes) it is wide enough for the tables."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)
