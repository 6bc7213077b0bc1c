"""Opening input files safely: regular files only, and small ones with a size bound.

A path a user or an artifact names may be a FIFO (opening it blocks until a writer comes),
`/dev/zero` or `/dev/urandom` (endless), a directory, or a link to any of these. Every input
file wasmctl reads goes through `open_regular`: it opens without blocking, checks what the
descriptor really is (after links are followed, so a link cannot swap the target between a
check and the open), and refuses anything but a regular file.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from wasmctl.errors import InputError, WasmctlError


@contextlib.contextmanager
def open_regular(
    path: str | os.PathLike[str], what: str, error: type[WasmctlError] = InputError
) -> Iterator[io.BufferedReader]:
    """`path` opened for reading, if it is a regular file; else `error` naming `what`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _kind(mode)
            raise error(
                f"{what} {path} is {kind}, not a regular file",
                hint="give the path of an ordinary file",
            )
        # reads of a regular file never block; clear O_NONBLOCK all the same, for clarity
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        f = open(fd, "rb")  # noqa: SIM115 (closed by the `with` below)
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def read_limited(
    path: str | os.PathLike[str], limit: int, what: str, error: type[WasmctlError] = InputError
) -> bytes:
    """The bytes of regular file `path`, refusing one larger than `limit` without reading
    it all. Errors name the file and `what` it should have been ("gate policy", "manifest")."""
    with open_regular(path, what, error) as f:
        try:
            raw = f.read(limit + 1)
        except OSError as e:
            raise error(f"cannot read {what} {path}: {e.strerror or e}") from None
    if len(raw) > limit:
        raise error(f"{what} {path} is larger than {limit} bytes")
    return raw


def create_mode() -> int:
    """The mode a new file gets from `open()`: 0666 less the process umask. Files a user
    asked for (`-o`, archives, pulled modules) follow the umask; keys stay 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def replace_atomically(
    path: Path,
    data: bytes | Callable[[BinaryIO], None],
    *,
    mode: int | None = None,
    fsync: bool = False,
    error: type[WasmctlError] = InputError,
) -> None:
    """Write `path` under a temporary name beside it and rename it into place, so readers
    (and a failed run) see the old file or the new one, never a part. `data` is the bytes,
    or a function that writes them to the file it is given.

    The file gets `mode`, by default `create_mode()`; it is set before the rename, and the
    temporary file is created 0600, so a key or a credential is never readable by others,
    not even for a moment. `fsync` makes the bytes durable before the rename (keys). OS
    errors are `error`s (default `InputError`) naming the path.
    """
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise error(f"cannot write {path}: it is a directory", hint="give a file name")
    if not directory.is_dir():
        raise error(
            f"cannot write {path}: {directory} is not a directory",
            hint="create the directory first, or give another path",
        )
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise error(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
            os.fchmod(f.fileno(), create_mode() if mode is None else mode)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise error(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
