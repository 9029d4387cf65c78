"""The CLI as an operator runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from linewatch.core.version import __version__


def _linewatch(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("linewatch", path=str(Path(sys.executable).parent))
    assert exe, "the linewatch console script is not installed in this environment"
    base = {k: v for k, v in os.environ.items() if not k.startswith("LINEWATCH_")}
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, cwd=cwd, env={**base, **(env or {})}, timeout=120
    )


def test_version() -> None:
    out = _linewatch("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"linewatch {__version__}"


def test_check_example_config(repo_root: Path) -> None:
    out = _linewatch("config", "check", str(repo_root / "deploy/config/linewatch.example.yaml"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK:")


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        ("mqtt:\n  hots: broker\n", "mqtt.hots"),
        ("serve:\n  interval_s: soon\n", "serve.interval_s"),
        ("mqtt:\n  port: 65536\n", "mqtt.port"),
        ("ingest:\n  metrics:\n    port: -5\n", "ingest.metrics.port"),
    ],
)
def test_check_bad_config_names_key(tmp_path: Path, text: str, key_path: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = _linewatch("config", "check", str(path))
    assert out.returncode == 2
    assert f"{key_path}:" in out.stderr


def test_check_uses_env_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("logging:\n  format: xml\n")
    out = _linewatch("config", "check", env={"LINEWATCH_CONFIG": str(path)})
    assert out.returncode == 2 and "logging.format:" in out.stderr


def test_schema_is_json_schema() -> None:
    out = _linewatch("config", "schema")
    assert out.returncode == 0
    schema = json.loads(out.stdout)
    assert schema["additionalProperties"] is False
    assert {"mqtt", "storage", "ingest", "serve", "logging"} <= set(schema["properties"])


def test_show_masks_secrets() -> None:
    out = _linewatch("config", "show", env={"LINEWATCH_MQTT__PASSWORD": "topsecret"})
    assert out.returncode == 0
    assert "topsecret" not in out.stdout and "host: 127.0.0.1" in out.stdout
