"""Where linewatch keeps its files, and safe joining of untrusted names onto those places."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

HOME_ENV = "LINEWATCH_HOME"
CONFIG_ENV = "LINEWATCH_CONFIG"
DEFAULT_HOME = Path("var")


class UnsafePathError(ValueError):
    """A name that would escape its directory or is not a valid asset/sensor name."""


def default_home(env: Mapping[str, str] | None = None) -> Path:
    """``$LINEWATCH_HOME`` if set, else ``var/`` below the working directory (a single-machine default)."""
    env = os.environ if env is None else env
    value = env.get(HOME_ENV, "").strip()
    return Path(value) if value else DEFAULT_HOME


def safe_child(root: Path, *parts: str) -> Path:
    """Join path components below ``root``; refuse anything that could leave it.

    Components are built from names that arrive in MQTT topics, which a hostile or misconfigured client
    controls, so each one must be a single plain component (no separator, NUL, ``.`` or ``..``, at most 255
    bytes) and the resolved result must stay inside ``root``. Callers validate asset and sensor names with
    :func:`linewatch.core.schema.is_valid_name` first; this is the second line of defence.
    """
    for part in parts:
        if (
            not part
            or part in {".", ".."}
            or any(c in part for c in ("/", "\\", "\0"))
            or len(part.encode("utf-8", "surrogatepass")) > 255
        ):
            raise UnsafePathError(f"unsafe path component: {part[:80]!r}")
    base = root.resolve()
    path = base.joinpath(*parts).resolve()
    if path != base and base not in path.parents:
        raise UnsafePathError(f"path escapes {base}: {str(path)[:200]}")
    return path
