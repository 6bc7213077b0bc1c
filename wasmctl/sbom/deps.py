"""What a module was built from, as recorded inside it.

- Rust: cargo-auditable (>= 0.6.3 for Wasm) writes a custom section `.dep-v0` holding the
  zlib-compressed JSON `VersionInfo` (`{"format"?, "packages": [{name, version, source,
  kind?, dependencies?, root?}]}`, rust-secure-code/cargo-auditable
  cargo-auditable.schema.json). Inflation is bounded (8 MiB, as its PARSING.md advises), the
  dependency indexes must be in range, and there must be exactly one root and no cycle.
- Go: the linker writes no build-info blob for Wasm (golang/go#73741), but the
  `runtime.modinfo` string sits in the data section between the modload sentinels
  `3077af0c9274080241e1c107e6d618e6` and `f932433186182072008242104116d8f2`; its lines are
  `path`, `mod`, `dep`, `=>` and `build`, as `debug.ParseBuildInfo` reads them.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wasmctl._json import loads
from wasmctl.errors import InputError
from wasmctl.wasm._reader import Buffer

DEP_SECTION = ".dep-v0"
MAX_DEP_JSON = 8 << 20
MAX_PACKAGES = 100_000
GO_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
GO_END = bytes.fromhex("f932433186182072008242104116d8f2")
MAX_MODINFO = 1 << 20


class DependencyDataError(InputError):
    """Embedded dependency data that is malformed, or inflates beyond the bound."""


@dataclass(frozen=True)
class CargoPackage:
    """One crate from `.dep-v0`."""

    name: str
    version: str
    source: str
    kind: str
    dependencies: tuple[int, ...]
    root: bool


@dataclass(frozen=True)
class CargoDependencies:
    """The crates a Rust module was built from; `packages[i].dependencies` index into it."""

    format: int
    packages: tuple[CargoPackage, ...]

    @property
    def root(self) -> CargoPackage:
        return next(p for p in self.packages if p.root)


def read_cargo_dependencies(payload: bytes | memoryview) -> CargoDependencies:
    """Inflate (bounded) and check a `.dep-v0` payload."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(payload, MAX_DEP_JSON + 1)
    except zlib.error as e:
        raise DependencyDataError(f"{DEP_SECTION}: not zlib data ({e})") from None
    if len(raw) > MAX_DEP_JSON or inflater.unconsumed_tail:
        raise DependencyDataError(
            f"{DEP_SECTION}: inflates beyond {MAX_DEP_JSON >> 20} MiB; refused as a "
            "decompression bomb"
        )
    # Depth-bounded: `[[[[...` inflated from a few bytes must be bad input, not a
    # RecursionError.
    data = loads(raw, DEP_SECTION, DependencyDataError)
    if not isinstance(data, Mapping) or not isinstance(data.get("packages"), list):
        raise DependencyDataError(f"{DEP_SECTION}: no package list")
    items = data["packages"]
    if len(items) > MAX_PACKAGES:
        raise DependencyDataError(f"{DEP_SECTION}: more than {MAX_PACKAGES} packages")
    packages = tuple(_package(item, len(items)) for item in items)
    roots = sum(p.root for p in packages)
    if roots != 1:
        raise DependencyDataError(f"{DEP_SECTION}: {roots} root packages, not exactly one")
    _check_acyclic(packages)
    fmt = data.get("format", 0)
    return CargoDependencies(fmt if isinstance(fmt, int) else 0, packages)


def _package(item: Any, count: int) -> CargoPackage:
    if not isinstance(item, Mapping):
        raise DependencyDataError(f"{DEP_SECTION}: a package is not an object")
    name, version = item.get("name"), item.get("version")
    if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
        raise DependencyDataError(f"{DEP_SECTION}: a package without name or version")
    dependencies = item.get("dependencies") or []
    if not isinstance(dependencies, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < count for i in dependencies
    ):
        raise DependencyDataError(f"{DEP_SECTION}: {name}: dependency index out of range")
    source = item.get("source", "registry")
    kind = item.get("kind", "runtime")
    return CargoPackage(
        name=name,
        version=version,
        source=source if isinstance(source, str) else "registry",
        kind=kind if kind in ("runtime", "build") else "runtime",
        dependencies=tuple(dependencies),
        root=item.get("root") is True,
    )


