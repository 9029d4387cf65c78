"""What every ``linewatch`` subcommand shares: the ``--config`` option, config loading and one-line errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from linewatch.core.config import ConfigError, LinewatchConfig, config_path, load_config
from linewatch.core.preflight import path_problems
from linewatch.core.secrets import SecretError
from linewatch.ingest.labels import LabelError

log = logging.getLogger(__name__)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML configuration file (default: $LINEWATCH_CONFIG, else built-in defaults).",
        dir_okay=False,
    ),
]

#: Failures of the environment rather than of linewatch: a file missing or unreadable, a port taken, a secret
#: or labels file that cannot be used. Commands report them in one line; anything else keeps its traceback.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (OSError, SecretError, LabelError)


def load_or_exit(path: Path | None, *, check: Callable[[LinewatchConfig], list[str]] | None = None) -> LinewatchConfig:
    """Load the configuration or print every problem (key path: reason) and exit with status 2.

    ``check`` adds problems a valid configuration can still have (e.g. its files missing), reported alike."""
    try:
        cfg = load_config(path)
        problems = check(cfg) if check is not None else []
        if problems:
            raise ConfigError(str(config_path(path) or "built-in defaults and environment"), problems)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from exc
    return cfg


def storage_problems(cfg: LinewatchConfig) -> list[str]:
    """The ``check`` for commands that only read or write the store (no MQTT, no labels)."""
    return path_problems(cfg, mqtt=False, training=False)


def broker_problems(cfg: LinewatchConfig) -> list[str]:
    """The ``check`` for commands that only publish to the broker (password and TLS files)."""
    return path_problems(cfg, storage=False, training=False)


def describe_error(exc: BaseException) -> str:
    """The message of an expected error, with the file an ``OSError`` is about (``str()`` alone omits it
    for some, e.g. ssl's missing CA file)."""
    if isinstance(exc, OSError) and exc.strerror:
        files = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
        return f"{': '.join(files)}: {exc.strerror}" if files else exc.strerror
    return str(exc) or type(exc).__name__


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


@contextmanager
def errors_as_messages(started: Callable[[], bool] | None = None) -> Iterator[None]:
    """Turn :data:`EXPECTED_ERRORS` raised inside into ``error: <message>`` and exit status 2.

    Wrap start-up and file I/O only: the traceback goes to the debug log, programming errors are not caught.
    A daemon passes ``started``: an error once it runs is no operator mistake in the configuration but a
    failure someone has to trace, so its traceback is logged as an error too, before the one line."""
    try:
        yield
    except EXPECTED_ERRORS as exc:
        if started is not None and started():
            log.exception("stopped by an error after start-up")
        else:
            log.debug("command failed", exc_info=True)
        fail(describe_error(exc))


def make_console(stderr: bool = False) -> Console:
    """A rich console; when output is not a terminal (logs, CI, pipes) it is wide enough for the tables."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)
