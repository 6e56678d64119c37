"""Cancellation: SIGINT/SIGTERM set a flag that ansible-runner's cancel_callback returns."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

CancelCallback = Callable[[], bool]


class CancelFlag:
    """Callable cancel_callback; `signals()` makes SIGINT/SIGTERM set it for a while."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self._event.is_set()

    def set(self, signum: int | None = None) -> None:
        self.signum = signum
        self._event.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.set(signum)

    @contextmanager
    def signals(self) -> Iterator[CancelFlag]:
        """Install the handlers (main thread only; elsewhere a no-op) and restore them after."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        sigs = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in sigs}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def latch(
    *callbacks: CancelCallback | None, on_cancel: Callable[[], object] | None = None
) -> CancelCallback:
    """True from the first time any callback returns True; `on_cancel` runs once, right then."""
    active = [c for c in callbacks if c is not None]
    fired = False

    def check() -> bool:
        nonlocal fired
        if not fired and any(c() for c in active):
            fired = True
            if on_cancel is not None:
                on_cancel()
        return fired

    return check
