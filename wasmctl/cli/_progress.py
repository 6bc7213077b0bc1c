"""Progress bars for transfers: rich, on stderr, only at a terminal and never with --quiet."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from wasmctl.cli._common import SETTINGS

MIN_BYTES = 8 << 20  # smaller blobs move in well under a second: no bar


class TransferBars:
    """A `wasmctl.oci.registry.Progress` drawing one bar per blob of 8 MiB or more."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def start(self, key: str, label: str, total: int) -> None:
        if total < MIN_BYTES:
            return
        if self._progress is None:
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


def transfer_progress() -> TransferBars | None:
    """Bars when stderr is a terminal and --quiet is off; otherwise None (no output)."""
    if SETTINGS.quiet or not sys.stderr.isatty():
        return None
    return TransferBars()
