"""The long-format reading schema shared by ingest, the store, models and serving.

Readings are stored long (one row per asset, sensor and timestamp) so that a new or retired sensor never
changes a file's schema; wide frames exist only inside models.
"""

from __future__ import annotations

import re
from typing import Final

import pyarrow as pa

#: Asset and sensor names become path components and metric label values, so they are held to a strict,
#: portable pattern: starts with a letter or digit, then letters, digits, ``_``, ``-`` or ``.``, at most 64
#: characters, and never ``.`` or ``..`` (the first character rule already excludes both).
NAME_PATTERN: Final[str] = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
_NAME_RE: Final = re.compile(NAME_PATTERN)

READING_COLUMNS: Final[tuple[str, ...]] = ("ts", "asset", "sensor", "value", "received_at")

READING_SCHEMA: Final[pa.Schema] = pa.schema(
    [
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("asset", pa.string(), nullable=False),
        pa.field("sensor", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("received_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def is_valid_name(name: str) -> bool:
    """True when ``name`` is safe to use as an asset or sensor name (path component and label value)."""
    return _NAME_RE.fullmatch(name) is not None and ".." not in name
