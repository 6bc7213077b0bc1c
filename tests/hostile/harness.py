"""Running wasmctl as a subprocess under hostile input, bounded and watched.

Every hostile case runs the real command line in a child process with resource limits
(address space, CPU seconds, file size, and a wall-clock kill), in a sandbox directory, and
checks what a user must be able to rely on:
- the exit code is the one DESIGN.md §1 gives (never 4 for a user's input, 1 only for a verdict);
- no traceback reaches stderr;
- nothing was written outside the directories the command was asked to write to.

The limits are a safety net, not a timed assertion: a case that runs into one fails with the
limit named (killed by a signal, or MemoryError), which is the defect the case looks for.
"""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MEMORY_LIMIT = 1536 << 20  # address space: Python, httpx, cryptography and sigstore fit well
CPU_SECONDS = 60
WALL_SECONDS = 90.0
FILE_SIZE_LIMIT = 256 << 20  # no hostile case needs to write more than this


@dataclass
class Outcome:
    """What a bounded run of wasmctl did."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    written_outside: list[str] = field(default_factory=list)

    def explain(self) -> str:
        return (
            f"wasmctl {' '.join(self.argv)} exited {self.returncode}\n"
            f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-4000:]}"
        )


def _limits(memory: int, cpu: int, fsize: int, umask: int | None) -> None:
    if umask is not None:
        os.umask(umask)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def snapshot(roots: Iterable[Path]) -> dict[str, tuple[int, int]]:
    """Every file under `roots` with its size and mtime, to see what a run changed."""
    seen: dict[str, tuple[int, int]] = {}
    for root in roots:
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in filenames + dirnames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                # a directory counts by its existence: files made and removed in it change
                # its mtime, and a removed temporary file is no trace
                seen[path] = (0, 0) if stat.S_ISDIR(st.st_mode) else (st.st_size, st.st_mtime_ns)
    return seen


def run_bounded(
    argv: Sequence[str],
    *,
    sandbox: Path,
    may_write: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    memory: int = MEMORY_LIMIT,
    cpu: int = CPU_SECONDS,
    wall: float = WALL_SECONDS,
    fsize: int = FILE_SIZE_LIMIT,
    umask: int | None = None,
) -> Outcome:
    """Run `wasmctl ARGV` in `sandbox` (its cwd, HOME and TMPDIR) under resource limits.

    Files may change only under `may_write` (paths inside the sandbox); anything else that
    appears or changes in the sandbox is reported in `written_outside`. TMPDIR lives in the
    sandbox too, so a temporary file left behind is caught.
    """
    sandbox.mkdir(parents=True, exist_ok=True)
    home = sandbox / ".home"
    tmp = sandbox / ".tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    child_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "DOCKER_CONFIG": str(home / ".docker"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "NO_COLOR": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    before = snapshot([sandbox])
    proc = subprocess.run(
        [sys.executable, "-m", "wasmctl", *argv],
        cwd=sandbox,
        env=child_env,
        input=stdin,
        capture_output=True,
        timeout=wall,
        preexec_fn=lambda: _limits(memory, cpu, fsize, umask),
        check=False,
    )
    after = snapshot([sandbox])
    allowed = [str(p) for p in may_write]
    changed = [
        path
        for path, stat in after.items()
        if before.get(path) != stat
        and not any(path == a or path.startswith(a.rstrip("/") + "/") for a in allowed)
        and not path.startswith(str(home))
    ]
    return Outcome(
        list(argv),
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
        sorted(changed),
    )


def expect(outcome: Outcome, code: int, *, says: str | None = None) -> None:
    """The run exited `code`, cleanly: no traceback, no MemoryError, nothing stray written,
    and (when given) its output (the error on stderr, or a report on stdout) names `says`."""
    assert outcome.returncode == code, outcome.explain()
    assert "Traceback" not in outcome.stderr, outcome.explain()
    assert "MemoryError" not in outcome.stderr, outcome.explain()
    assert "internal error" not in outcome.stderr, outcome.explain()
    assert not outcome.written_outside, f"wrote {outcome.written_outside}\n{outcome.explain()}"
    if says is not None:
        shown = (outcome.stderr + outcome.stdout).lower()
        assert says.lower() in shown, outcome.explain()
