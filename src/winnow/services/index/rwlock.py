"""A readers/writer lock: searches share the shard, a write applies alone. Writers are preferred so a steady
stream of searches cannot starve writes (which already hold a durable, acknowledged-soon log record)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RWLock:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self, blocking: bool = True) -> Iterator[bool]:
        """Share the lock; yields True. With blocking=False it yields False at once, unheld, when a writer holds
        or waits for the lock (the caller then does the read elsewhere)."""
        with self._cond:
            if not blocking and (self._writer or self._waiting_writers):
                held = False
            else:
                while self._writer or self._waiting_writers:
                    self._cond.wait()
                self._readers += 1
                held = True
        try:
            yield held
        finally:
            if held:
                with self._cond:
                    self._readers -= 1
                    if self._readers == 0:
                        self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
