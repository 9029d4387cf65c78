"""The systemd units run linewatch commands that exist, with options that exist, and timers start real services."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from linewatch.serving.cli import app

SYSTEMD = Path(__file__).resolve().parents[3] / "deploy" / "systemd"
EXE = "/opt/linewatch/.venv/bin/linewatch"
_EXEC = re.compile(r"^(ExecStart|ExecStartPre|ExecStartPost)=(.*)$")


def _commands() -> list[tuple[str, list[str]]]:
    found = []
    for unit in sorted(SYSTEMD.glob("*.service")):
        for line in unit.read_text().splitlines():
            if (m := _EXEC.match(line.strip())) is not None:
                words = shlex.split(m.group(2).lstrip("-@:+!"))  # systemd's prefixes: ignore failure etc.
                assert words[0] == EXE, f"{unit.name}: {line}"
                found.append((unit.name, words[1:]))
    return found


def test_every_unit_runs_linewatch() -> None:
    units = {name for name, _ in _commands()}
    assert {"linewatch-ingest.service", "linewatch-serve.service", "linewatch-retrain.service"} <= units


@pytest.mark.parametrize(("unit", "args"), _commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_command_and_its_options_exist(unit: str, args: list[str]) -> None:
    command = [a for a in args if not a.startswith("-")][:2]  # e.g. ["store", "report"] or ["ingest"]
    res = CliRunner().invoke(app, [*args, "--help"], terminal_width=200)
    assert res.exit_code == 0, f"{unit}: linewatch {' '.join(args)}: {res.output}"
    for option in (a for a in args if a.startswith("--")):
        assert option in res.output, f"{unit}: {option} is not an option of linewatch {' '.join(command)}"


def test_timers_start_services_that_exist() -> None:
    timers = sorted(SYSTEMD.glob("*.timer"))
    assert timers
    for timer in timers:
        unit = re.search(r"^Unit=(\S+)$", timer.read_text(), re.MULTILINE)
        service = unit.group(1) if unit else timer.with_suffix(".service").name  # systemd's default
        assert (SYSTEMD / service).is_file(), f"{timer.name} starts {service}, which is not in deploy/systemd"
