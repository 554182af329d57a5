"""Ctrl-C and SIGTERM for the long-running commands (`issue send`, `worker`, `run`).

Both ask for a clean stop: the command finishes the messages on the wire, settles, gives back
what it had not sent and prints its summary. Ctrl-C then exits 130 (128 + SIGINT, as shells
expect), SIGTERM 0. A second Ctrl-C calls ``on_abort`` (stop at once), if given.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

INTERRUPTED = 130


class StopSignals:
    """Installs the handlers (``with StopSignals(...)`` puts the previous ones back at the
    end); ``stop`` is set by the first SIGINT or SIGTERM."""

    def __init__(
        self, stop: threading.Event, *, on_abort: Callable[[], None] | None = None
    ) -> None:
        self.stop = stop
        self.interrupted = False
        self._on_abort = on_abort
        self._previous = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, self._terminate),
            signal.SIGINT: signal.signal(signal.SIGINT, self._interrupt),
        }

    def __enter__(self) -> StopSignals:
        return self

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _terminate(self, *_: object) -> None:
        self.stop.set()

    def _interrupt(self, *_: object) -> None:
        if self.interrupted and self._on_abort is not None:
            print("Aborted at once.", file=sys.stderr, flush=True)
            self._on_abort()
        if not self.interrupted:
            print(
                "Stopping after the messages on the wire (Ctrl-C again to abort at once)...",
                file=sys.stderr,
                flush=True,
            )
        self.interrupted = True
        self.stop.set()

    @property
    def exit_status(self) -> int:
        return INTERRUPTED if self.interrupted else 0
