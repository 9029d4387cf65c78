"""Container health check: exit 0 when the linewatch daemon in this container answers /healthz with 200.

One image runs either daemon, each on its own metrics port, so the check asks each default port in turn
(or the ports given as arguments, for a config that moves them) rather than needing to be told which runs.
Standard library only: it runs with the image's Python and nothing else.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

DEFAULT_PORTS = (19880, 19881)  # ingest, serve: linewatch.core.config_sections.DEFAULT_*_METRICS_PORT


def healthy(port: int, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def main(argv: list[str]) -> int:
    ports = [int(p) for p in argv] or list(DEFAULT_PORTS)
    return 0 if any(healthy(p) for p in ports) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
