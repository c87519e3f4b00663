"""Ctrl-C held back while the library opens, publishes and removes files.

Python raises KeyboardInterrupt at whatever bytecode the main thread runs
when SIGINT arrives. Between two C calls that is harmless: the C core ends a
copy in the ``except`` clause around them. But opening the files of a copy
from paths, or publishing and removing them, takes many Python steps, and an
interrupt between two of them would leave a file open or a temporary folder
behind. So while :class:`HeldInterrupts` is entered in the main thread, a
SIGINT is only recorded; :meth:`HeldInterrupts.check` raises it at the next
safe point (between two steps of a copy), and leaving the block delivers one
that is still pending to the handler that was there before.

Other threads never receive Python signal handlers, so elsewhere this does
nothing.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Protocol, Union

Handler = Union[Callable[[int, Union[FrameType, None]], Any], int, None]


class Checkpoint(Protocol):
    """Something a copy asks, between two C calls, whether to stop: it raises
    to stop (Ctrl-C held back, a cancelled task)."""

    def check(self) -> None: ...


class HeldInterrupts:
    """A ``with`` block during which Ctrl-C waits for a safe point.

    >>> with HeldInterrupts() as held:
    ...     held.check()  # nothing pending: returns
    """

    def __init__(self) -> None:
        self.pending = False
        self._previous: Handler = None
        self._holding = False

    def __enter__(self) -> HeldInterrupts:
        if (
            threading.current_thread() is threading.main_thread()
            and not sys.is_finalizing()
        ):
            try:
                previous = signal.signal(signal.SIGINT, self._record)
            except ValueError:  # not the main interpreter
                return self
            # None: a handler not set from Python, which only SIG_DFL restores.
            self._previous = signal.SIG_DFL if previous is None else previous
            self._holding = True
        return self

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True

    def check(self) -> None:
        """Deliver a held Ctrl-C now, as the handler that was there before
        would have (KeyboardInterrupt, usually)."""
        if self.pending:
            self.pending = False
            if callable(self._previous):
                self._previous(signal.SIGINT, None)
            elif self._previous == signal.SIG_DFL:
                self._release()
                signal.raise_signal(signal.SIGINT)

    def _release(self) -> None:
        if self._holding:
            self._holding = False
            signal.signal(signal.SIGINT, self._previous)

    def __exit__(self, *exc_info: object) -> None:
        self._release()
        if self.pending:
            self.pending = False
            signal.raise_signal(signal.SIGINT)
