"""Graceful shutdown: SIGINT/SIGTERM end a source's loop so the producer flushes before exit."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def stop_on_signals(also: Callable[[], None] | None = None) -> Iterator[threading.Event]:
    """Within the block, SIGINT and SIGTERM set the yielded event (and call ``also``, e.g. to wake an
    event loop) instead of killing the process; the previous handlers are restored afterwards."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if also is not None:
            also()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
