"""deploy/container: the recipe refers to what exists and agrees with the Makefile and the config schema.

No container runtime runs in CI (nor on the development machine), so the image itself is not built here;
these checks catch what usually breaks a recipe when the code moves: renamed paths, a drifting torch pin,
mistyped environment overrides, ports that no longer match the defaults, and a health check that lies.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from linewatch.core.config import load_config
from linewatch.core.config_sections import DEFAULT_INGEST_METRICS_PORT, DEFAULT_SERVE_METRICS_PORT
from linewatch.core.http import MetricsServer

REPO = Path(__file__).resolve().parents[3]
CONTAINER = REPO / "deploy" / "container"
RECIPE = (CONTAINER / "Containerfile").read_text(encoding="utf-8")


def _instructions(name: str) -> list[str]:
    """Arguments of every ``NAME`` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", RECIPE)
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", joined, flags=re.MULTILINE)]


def test_copied_paths_exist() -> None:
    for args in _instructions("COPY"):
        if args.startswith("--from="):
            continue
        *sources, _ = args.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"


def test_torch_pin_matches_the_makefile() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    make_pin = re.search(r"^TORCH_SPEC\s*\?=\s*(\S+)", makefile, flags=re.MULTILINE)
    assert make_pin is not None
    assert f"TORCH_SPEC={make_pin.group(1)}" in _instructions("ARG")


def test_environment_overrides_are_real_config_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mistyped LINEWATCH_* override is silently ignored: load the image's config with the image's env."""
    env_line = " ".join(_instructions("ENV"))
    pairs = dict(re.findall(r"(LINEWATCH_[A-Z_]+)=(\S+)", env_line))
    assert pairs["LINEWATCH_CONFIG"] == "/etc/linewatch/linewatch.yaml"
    for key, value in pairs.items():
        if key != "LINEWATCH_CONFIG":
            monkeypatch.setenv(key, value)
    cfg = load_config(REPO / "deploy" / "config" / "linewatch.example.yaml")
    assert cfg.ingest.metrics.host == "0.0.0.0" and cfg.serve.metrics.host == "0.0.0.0"
    assert str(cfg.data_root).startswith(pairs["LINEWATCH_HOME"])


def test_ports_user_and_entrypoint() -> None:
    assert _instructions("EXPOSE") == [f"{DEFAULT_INGEST_METRICS_PORT} {DEFAULT_SERVE_METRICS_PORT}"]
    assert _instructions("USER") == ["linewatch"]  # never root
    assert _instructions("ENTRYPOINT") == ['["linewatch"]']
    assert _instructions("CMD")[-1] == '["serve"]'
    assert _instructions("STOPSIGNAL") == ["SIGTERM"]


def _healthcheck(*ports: int) -> int:
    return subprocess.run(
        [sys.executable, str(CONTAINER / "healthcheck.py"), *map(str, ports)], timeout=30, check=False
    ).returncode


def test_healthcheck_reports_the_daemons_healthz() -> None:
    """Healthy only when the daemon's /healthz says so: 503 or nothing listening is unhealthy."""
    state = {"ok": True}
    server = MetricsServer(
        "127.0.0.1", 0, CollectorRegistry(), healthy=lambda: (state["ok"], "ok" if state["ok"] else "stalled")
    ).start()
    try:
        with socket.socket() as sock:  # bound, then closed: nothing listens there
            sock.bind(("127.0.0.1", 0))
            free = int(sock.getsockname()[1])
        assert _healthcheck(free, server.port) == 0  # the first port is not this container's daemon
        state["ok"] = False
        assert _healthcheck(free, server.port) == 1
    finally:
        server.stop()
    assert _healthcheck(free) == 1
    default_ports = re.search(r"DEFAULT_PORTS = \((\d+), (\d+)\)", (CONTAINER / "healthcheck.py").read_text())
    assert default_ports is not None
    assert tuple(map(int, default_ports.groups())) == (DEFAULT_INGEST_METRICS_PORT, DEFAULT_SERVE_METRICS_PORT)
