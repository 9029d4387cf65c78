"""Integration fixtures: a private Mosquitto broker per test, which tests may stop and start again.

Each test gets its own broker on a free port (never the shared one on 1883), so tests can restart it to
exercise reconnects and persistent sessions without disturbing anything else.

    def test_x(mosquitto_broker): ...                       # defaults: no persistence
    def test_y(mosquitto_factory):
        broker = mosquitto_factory(persistence=True, config_extra=["max_inflight_messages 100"])
        broker.stop(); broker.start()                       # same port, same persistence file
"""

from __future__ import annotations

import contextlib
import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


class MosquittoBroker:
    """A Mosquitto process bound to 127.0.0.1:<port>; ``stop()``/``start()`` keep the port and config."""

    def __init__(
        self,
        workdir: Path,
        *,
        persistence: bool = False,
        config_extra: Sequence[str] = (),
        max_queued_messages: int = 0,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.workdir = workdir
        self.persistence = persistence
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # Run as ourselves: started as root, Mosquitto would switch to user "mosquitto" and then fail to
            # write its persistence file into our temporary directory.
            f"user {getpass.getuser()}",
            f"persistence {'true' if persistence else 'false'}",
            # 0 = unlimited, as in deploy/mosquitto: with Mosquitto's default (1000) a QoS 1 subscriber that
            # falls behind a fast publisher silently loses messages, which would make loss tests flaky.
            f"max_queued_messages {max_queued_messages}",
        ]
        if persistence:
            lines += [f"persistence_location {workdir}/", "persistence_file mosquitto.db"]
        lines += list(config_extra)
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + timeout
        while not _port_open(self.host, self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}: {self.log_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop(kill=True)
                raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")
            time.sleep(0.02)

    def stop(self, kill: bool = False, timeout: float = 10.0) -> None:
        """Terminate (SIGTERM: Mosquitto saves its persistence file) or kill (SIGKILL: it saves nothing)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def restart(self, downtime_s: float = 0.0) -> None:
        self.stop()
        if downtime_s:
            time.sleep(downtime_s)
        self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


BrokerFactory = Callable[..., MosquittoBroker]


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerFactory]:
    """Start brokers: ``factory(persistence=False, config_extra=(), max_queued_messages=0, start=True)``.

    Every broker is stopped at teardown."""
    if not Path(MOSQUITTO).exists():
        pytest.skip(f"mosquitto binary not found at {MOSQUITTO}")
    brokers: list[MosquittoBroker] = []

    def make(
        *,
        persistence: bool = False,
        config_extra: Sequence[str] = (),
        max_queued_messages: int = 0,
        start: bool = True,
    ) -> MosquittoBroker:
        broker = MosquittoBroker(
            tmp_path_factory.mktemp("mosquitto"),
            persistence=persistence,
            config_extra=config_extra,
            max_queued_messages=max_queued_messages,
        )
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto_broker(mosquitto_factory: BrokerFactory) -> MosquittoBroker:
    """A running broker without persistence."""
    return mosquitto_factory()
