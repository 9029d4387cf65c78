"""The metrics/health server over real HTTP on port 0."""

from __future__ import annotations

import errno
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from linewatch.core.http import MetricsServer


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_metrics_health_ready_and_404() -> None:
    registry = CollectorRegistry()
    Counter("linewatch_test_things", "Things.", registry=registry).inc(3)
    state = {"ready": False}
    server = MetricsServer(
        "127.0.0.1", 0, registry, ready=lambda: (state["ready"], "ok" if state["ready"] else "broker down")
    ).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        code, body = _get(base + "/metrics")
        assert code == 200 and "linewatch_test_things_total 3.0" in body
        assert _get(base + "/healthz") == (200, "ok\n")
        assert _get(base + "/readyz") == (503, "broker down\n")
        state["ready"] = True
        assert _get(base + "/readyz")[0] == 200
        assert _get(base + "/nope")[0] == 404
    finally:
        server.stop()


def test_failing_check_is_503_not_a_crash() -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    server = MetricsServer("127.0.0.1", 0, CollectorRegistry(), healthy=broken).start()
    try:
        code, body = _get(f"http://127.0.0.1:{server.port}/healthz")
        assert code == 503 and "RuntimeError" in body
        assert _get(f"http://127.0.0.1:{server.port}/metrics")[0] == 200
    finally:
        server.stop()


def test_port_in_use_names_address_and_port() -> None:
    first = MetricsServer("127.0.0.1", 0, CollectorRegistry()).start()
    try:
        with pytest.raises(OSError) as info:
            MetricsServer("127.0.0.1", first.port, CollectorRegistry())
        assert info.value.errno == errno.EADDRINUSE
        assert info.value.strerror == f"cannot serve /metrics on 127.0.0.1:{first.port}: Address already in use"
    finally:
        first.stop()
