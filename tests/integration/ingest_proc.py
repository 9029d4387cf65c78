"""Run `linewatch ingest` as a real subprocess against a test broker, as systemd would."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.integration.conftest import MosquittoBroker, free_port

#: The shipped broker limits that keep a slow subscriber's QoS 1 messages (deploy/mosquitto/linewatch.conf).
SHIPPED_LIMITS = [
    "max_queued_messages 0",
    "max_queued_bytes 0",
    "max_inflight_messages 0",
    "max_inflight_bytes 0",
]


def linewatch_exe() -> str:
    exe = shutil.which("linewatch", path=str(Path(sys.executable).parent))
    assert exe, "linewatch console script not installed"
    return exe


def write_config(tmp: Path, broker: MosquittoBroker, **ingest: Any) -> Path:
    doc = {
        "home": str(tmp / "home"),
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "client_id": "lw-test-ingest",
            "reconnect": {"min_delay_s": 1, "max_delay_s": 2},
        },
        "ingest": {
            "subscriptions": [
                {"topic": "plant/+/+/+", "template": "plant/{site}/{asset}/{sensor}", "decoder": "json_single"},
                {"topic": "plant/+/+", "template": "plant/{site}/{asset}", "decoder": "json_record"},
            ],
            "metrics": {"host": "127.0.0.1", "port": free_port()},
            "compaction": {"interval_s": 0},
            **ingest,
        },
        "logging": {"level": "INFO"},
    }
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "linewatch.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


class IngestProcess:
    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        cfg = yaml.safe_load(config.read_text())
        self.metrics_url = f"http://127.0.0.1:{cfg['ingest']['metrics']['port']}"
        self.data_root = Path(cfg["home"]) / "data"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_ready: bool = True, timeout: float = 30.0) -> IngestProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINEWATCH_")}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [linewatch_exe(), "ingest", "--config", str(self.config)], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.metrics_url + path, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"ingest exited early ({self.proc.returncode}):\n{self.log()[-3000:]}")
            try:
                if self.http("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"ingest not ready within {timeout} s:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 15.0) -> tuple[int, float]:
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - started

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in a Prometheus text page (0 when absent)."""
    key = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
