"""Ctrl-C and SIGTERM during training: finish the iteration, checkpoint, then stop."""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopFlag:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current iteration."""

    def __init__(self):
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second signal stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False
