from __future__ import annotations

import io
import json
import logging
import os
import signal
import threading

import pytest

from linewatch.core.lifecycle import StopEvent, install_signal_handlers
from linewatch.core.logs import excerpt, setup_logging


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_json_lines_are_single_line_and_parseable(restore_root_logger: None) -> None:
    stream = io.StringIO()
    setup_logging("INFO", "json", stream=stream)
    logging.getLogger("linewatch.test").info("topic %s rejected", 'evil\n{"level":"CRITICAL"}', extra={"n": 3})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["level"] == "INFO" and doc["logger"] == "linewatch.test" and doc["n"] == 3
    assert doc["message"].startswith("topic evil\n")


def test_text_format_cannot_forge_lines(restore_root_logger: None) -> None:
    stream = io.StringIO()
    setup_logging("INFO", "text", stream=stream)
    logging.getLogger("x").warning("payload %s", "a\nFAKE ERROR line")
    assert len(stream.getvalue().splitlines()) == 1


def test_per_logger_levels(restore_root_logger: None) -> None:
    stream = io.StringIO()
    setup_logging("WARNING", "text", levels={"linewatch.chatty": "DEBUG"}, stream=stream)
    logging.getLogger("linewatch.chatty").debug("shown")
    logging.getLogger("linewatch.quiet").info("hidden")
    out = stream.getvalue()
    assert "shown" in out and "hidden" not in out


def test_excerpt_bounds_and_escapes() -> None:
    text = excerpt(b"\x00\xff" + b"a" * 500, limit=10)
    assert text.startswith("\\x00\\xff") and "+495 chars" in text
    assert "\n" not in excerpt("a\nb")


def test_signal_sets_stop_event() -> None:
    stop = StopEvent()
    restore = install_signal_handlers(stop)
    try:
        threading.Timer(0.05, os.kill, args=(os.getpid(), signal.SIGTERM)).start()
        assert stop.wait(5.0)
        assert stop.reason == "SIGTERM"
    finally:
        restore()
