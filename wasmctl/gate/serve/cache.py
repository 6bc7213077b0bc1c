"""The admission server's memory: verdicts and tag resolutions with lifetimes, and work
shared by everyone who asks for it at once.

Everything here runs on the server's event loop thread (no locks): the verifications
themselves run in worker threads, and only their results come back to the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


class TtlCache(Generic[_K, _V]):
    """At most `size` values, each kept until its own time to live runs out; the least
    recently used goes first when the cache is full."""

    def __init__(self, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        if size < 1:
            raise ValueError("a cache holds at least one entry")
        self.size = size
        self._clock = clock
        self._entries: OrderedDict[_K, tuple[float, _V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: _K, *, stale: bool = False) -> _V | None:
        """The value, while it lives; with `stale`, also after: an expired entry is kept
        for a stale read until it is the least recently used when room is needed."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock() and not stale:
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: _K, value: _V, ttl: float) -> None:
        if ttl <= 0:
            return
        self._entries[key] = (self._clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def live(self) -> int:
        """How many values have not expired."""
        now = self._clock()
        return sum(expires > now for expires, _ in self._entries.values())

    def clear(self) -> None:
        self._entries.clear()


class SingleFlight(Generic[_K, _V]):
    """One computation per key at a time: whoever asks while it runs waits for the same
    result (or exception). A caller that stops waiting (its deadline) does not cancel the
    computation, which goes on for the others and for the cache."""

    def __init__(self) -> None:
        self._running: dict[_K, asyncio.Future[_V]] = {}

    def __len__(self) -> int:
        return len(self._running)

    def joined(self, key: _K) -> bool:
        return key in self._running

    def run(self, key: _K, start: Callable[[], Awaitable[_V]]) -> asyncio.Future[_V]:
        """The future of the computation for `key`: the running one, or one `start`s now."""
        future = self._running.get(key)
        if future is None:
            future = asyncio.ensure_future(start())
            self._running[key] = future
            future.add_done_callback(lambda _: self._running.pop(key, None))
        return future
