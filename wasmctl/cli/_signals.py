"""SIGTERM unwinds like Ctrl-C, so a terminated command cleans up after itself.

Python turns SIGINT into KeyboardInterrupt, and every `finally`, `with` and
`except BaseException` on the way up then removes its `.part` file, temporary directory or
staged layout blobs. SIGTERM (what `kill`, `timeout`, CI cancellation, systemd and Kubernetes
send) kills the process outright by default, leaving them behind. Here it raises
`Terminated` instead, a BaseException like KeyboardInterrupt (so `except Exception` does not
swallow it), and the command line exits 143 (128 + 15), as shells report it.

A second SIGTERM while the first unwinds kills at once (the default action is restored on the
first), for a supervisor that means it.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

EXIT_CODE = 128 + signal.SIGTERM


class Terminated(BaseException):
    """The process received SIGTERM."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated


def install_sigterm_handler() -> None:
    """Make SIGTERM raise `Terminated` in the main thread (elsewhere, leave it alone)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
