"""One stop event per process: signal handlers only set it, loops wait on it.

``stop.wait(interval)`` is the only sleep a daemon loop needs, so SIGTERM interrupts any wait at once and
shutdown proceeds in reverse start-up order in the main thread, never inside a signal handler.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType

log = logging.getLogger(__name__)


class StopEvent:
    """A process-wide stop flag that remembers why it was set."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str = "requested") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds; True as soon as stop was requested."""
        return self._event.wait(timeout)


def install_signal_handlers(
    stop: StopEvent,
    signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> Callable[[], None]:
    """Make the given signals set ``stop``; a second SIGINT falls back to the default (immediate exit).

    Returns a function that restores the previous handlers. Must be called from the main thread.
    """
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set() and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        stop.set(name)

    for sig in signals:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
