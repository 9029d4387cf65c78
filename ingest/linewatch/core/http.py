"""The small HTTP server every daemon runs: ``/metrics``, ``/healthz`` and ``/readyz``.

prometheus_client's ``start_http_server`` serves metrics on every path and binds all interfaces by default;
operators also need liveness and readiness endpoints for systemd watchdogs, load balancers and Kubernetes, so
one server serves all three, bound to the configured address only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

#: A check returns (ok, reason); the reason is shown on /healthz or /readyz.
Check = Callable[[], tuple[bool, str]]


def _always_ok() -> tuple[bool, str]:
    return True, "ok"


class MetricsServer:
    """Serve a registry plus health checks in a daemon thread; ``port=0`` picks a free port (tests)."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        *,
        healthy: Check = _always_ok,
        ready: Check = _always_ok,
    ) -> None:
        self._registry = registry
        self._healthy = healthy
        self._ready = ready
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    outer._send(self, 200, generate_latest(outer._registry), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    check = outer._healthy if path == "/healthz" else outer._ready
                    try:
                        ok, reason = check()
                    except Exception as exc:  # a broken check must not kill the server
                        ok, reason = False, f"check failed: {type(exc).__name__}"
                    outer._send(self, 200 if ok else 503, (reason + "\n").encode(), "text/plain; charset=utf-8")
                else:
                    outer._send(self, 404, b"not found: try /metrics, /healthz, /readyz\n", "text/plain")

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http %s", format % args)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:  # the bare "[Errno 98] Address already in use" names neither address nor port
            raise OSError(exc.errno, f"cannot serve /metrics on {host}:{port}: {exc.strerror or exc}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, code: int, body: bytes, content_type: str) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics, /healthz and /readyz on http://%s:%s", self.host, self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