def _check_acyclic(packages: tuple[CargoPackage, ...]) -> None:
    """Iterative three-colour DFS (a deep chain must not exhaust the stack)."""
    state = [0] * len(packages)  # 0 new, 1 on the path, 2 done
    for start in range(len(packages)):
        if state[start]:
            continue
        stack = [(start, 0)]
        state[start] = 1
        while stack:
            node, next_child = stack[-1]
            children = packages[node].dependencies
            if next_child < len(children):
                stack[-1] = (node, next_child + 1)
                child = children[next_child]
                if state[child] == 1:
                    raise DependencyDataError(
                        f"{DEP_SECTION}: dependency cycle through {packages[child].name}"
                    )
                if state[child] == 0:
                    state[child] = 1
                    stack.append((child, 0))
            else:
                state[node] = 2
                stack.pop()


@dataclass(frozen=True)
class GoModule:
    """A Go module: path, version, go.sum hash, and its replacement if any."""

    path: str
    version: str
    sum: str = ""
    replaced_by: GoModule | None = None


@dataclass(frozen=True)
class GoBuildInfo:
    """`runtime.modinfo` of a Go program: main package, modules, build settings."""

    path: str
    main: GoModule | None
    deps: tuple[GoModule, ...]
    settings: tuple[tuple[str, str], ...]
    go_version: str = ""  # the `go` line: the toolchain that built it (`go1.22.1`)


def find_go_build_info(data: Buffer, begin: int = 0, end: int | None = None) -> GoBuildInfo | None:
    """The build info in `data[begin:end]` (a data section), if it holds the modinfo
    sentinels; searched in place, so a large module is not copied."""
    raw = bytes(data[begin:end]) if isinstance(data, memoryview) else data
    if isinstance(data, memoryview):
        begin, end = 0, None
    end = len(raw) if end is None else end
    start = raw.find(GO_START, begin, end)
    if start < 0:
        return None
    stop = raw.find(GO_END, start + len(GO_START), min(end, start + len(GO_START) + MAX_MODINFO))
    if stop < 0:
        return None
    text = bytes(raw[start + len(GO_START) : stop]).decode("utf-8", errors="replace")
    return parse_go_build_info(text)


def parse_go_build_info(text: str) -> GoBuildInfo:
    """Parse modinfo lines (tab-separated, as debug.ParseBuildInfo does)."""
    path = ""
    main: GoModule | None = None
    deps: list[GoModule] = []
    settings: list[tuple[str, str]] = []
    go_version = ""
    for line in text.splitlines():
        word, _, rest = line.partition("\t")
        fields = rest.split("\t")
        if word == "go":
            go_version = rest.strip()
        elif word == "path":
            path = rest
        elif word == "mod" and fields and fields[0]:
            main = _go_module(fields)
        elif word == "dep" and fields and fields[0]:
            deps.append(_go_module(fields))
        elif word == "=>" and fields and fields[0]:
            replacement = _go_module(fields)
            if deps:
                last = deps[-1]
                deps[-1] = GoModule(last.path, last.version, last.sum, replacement)
            elif main is not None:
                main = GoModule(main.path, main.version, main.sum, replacement)
        elif word == "build":
            key, _, value = rest.partition("=")
            if key:
                settings.append((key, value))
    return GoBuildInfo(path, main, tuple(deps), tuple(settings), go_version)


def _go_module(fields: list[str]) -> GoModule:
    version = fields[1] if len(fields) > 1 else ""
    checksum = fields[2] if len(fields) > 2 else ""
    return GoModule(fields[0], version, checksum)
