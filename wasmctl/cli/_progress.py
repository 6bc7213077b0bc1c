"""Transfer progress on stderr, never with --quiet: rich bars at a terminal, plain lines off one.

Both are a `wasmctl.oci.registry.Progress`; the library only reports, the command line picks
how it is shown. Off a terminal (CI logs, `2> file`) a bar is noise, and a long push would be
silent until it ends: as skopeo does, a line says when each blob starts and when it is done,
and a long transfer adds a line every few seconds with the bytes moved so far.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from wasmctl.cli._common import SETTINGS

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

MIN_BYTES = 8 << 20  # smaller blobs move in well under a second: no bar
INTERVAL = 5.0  # seconds between the lines of a long transfer


class TransferBars:
    """A `wasmctl.oci.registry.Progress` drawing one bar per blob of 8 MiB or more."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def start(self, key: str, label: str, total: int) -> None:
        if total < MIN_BYTES:
            return
        if self._progress is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
        self._tasks[key] = self._progress.add_task(label, total=total)

    def advance(self, key: str, amount: int) -> None:
        task = self._tasks.get(key)
        if task is not None and self._progress is not None:
            self._progress.advance(task, amount)

    def finish(self, key: str) -> None:
        task = self._tasks.pop(key, None)
        if task is not None and self._progress is not None:
            self._progress.remove_task(task)
            if not self._tasks:
                self._progress.stop()
                self._progress = None


@dataclass
class _Transfer:
    verb: str
    blob: str
    total: int
    started: float
    last_line: float
    done: int = 0


class TransferLines:
    """A `wasmctl.oci.registry.Progress` writing plain lines: one when a blob starts, one
    when it ends, and one every `interval` seconds in between. Safe to share between the
    threads of one command (`gate --jobs`)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = INTERVAL,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._interval = interval
        self._transfers: dict[str, _Transfer] = {}
        self._lock = threading.Lock()

    def start(self, key: str, label: str, total: int) -> None:
        verb, _, name = label.partition(" ")
        digest = key.rpartition(" ")[2]
        blob = _short_digest(digest) if digest.startswith("sha256:") else name
        if name and name not in (blob, digest[7:19]):
            blob = f"{blob} ({name})"
        now = self._clock()
        with self._lock:
            self._transfers[key] = _Transfer(verb, blob, total, now, now)
            self._write(f"{_ING.get(verb, verb)} blob {blob}, {_size(total)}")

    def advance(self, key: str, amount: int) -> None:
        now = self._clock()
        with self._lock:
            transfer = self._transfers.get(key)
            if transfer is None:
                return
            transfer.done += amount
            if now - transfer.last_line >= self._interval and transfer.done < transfer.total:
                transfer.last_line = now
                percent = 100 * transfer.done // max(transfer.total, 1)
                self._write(
                    f"  {transfer.blob}: {_size(transfer.done)} of {_size(transfer.total)} "
                    f"({percent}%)"
                )

    def finish(self, key: str) -> None:
        now = self._clock()
        with self._lock:
            transfer = self._transfers.pop(key, None)
            if transfer is None:
                return
            took = _seconds(now - transfer.started)
            if transfer.done >= transfer.total:
                verb = _ED.get(transfer.verb, transfer.verb)
                self._write(f"{verb} blob {transfer.blob}, {_size(transfer.total)} in {took}")
            else:
                self._write(
                    f"Stopped {transfer.verb}ing blob {transfer.blob} after "
                    f"{_size(transfer.done)} of {_size(transfer.total)}"
                )

    def _write(self, line: str) -> None:
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not fail the transfer it describes


_ING = {"push": "Pushing", "pull": "Pulling"}
_ED = {"push": "Pushed", "pull": "Pulled"}


def _short_digest(digest: str) -> str:
    return digest[:19]  # sha256: and 12 hex digits, as docker and skopeo abbreviate


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 60 else f"{int(s // 60)} min {int(s % 60)} s"


def transfer_progress() -> TransferBars | TransferLines | None:
    """Bars when stderr is a terminal, lines when it is not; None with --quiet."""
    if SETTINGS.quiet:
        return None
    if sys.stderr.isatty():
        return TransferBars()
    return TransferLines(sys.stderr)
