"""Logging, configured once per process by the entry point.

Modules only call ``logging.getLogger(__name__)`` with lazy ``%s`` arguments. Log lines can carry text from
the network (topics, payload excerpts), so both formatters escape control characters: a hostile payload can
neither forge extra log lines nor break a JSON log shipper.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal, TextIO

_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

#: Longest excerpt of untrusted text (payloads, topics) that may appear in a log line.
MAX_LOGGED_CHARS = 200

_ESCAPES = {i: f"\\x{i:02x}" for i in [*range(32), 127, 0x85]}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def excerpt(value: bytes | str, limit: int = MAX_LOGGED_CHARS) -> str:
    """A bounded, printable excerpt of untrusted input for log lines and quarantine reasons."""
    text = value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value
    cut = text[:limit]
    shown = cut.translate(_ESCAPES)
    return shown + (f"...(+{len(text) - limit} chars)" if len(text) > limit else "")


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` with newlines and control characters escaped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}
        if extras:
            line += " " + " ".join(f"{k}={v!r}" for k, v in extras.items())
        return line.replace("\r", "\\r").replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, exception, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in doc:
                doc[key] = value
        return json.dumps(doc, default=str, ensure_ascii=True)


def setup_logging(
    level: str = "INFO",
    fmt: Literal["text", "json"] = "text",
    levels: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Install one handler on the root logger (replacing earlier ones) and apply per-logger levels."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, name_level in (levels or {}).items():
        logging.getLogger(name).setLevel(name_level)
    logging.captureWarnings(True)
