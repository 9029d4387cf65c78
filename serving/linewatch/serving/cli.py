"""The ``linewatch`` command line: one entry point for daemons, offline jobs and admin tasks.

It lives in the top layer (serving) because it dispatches to every layer; each subcommand imports its
implementation lazily so that ``linewatch ingest`` never loads torch or tsfresh.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from linewatch.core.config import LinewatchConfig, config_json_schema
from linewatch.core.preflight import path_problems, unused_settings
from linewatch.core.version import __version__
from linewatch.serving import cli_data, cli_evaluate, cli_models
from linewatch.serving.cli_common import ConfigOption, errors_as_messages, load_or_exit

if TYPE_CHECKING:
    from linewatch.ingest.daemon import IngestDaemon
    from linewatch.serving.daemon import ServeDaemon

app = typer.Typer(
    name="linewatch",
    help="Predictive-maintenance anomaly detection: MQTT readings in, failure risk and root cause out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Validate, show and describe the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
cli_data.register(app)
cli_models.register(app)
cli_evaluate.register(app)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"linewatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """linewatch command line."""


@config_app.command("check")
def config_check(
    file: Annotated[
        Path | None,
        typer.Argument(help="File to validate (default: --config, $LINEWATCH_CONFIG or built-in defaults)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Validate a configuration file and the files it names; exit 0 if usable, 2 with one line per problem.

    Settings that have no effect as configured (TLS files with TLS off, a password without a user name) are
    printed as ``note:`` lines on standard error and do not fail the check."""
    path = file if file is not None else config
    cfg = load_or_exit(path, check=path_problems)
    for note in unused_settings(cfg):
        typer.echo(f"note: {note}", err=True)
    source = str(path) if path is not None else "defaults"
    typer.echo(f"OK: {source} is a valid linewatch configuration (data root: {cfg.data_root})")


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the configuration file (every key with its description)."""
    typer.echo(json.dumps(config_json_schema(), indent=2))


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the effective configuration (file + environment + defaults) as YAML; secrets are masked."""
    import yaml

    cfg = load_or_exit(config)
    data = json.loads(cfg.model_dump_json())
    typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


def _daemon_logging(cfg: LinewatchConfig) -> None:
    from linewatch.core.logs import setup_logging

    setup_logging(cfg.logging.level, cfg.logging.format, cfg.logging.levels)


def _run_daemon(config: Path | None, which: str) -> None:
    """Load config, set up logging, run a daemon until SIGTERM/SIGINT (one stop event per process).

    Files the daemon needs are checked first; what still fails at start-up (a port in use, a bad certificate)
    is one ``error:`` line and exit status 2, not a traceback."""
    from linewatch.core.lifecycle import StopEvent, install_signal_handlers

    # serve's MQTT use (alert publishing) is optional and degrades with a logged error, so only ingest checks it
    cfg = load_or_exit(config, check=partial(path_problems, mqtt=which == "ingest", training=False))
    _daemon_logging(cfg)
    for note in unused_settings(cfg):  # e.g. TLS files with TLS off: the admin may believe the link is encrypted
        logging.getLogger(f"linewatch.{which}").warning("configuration: %s", note)
    stop = StopEvent()
    restore = install_signal_handlers(stop)
    daemon: IngestDaemon | ServeDaemon | None = None
    try:
        with errors_as_messages(started=lambda: daemon is not None and daemon.started):
            if which == "ingest":
                from linewatch.ingest.daemon import IngestDaemon

                daemon = IngestDaemon(cfg, stop=stop)
            else:
                from linewatch.serving.daemon import ServeDaemon

                daemon = ServeDaemon(cfg, stop=stop)
            daemon.run()
    finally:
        restore()


@app.command("ingest")
def ingest(config: ConfigOption = None) -> None:
    """Run the ingest daemon (MQTT -> Parquet store) until SIGTERM or Ctrl-C."""
    _run_daemon(config, "ingest")


@app.command("serve")
def serve(config: ConfigOption = None) -> None:
    """Run the scoring daemon (store -> risk, alerts, attributions on /metrics) until SIGTERM or Ctrl-C."""
    _run_daemon(config, "serve")


@app.command("demo")
def demo(config: ConfigOption = None) -> None:
    """Run the pipeline end to end on this machine: broker, ingest, simulated plant with faults, stored data."""
    from linewatch.serving.demo import run_demo

    cfg = load_or_exit(config)
    _daemon_logging(cfg)
    typer.echo(f"linewatch {__version__} demo (configuration valid; state under {cfg.home})", err=True)
    raise typer.Exit(code=run_demo(cfg))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
