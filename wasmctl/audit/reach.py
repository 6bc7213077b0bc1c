"""The reachability hint (issue 14, item 3): whether the functions an advisory names are in
a module, read from the module's `name` section.

A finding says "this package, at this version, is affected". Where the advisory also names
the affected functions (RustSec's `affected[].ecosystem_specific.affects.functions`, Go's
`affected[].ecosystem_specific.imports[].{path, symbols}`), the module's function names say
whether any of them was linked in. The verdict (`hint`) is:

- `unknown`: the module keeps no function names (stripped, a component, or a malformed
  `name` section: a partial list could make `absent` lie), or none of its language (a
  section naming only imports, or no Rust path for a crate, no `runtime.` function for a Go
  module: every Go program links its runtime), or the advisory lists nothing;
- `present`: at least one listed function (or what it names, see below) is in the module;
- `absent`: none is.

**Rust.** Names are mangled (legacy `_ZN...17h<hash>E`, v0 `_R...`) or were demangled on the
way: wasm-ld writes names through `llvm::demangle` unless told `--no-demangle`
(lld/wasm/SyntheticSections.cpp, `NameSection::writeBody`), whose Itanium demangler leaves
Rust's legacy `$LT$`/`..` escapes in place (they are decoded here), and other tools write
rustc-demangle's form. Every name is read as one or more paths, hash and linker suffixes
(`.llvm.123`) dropped and generic arguments removed from every segment:

- `<Type as Trait>::method` and legacy `module::<impl Trait for Type>::method` count as
  `Type::method` and as `Trait::method` (and the latter also as `module::method`);
- v0 `<Type>::method` (an inherent impl) counts as `Type::method`.

A listed path `krate::a::b::item` is present when some path of the module starts with the
crate `krate` (a `-` in the listed crate read as `_`) and holds the listed segments after it
*in order, not necessarily adjacent*. So a closure, a nested function or a generic instance
of a listed function counts (`regex::Regex::new::{{closure}}`, `Vec<T>::push`), every method
of a listed type counts (`lock_api::MappedMutexGuard` names a type), and a public re-export
path finds the definition (`regex::Regex::new` is defined as `regex::re_unicode::Regex::new`;
`tokio::task::JoinHandle::abort` as `tokio::runtime::task::join::JoinHandle::abort`).
Segments compare whole: `time::now` is not `time::now_local`.

**Go.** The Go linker writes each function's symbol name with every character outside
`[A-Za-z0-9_.]` replaced by `_` (cmd/link/internal/wasm/asm.go, `nameRegexp`, since Go 1.11),
so `net/http.(*Server).Serve` is `net_http.__Server_.Serve`. A listed `{path, symbols}` is
compared in that form: the symbol `Parse` of `golang.org/x/net/html` is present as
`golang.org_x_net_html.Parse`, its closures (`Parse.func1`, `.deferwrap1`, `.gowrap1`) and
generic instances (`Parse[go.shape.int]`); `Tokenizer.Next` is present through a value or a
pointer receiver (`__Tokenizer_.Next`), with shaped type arguments, and as a method value
(`-fm`); `init#1` is the function `init.1`. A path with no symbols lists the whole package:
any function of it counts. A package path whose last element holds a dot is tried both as
written and with that dot escaped as Go's `objabi.PathToPrefix` escapes it (`yaml%2ev2`).

**A hint, not a proof.** `absent` can be wrong, which is why it never hides a finding unless
the user asks for it:
- inlined functions have no name of their own (LTO, `#[inline]`, generics instantiated into
  their callers, Go's inliner), and neither do macros (`cxx::let_cxx_string`) or functions
  evaluated at compile time;
- `wasm-opt` may merge identical functions under one name, and a stripping tool may keep
  some names and drop others;
- an advisory may name a path of another crate that re-exports it (`aes_gcm::AeadInPlace` is
  `aead::AeadInPlace`), or something that is not a function at all.

And `present` means "linked in", not "called": the names show what the linker kept, not
which calls the program makes.

**Demangling.** The PyPI package `rust-demangler` (1.0, a 2021 transliteration of the
rustc-demangle crate, one release and no upkeep since) was judged on rustc-demangle's own
test vectors and on hostile input, and not used: it prints v0 closures as `{closure:#0}`,
rejects const-generic string values, raises IndexError, TypeError or RecursionError on
truncated or deeply nested symbols (`_ZN`, `_RN`, a hundred thousand `R`), writes to stdout
on some inputs, keeps state in module globals and has no type hints. This module has its
own demangler, written from the grammars (legacy: length-prefixed identifiers with `$..$`
escapes; v0: rust-lang RFC 2603 with its later additions: const generics, pattern types,
associated-item bindings in `dyn`). It prints what rustc-demangle's alternate form (`{:#}`)
prints, and is bounded: names over `MAX_SYMBOL` characters are not demangled, nesting stops
at `MAX_DEPTH`, and the output may not grow past a budget proportional to the input, so
backrefs cannot make it explode. A name it cannot read is matched as written.
"""

from __future__ import annotations

import bisect
import enum
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from wasmctl.audit.osv import Affected
from wasmctl.errors import WasmParseError
from wasmctl.wasm._reader import Reader

FUNCTION_NAMES = 1  # the `name` section's function-names subsection (module 0, locals 2)
MAX_FUNCTION_NAMES = 1 << 24  # and never more than the payload's bytes could hold
MAX_SYMBOL = 16 << 10  # longer names are matched as written, not demangled
MAX_DEPTH = 128  # nesting of paths, types and constants in one v0 symbol
MAX_OUTPUT = 64 << 10  # characters one demangled name may reach (and 32 per mangled one)
MAX_PUNYCODE = 1 << 10  # characters of one Unicode identifier in a v0 symbol
MAX_FOUND = 5  # names shown in `Reach.found`
MAX_SHOWN = 300  # characters of one name shown


class Reachability(enum.StrEnum):
    """Whether an advisory's listed functions are in a module (see the module docstring)."""

    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Reach:
    """The hint for one advisory's entry and one module."""

    verdict: Reachability
    listed: tuple[str, ...]  # as the advisory writes them; Go's as `path.Symbol`
    found: tuple[str, ...]  # the module's names that matched (demangled), at most MAX_FOUND


def function_names(payload: bytes) -> frozenset[str]:
    """The function names of a `name` section payload (every subsection 1: a vector of
    (function index, name)); names that are not UTF-8 are read with U+FFFD replacing what
    is not. Other subsections are skipped by their size.

    A payload that is not well formed raises `WasmParseError` (offsets are within the
    payload): the names before the fault are not returned, since a partial list would make
    a hint say `absent` about functions the module has.
    """
    r = Reader(payload)
    names: set[str] = set()
    while not r.at_end():
        subsection = r.byte()
        body = r.sub(r.uleb())
        if subsection != FUNCTION_NAMES:
            continue
        for _ in range(body.count("function names", MAX_FUNCTION_NAMES, 2)):
            body.uleb()  # the function index
            names.add(body.bytes(body.uleb()).decode("utf-8", errors="replace"))
        if not body.at_end():
            raise body.error("trailing bytes after the function names")
    return frozenset(names)


class FunctionNames:
    """A module's function names prepared for matching: built once per module, asked by
    every advisory. Rust names are demangled the first time a crate is asked for, and only
    those that can belong to it; Go names are sorted once for prefix look-ups."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(sorted(set(names)))
        self._paths: dict[str, _RustName | None] = {}
        self._crates: dict[str, list[_RustName]] = {}
        self._go: list[str] | None = None
        self._languages: dict[str, bool] = {}

    @classmethod
    def of(cls, payload: bytes | None) -> FunctionNames | None:
        """The names in a `name` section payload (`ModuleFacts.name_section`); None when
        there is no section, it names no function, or it is not well formed: all three
        prove nothing (an engine ignores a broken custom section, and so does the audit)."""
        if payload is None:
            return None
        try:
            names = function_names(payload)
        except WasmParseError:
            return None
        return cls(names) if names else None

    def __len__(self) -> int:
        return len(self.names)

    def name_code_of(self, ecosystem: str) -> bool:
        """Whether any name is of the ecosystem's language: a Rust path for crates.io, a
        function of the Go runtime for Go. Without one, no listed function can be absent."""
        if ecosystem not in self._languages:
            if ecosystem == "crates.io":
                known = any(self._rust_name(raw) for raw in self.names if _maybe_rust(raw))
            elif ecosystem == "Go":
                known = any(raw.startswith("runtime.") for raw in self.names)
            else:
                known = False
            self._languages[ecosystem] = known
        return self._languages[ecosystem]

    def rust(self, path: tuple[str, ...]) -> list[str]:
        """The names holding the listed Rust `path` (crate first), demangled."""
        crate, tail = path[0], path[1:]
        if crate not in self._crates:
            self._crates[crate] = self._rust_names(crate)
        return [
            name.shown
            for name in self._crates[crate]
            if any(key[0] == crate and _in_order(tail, key[1:]) for key in name.keys)
        ]

    def _rust_names(self, crate: str) -> list[_RustName]:
        """The names with a path in `crate`, each demangled once however many crates ask."""
        found = []
        for raw in self.names:
            if crate not in raw:  # a crate's name is spelled out in every form of its paths
                continue
            name = self._rust_name(raw)
            if name is not None and any(key[0] == crate for key in name.keys):
                found.append(name)
        return found

    def _rust_name(self, raw: str) -> _RustName | None:
        if raw not in self._paths:
            self._paths[raw] = _RustName.read(raw)
        return self._paths[raw]

    def go(self, package: str, symbol: re.Pattern[str] | None) -> list[str]:
        """The names of functions of `package` (in the linker's form) whose rest matches
        `symbol`; any function of the package when `symbol` is None."""
        if self._go is None:
            self._go = sorted({_go_name(n) for n in self.names if "::" not in n})
        prefix = package + "."
        found = []
        i = bisect.bisect_left(self._go, prefix)
        while i < len(self._go) and self._go[i].startswith(prefix):
            if symbol is None or symbol.match(self._go[i], len(prefix)):
                found.append(self._go[i])
            i += 1
        return found


def hint(affected: Affected, names: FunctionNames | None) -> Reach:
    """Whether the functions `affected` lists are among `names` (see the module docstring
    for the rules); `names` is None when the module keeps no function names."""
    listed, find = _listing(affected)
    if not listed or names is None:
        return Reach(Reachability.UNKNOWN, listed, ())
    found = sorted({_shown(name) for name in find(names)})
    if found:
        return Reach(Reachability.PRESENT, listed, tuple(found[:MAX_FOUND]))
    if not names.name_code_of(affected.ecosystem):
        return Reach(Reachability.UNKNOWN, listed, ())
    return Reach(Reachability.ABSENT, listed, ())


_Finder = Callable[[FunctionNames], Iterator[str]]


def _listing(affected: Affected) -> tuple[tuple[str, ...], _Finder]:
    """What `affected` lists (as written) and how to find it among a module's names."""
    if affected.ecosystem == "crates.io":
        paths = dict(_rust_listed(affected.ecosystem_specific))

        def find_rust(names: FunctionNames) -> Iterator[str]:
            for path in paths.values():
                yield from names.rust(path)

        return tuple(paths), find_rust
    if affected.ecosystem == "Go":
        symbols = {
            listed: (packages, symbol)
            for listed, packages, symbol in _go_listed(affected.ecosystem_specific)
        }

        def find_go(names: FunctionNames) -> Iterator[str]:
            for packages, symbol in symbols.values():
                # compiled only when there are names to look in (0.6 ms a pattern)
                pattern = _go_symbol(symbol) if symbol is not None else None
                for package in packages:
                    yield from names.go(package, pattern)

        return tuple(symbols), find_go
    return (), lambda names: iter(())


def _shown(name: str) -> str:
    return name if len(name) <= MAX_SHOWN else name[: MAX_SHOWN - 1] + "…"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# -- Rust ---------------------------------------------------------------------------------


def _rust_listed(specific: Mapping[str, Any]) -> Iterator[tuple[str, tuple[str, ...]]]:
    affects = specific.get("affects")
    functions = affects.get("functions") if isinstance(affects, Mapping) else None
    for listed in _list(functions):
        if isinstance(listed, str) and len(listed) <= MAX_SYMBOL:
            path = _listed_path(listed)
            if path:
                yield listed, path


def _listed_path(listed: str) -> tuple[str, ...]:
    """`diesel::deserialize::FromSql::<Text,Sqlite>::from_sql` -> (diesel, deserialize,
    FromSql, from_sql): generic arguments dropped, the crate spelled as in paths."""
    segments = [s.split("<", 1)[0].strip() for s in _segments(listed) if not s.startswith("<")]
    segments = [s for s in segments if s]
    if segments:
        segments[0] = segments[0].replace("-", "_")
    return tuple(segments)


def _in_order(needle: tuple[str, ...], haystack: tuple[str, ...]) -> bool:
    """Whether `haystack` holds every segment of `needle`, in order, gaps allowed."""
    rest = iter(haystack)  # `in` consumes it: each segment is looked for after the last
    return all(segment in rest for segment in needle)


_HASH = re.compile(r"h[0-9a-f]{16}")
_LEGACY_ESCAPE = re.compile(r"\$(?:SP|BP|RF|LT|GT|LP|RP|C|u[0-9a-f]{1,6})\$")
_MAX_KEYS = 16
_MAX_QUALIFIED = 8  # `<<A as B>::C as D>`: qualified self types nested this deep are read


def _maybe_rust(raw: str) -> bool:
    return raw.startswith(("_ZN", "_R")) or "::" in raw


@dataclass(frozen=True)
class _RustName:
    """A Rust function name: how it is shown, and the paths it counts as."""

    shown: str
    keys: tuple[tuple[str, ...], ...]

    @classmethod
    def read(cls, raw: str) -> _RustName | None:
        if len(raw) > MAX_SYMBOL:
            return None
        text = demangle(raw) if raw.startswith(("_ZN", "_R")) else None
        if text is None:
            if "::" not in raw:
                return None  # not a Rust path: C, Go, a mangled name that did not demangle
            text = _decode_escapes(raw) if _LEGACY_ESCAPE.search(raw) else raw
        segments = _segments(text)
        if len(segments) > 1 and _HASH.fullmatch(segments[-1]):
            segments = segments[:-1]
        keys = _keys(segments, 0)
        if not keys:
            return None
        return cls(_shown("::".join(segments)), tuple(keys))


def _decode_escapes(text: str) -> str:
    """A legacy name demangled by an Itanium demangler: `_$LT$T$u20$as$u20$a..B$GT$::f`."""
    return "::".join(_legacy_identifier(part, strict=False) for part in text.split("::"))


_PATH_TOKENS = re.compile(r"->|::| \(\.|[<([{}\])>.]")


def _segments(text: str) -> list[str]:
    """The top-level `::` segments of a demangled path, up to a linker suffix (`.llvm.1`,
    `.exit`, LLVM's ` (.llvm.1)`: Rust identifiers have no dots); [] when its brackets do not
    balance."""
    segments = []
    depth = start = 0
    end = len(text)
    for token in _PATH_TOKENS.finditer(text):
        c = token.group()
        if c in "<([{":
            depth += 1
        elif c in ">)]}":
            depth -= 1
            if depth < 0:
                return []
        elif depth == 0 and c == "::":
            segments.append(text[start : token.start()])
            start = token.end()
        elif depth == 0 and c != "->":  # `.` or ` (.`: a suffix
            end = token.start()
            break
    if depth:
        return []
    segments.append(text[start:end])
    return [s.strip() for s in segments]


def _keys(segments: list[str], depth: int) -> list[tuple[str, ...]]:
    """The paths a demangled name counts as (see the module docstring)."""
    keys: list[tuple[str, ...]] = [()]
    for i, segment in enumerate(segments):
        if segment.startswith("<") and segment.endswith(">"):
            inner = segment[1:-1].strip()
            if i == 0:
                keys = _qualified(inner, depth)
            elif inner.startswith("impl "):
                keys = [*_qualified(inner, depth), *keys]
            # else: `::<T>`, a function's generic arguments
        else:
            name = segment.split("<", 1)[0].strip()
            if name:
                keys = [(*key, name) for key in keys]
        keys = keys[:_MAX_KEYS]
    return [key for key in keys if key]


def _qualified(inner: str, depth: int) -> list[tuple[str, ...]]:
    """The paths of `<Type as Trait>`, `<Type>` or legacy `<impl Trait for Type>`."""
    if depth >= _MAX_QUALIFIED:
        return []
    if inner.startswith("impl "):
        trait, self_type = _split_word(inner[5:], " for ") or ("", inner[5:])
    else:
        self_type, trait = _split_word(inner, " as ") or (inner, "")
    paths = []
    self_path = _self_path(self_type)
    if self_path:
        paths += _keys(_segments(self_path), depth + 1)
    if trait:
        paths += _keys(_segments(trait), depth + 1)
    return paths


def _split_word(text: str, word: str) -> tuple[str, str] | None:
    depth = 0
    for i, c in enumerate(text):
        if c in "<([{":
            depth += 1
        elif c in ")]}" or (c == ">" and text[i - 1 : i] != "-"):
            depth -= 1
        elif depth == 0 and c == word[0] and text.startswith(word, i):
            return text[:i].strip(), text[i + len(word) :].strip()
    return None


_NOT_A_PATH = re.compile(r"[\[(]|fn\b|unsafe\b|extern\b")
_REFERENCE = re.compile(r"(?:&(?:'\w+ )?(?:mut )?|\*const |\*mut |dyn |impl )+")


def _self_path(self_type: str) -> str:
    """The path of an impl's self type (`&'a mut Vec<T>` -> `Vec<T>`); "" for a slice,
    tuple, array or function type."""
    text = _REFERENCE.sub("", self_type.strip(), count=1).strip()
    if not text or _NOT_A_PATH.match(text):
        return ""
    plus = _split_word(text, " + ")  # `dyn Error + Send`
    return plus[0] if plus else text


# -- Rust demangling ----------------------------------------------------------------------


def demangle(symbol: str) -> str | None:
    """A Rust symbol, legacy (`_ZN...E`) or v0 (`_R...`), demangled as rustc-demangle's
    alternate form prints it (no hash, no crate disambiguators); None when it is not one or
    cannot be read within the bounds (see the module docstring)."""
    if len(symbol) > MAX_SYMBOL or not symbol.isascii():
        return None
    try:
        if symbol.startswith("_ZN"):
            return _legacy(symbol[3:])
        if symbol.startswith("_R"):
            return _V0(symbol[2:]).demangle()
    except _Malformed:
        return None
    return None


class _Malformed(Exception):
    """A symbol the demangler gives up on (never leaves this module)."""


# what a linker or LLVM appends to a symbol: `.llvm.9D1C9369@@16`, `.exit.i.i`, `.0.0`
_SUFFIX = re.compile(r"(?:[.$][\w.$@]*)?", re.ASCII)
_LEGACY_CODES = {"SP": "@", "BP": "*", "RF": "&", "LT": "<", "GT": ">", "LP": "(", "RP": ")",
                 "C": ","}  # fmt: skip


def _legacy(body: str) -> str:
    """`N` {decimal length, identifier} `E` [suffix], as `_ZN` leaves it."""
    parts = []
    i = 0
    while True:
        if i >= len(body):
            raise _Malformed("no `E` closes the path")
        if body[i] == "E":
            i += 1
            break
        start = i
        while i < len(body) and body[i].isdigit():
            i += 1
        if i == start or i - start > 5:
            raise _Malformed("an identifier without a length")
        end = i + int(body[start:i])
        if end > len(body):
            raise _Malformed("an identifier runs past the end")
        parts.append(body[i:end])
        i = end
    suffix = body[i:]
    if not parts or not _SUFFIX.fullmatch(suffix):
        raise _Malformed("not a Rust path (a C++ name?)")
    if suffix.startswith(".llvm."):
        suffix = ""
    last = parts[-1]
    if len(parts) > 1 and len(last) > 1 and last[0] == "h" and _is_hex(last[1:]):
        parts.pop()
    return "::".join(_legacy_identifier(p, strict=True) for p in parts) + suffix


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _legacy_identifier(text: str, *, strict: bool) -> str:
    """`_$LT$Foo$u20$as$u20$a..B$GT$` -> `<Foo as a::B>`; an unknown escape is an error
    (strict) or kept as written."""
    if text.startswith("_$"):
        text = text[1:]
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "." and text.startswith("..", i):
            out.append("::")
            i += 2
            continue
        if c == "$":
            end = text.find("$", i + 1)
            code = text[i + 1 : end] if end > 0 else ""
            decoded = _LEGACY_CODES.get(code)
            if decoded is None and code[:1] == "u" and 1 < len(code) <= 7 and _is_hex(code[1:]):
                point = int(code[1:], 16)
                if point <= 0x10FFFF and not 0xD800 <= point <= 0xDFFF:
                    decoded = chr(point)
            if decoded is not None:
                out.append(decoded)
                i = end + 1
                continue
            if strict:
                raise _Malformed(f"unknown escape ${code}$")
        out.append(c)
        i += 1
    return "".join(out)


_BASIC_TYPES = {"a": "i8", "b": "bool", "c": "char", "d": "f64", "e": "str", "f": "f32",
                "h": "u8", "i": "isize", "j": "usize", "l": "i32", "m": "u32", "n": "i128",
                "o": "u128", "p": "_", "s": "i16", "t": "u16", "u": "()", "v": "...",
                "x": "i64", "y": "u64", "z": "!"}  # fmt: skip
_UNSIGNED = "htmyoj"
_SIGNED = "aslxni"
_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_V0_SYMBOL = re.compile(r"[A-Za-z0-9_]*")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,8}(?![0-9])")


class _V0:
    """One v0 symbol (after `_R`), read and printed in one pass (rust-lang RFC 2603).

    Positions (backrefs) count from just after `_R`; a backref must point before itself, so
    following one always ends. What is parsed but not printed (an impl's parent path, the
    instantiating crate) is read without following backrefs, which keeps that linear.
    """

    def __init__(self, symbol: str) -> None:
        self.text = symbol
        self.pos = 0
        self.depth = 0
        self.lifetimes = 0  # lifetimes bound by the binders around the current position
        self.printing = True
        self.out: list[str] = []
        self.left = min(MAX_OUTPUT, 256 + 32 * len(symbol))

    def demangle(self) -> str:
        match = _V0_SYMBOL.match(self.text)
        core = match.group() if match else ""
        suffix = self.text[len(core) :]
        if not core[:1].isupper():
            raise _Malformed("a v0 path starts with an uppercase tag")
        self.text = core
        self.path(in_value=True)
        if self.peek().isupper():  # the instantiating crate
            self.skipping(lambda: self.path(in_value=False))
        if self.pos != len(core) or not _SUFFIX.fullmatch(suffix):
            raise _Malformed("trailing characters")
        if suffix.startswith(".llvm."):
            suffix = ""
        return "".join(self.out) + suffix

    # -- reading

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def eat(self, c: str) -> bool:
        if self.peek() == c:
            self.pos += 1
            return True
        return False

    def next(self) -> str:
        if self.pos >= len(self.text):
            raise _Malformed("unexpected end")
        c = self.text[self.pos]
        self.pos += 1
        return c

    def decimal(self) -> int:
        """`0`, or digits not starting with 0."""
        match = _DECIMAL.match(self.text, self.pos)
        if match is None:
            raise _Malformed("a bad decimal number")
        self.pos = match.end()
        return int(match.group())

    def base62(self) -> int:
        """`_` is 0, `<digits>_` is their value plus one."""
        if self.eat("_"):
            return 0
        value = 0
        for _ in range(12):
            digit = _BASE62.find(self.next())
            if digit < 0:
                if self.text[self.pos - 1] == "_":
                    return value + 1
                raise _Malformed("a bad base-62 number")
            value = value * 62 + digit
        raise _Malformed("a base-62 number too long")

    def optional_base62(self, tag: str) -> int:
        return self.base62() + 1 if self.eat(tag) else 0

    def disambiguator(self) -> int:
        return self.optional_base62("s")

    def hex_nibbles(self) -> str:
        start = self.pos
        while (c := self.next()) != "_":
            if c not in "0123456789abcdef":
                raise _Malformed("a bad hex digit")
        return self.text[start : self.pos - 1]

    def ident(self) -> str:
        punycode = self.eat("u")
        length = self.decimal()
        self.eat("_")  # separates the length from an identifier starting with a digit or `_`
        end = self.pos + length
        if end > len(self.text):
            raise _Malformed("an identifier runs past the end")
        raw = self.text[self.pos : end]
        self.pos = end
        return _punycode(raw) if punycode else raw

    def backref(self) -> int | None:
        """Where a backref (its `B` just read) points; None when not printing (not followed)."""
        at = self.pos - 1
        target = self.base62()
        if target >= at:
            raise _Malformed("a backref that does not point back")
        return target if self.printing else None

    def at(self, target: int | None, read: Callable[[], object]) -> None:
        if target is not None:
            saved = self.pos
            self.pos = target
            read()
            self.pos = saved

    # -- printing

    def emit(self, text: str) -> None:
        if self.printing:
            self.left -= len(text)
            if self.left < 0:
                raise _Malformed("the demangled name grows past its budget")
            self.out.append(text)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Malformed("nested too deeply")

    def skipping(self, read: Callable[[], object]) -> None:
        printing, self.printing = self.printing, False
        read()
        self.printing = printing

    def sequence(self, item: Callable[[], object], separator: str = ", ") -> int:
        count = 0
        while not self.eat("E"):
            if count:
                self.emit(separator)
            item()
            count += 1
        return count

    def path(self, in_value: bool) -> None:
        self.enter()
        tag = self.next()
        if tag == "C":
            self.disambiguator()
            self.emit(self.ident())
        elif tag == "N":
            namespace = self.next()
            if not namespace.isalpha():
                raise _Malformed("a bad namespace")
            self.path(in_value)
            number = self.disambiguator()
            name = self.ident()
            if namespace.isupper():  # closures, shims, ...: `::{closure#0}`
                kind = {"C": "closure", "S": "shim"}.get(namespace, namespace)
                self.emit(f"::{{{kind}{':' + name if name else ''}#{number}}}")
            elif name:
                self.emit(f"::{name}")
        elif tag in "MXY":  # <T>, <T as Trait> (impls), <T as Trait> (a trait's own item)
            if tag != "Y":
                self.disambiguator()
                self.skipping(lambda: self.path(in_value=False))
            self.emit("<")
            self.type()
            if tag != "M":
                self.emit(" as ")
                self.path(in_value=False)
            self.emit(">")
        elif tag == "I":
            self.path(in_value)
            self.emit("::<" if in_value else "<")
            self.sequence(self.generic_arg)
            self.emit(">")
        elif tag == "B":
            self.at(self.backref(), lambda: self.path(in_value))
        else:
            raise _Malformed(f"a bad path tag {tag!r}")
        self.depth -= 1

    def generic_arg(self) -> None:
        if self.eat("L"):
            self.lifetime(self.base62())
        elif self.eat("K"):
            self.const(in_value=False)
        else:
            self.type()

    def lifetime(self, index: int) -> None:
        if index == 0:
            self.emit("'_")
            return
        depth = self.lifetimes - index
        if depth < 0:
            raise _Malformed("a lifetime no binder introduced")
        self.emit("'" + chr(ord("a") + depth) if depth < 26 else f"'_{depth}")

    def binder(self, read: Callable[[], object]) -> None:
        bound = self.optional_base62("G")
        if bound > len(self.text):
            raise _Malformed("more bound lifetimes than characters")
        if bound and self.printing:
            self.emit("for<")
            for i in range(bound):
                if i:
                    self.emit(", ")
                self.lifetimes += 1
                self.lifetime(1)
            self.emit("> ")
        else:
            self.lifetimes += bound
        read()
        self.lifetimes -= bound

    def type(self) -> None:
        self.enter()
        tag = self.next()
        basic = _BASIC_TYPES.get(tag)
        if basic is not None:
            self.emit(basic)
        elif tag in "RQ":
            self.emit("&")
            if self.eat("L"):
                index = self.base62()
                if index:
                    self.lifetime(index)
                    self.emit(" ")
            if tag == "Q":
                self.emit("mut ")
            self.type()
        elif tag in "PO":
            self.emit("*const " if tag == "P" else "*mut ")
            self.type()
        elif tag == "A":
            self.emit("[")
            self.type()
            self.emit("; ")
            self.const(in_value=True)
            self.emit("]")
        elif tag == "S":
            self.emit("[")
            self.type()
            self.emit("]")
        elif tag == "T":
            self.emit("(")
            if self.sequence(self.type) == 1:
                self.emit(",")
            self.emit(")")
        elif tag == "F":
            self.binder(self.function_signature)
        elif tag == "D":
            self.emit("dyn ")
            self.binder(lambda: self.sequence(self.dyn_trait, " + "))
            if not self.eat("L"):
                raise _Malformed("a dyn type without its lifetime")
            index = self.base62()
            if index:
                self.emit(" + ")
                self.lifetime(index)
        elif tag == "W":  # a pattern type: `u32 is 1..=9`
            self.type()
            self.emit(" is ")
            self.pattern()
        elif tag == "B":
            self.at(self.backref(), self.type)
        elif tag in "CNMXYI":
            self.pos -= 1
            self.path(in_value=False)
        else:
            raise _Malformed(f"a bad type tag {tag!r}")
        self.depth -= 1

    def function_signature(self) -> None:
        unsafe = self.eat("U")
        abi = ""
        if self.eat("K"):
            abi = "C" if self.eat("C") else self.ident().replace("_", "-")
        if unsafe:
            self.emit("unsafe ")
        if abi:
            self.emit(f'extern "{abi}" ')
        self.emit("fn(")
        self.sequence(self.type)
        self.emit(")")
        if not self.eat("u"):
            self.emit(" -> ")
            self.type()

    def dyn_trait(self) -> None:
        opened = self.path_open_generics()
        while self.eat("p"):  # an associated item binding: `Output = T`, `N = 0`
            self.emit(", " if opened else "<")
            opened = True
            self.emit(self.ident() + " = ")
            if self.eat("K"):
                self.const(in_value=False)
            else:
                self.type()
        if opened:
            self.emit(">")

    def path_open_generics(self) -> bool:
        """A trait path whose generic arguments are left open for its bindings."""
        self.enter()
        opened = False
        if self.eat("B"):
            target = self.backref()
            if target is not None:
                saved = self.pos
                self.pos = target
                opened = self.path_open_generics()
                self.pos = saved
        elif self.eat("I"):
            self.path(in_value=False)
            self.emit("<")
            self.sequence(self.generic_arg)
            opened = True
        else:
            self.path(in_value=False)
        self.depth -= 1
        return opened

    def pattern(self) -> None:
        self.enter()
        tag = self.next()
        if tag == "R":
            self.const(in_value=True)
            self.emit("..=")
            self.const(in_value=True)
        elif tag == "O":
            self.sequence(self.pattern, " | ")
        else:
            raise _Malformed(f"a bad pattern tag {tag!r}")
        self.depth -= 1

    def const(self, in_value: bool) -> None:
        """A constant; outside an expression, anything but a literal is put in braces."""
        self.enter()
        tag = self.next()
        literal = tag not in "eRQATV" or (tag == "R" and self.peek() == "e")
        braces = not in_value and not literal
        if braces:
            self.emit("{")
        if tag == "p":
            self.emit("_")
        elif tag in _UNSIGNED:
            self.emit(self.integer())
        elif tag in _SIGNED:
            if self.eat("n"):
                self.emit("-")
            self.emit(self.integer())
        elif tag == "b":
            value = int(self.hex_nibbles() or "0", 16)
            if value > 1:
                raise _Malformed("a bool that is neither 0 nor 1")
            self.emit("true" if value else "false")
        elif tag == "c":
            self.emit(_char_literal(self.hex_nibbles()))
        elif tag == "e":
            self.emit("*" + self.string())
        elif tag in "RQ":
            if tag == "R" and self.eat("e"):
                self.emit(self.string())
            else:
                self.emit("&" if tag == "R" else "&mut ")
                self.const(in_value=True)
        elif tag == "A":
            self.emit("[")
            self.sequence(lambda: self.const(in_value=True))
            self.emit("]")
        elif tag == "T":
            self.emit("(")
            if self.sequence(lambda: self.const(in_value=True)) == 1:
                self.emit(",")
            self.emit(")")
        elif tag == "V":
            self.variant()
        elif tag == "B":
            self.at(self.backref(), lambda: self.const(in_value))
        else:
            raise _Malformed(f"a bad constant tag {tag!r}")
        if braces:
            self.emit("}")
        self.depth -= 1

    def variant(self) -> None:
        self.path(in_value=True)
        kind = self.next()
        if kind == "T":
            self.emit("(")
            self.sequence(lambda: self.const(in_value=True))
            self.emit(")")
        elif kind == "S":
            self.emit(" { ")
            self.sequence(self.field)
            self.emit(" }")
        elif kind != "U":
            raise _Malformed(f"a bad variant kind {kind!r}")

    def field(self) -> None:
        self.disambiguator()
        self.emit(self.ident() + ": ")
        self.const(in_value=True)

    def integer(self) -> str:
        nibbles = self.hex_nibbles()
        significant = nibbles.lstrip("0")
        if len(significant) > 16:
            return "0x" + nibbles
        return str(int(significant or "0", 16))

    def string(self) -> str:
        nibbles = self.hex_nibbles()
        if len(nibbles) % 2:
            raise _Malformed("a string constant of odd length")
        try:
            text = bytes.fromhex(nibbles).decode("utf-8")
        except UnicodeDecodeError:
            raise _Malformed("a string constant that is not UTF-8") from None
        return '"' + "".join(_escape(c, '"') for c in text) + '"'


def _punycode(raw: str) -> str:
    """A v0 Unicode identifier: ASCII characters, `_`, then Punycode deltas (RFC 3492 with
    `_` for its `-`)."""
    if len(raw) > MAX_PUNYCODE:
        raise _Malformed("a Unicode identifier too long")
    ascii_part, separator, deltas = raw.rpartition("_")
    if not deltas:
        raise _Malformed("a Unicode identifier without deltas")
    try:
        text = (ascii_part + "-" + deltas if separator else deltas).encode().decode("punycode")
    except (UnicodeError, ValueError, OverflowError):
        raise _Malformed("bad Punycode") from None
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise _Malformed("a surrogate in an identifier")
    return text


def _char_literal(nibbles: str) -> str:
    if len(nibbles) > 8:
        raise _Malformed("a char constant out of range")
    point = int(nibbles or "0", 16)
    if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
        raise _Malformed("a char constant out of range")
    return "'" + _escape(chr(point), "'") + "'"


_ESCAPES = {"\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\", "\0": "\\0"}


def _escape(c: str, quote: str) -> str:
    """One character of a char or string literal, escaped as Rust's `escape_debug` does."""
    if c in _ESCAPES:
        return _ESCAPES[c]
    if c == quote:
        return "\\" + c
    return c if c.isprintable() else f"\\u{{{ord(c):x}}}"


# -- Go -----------------------------------------------------------------------------------

_GO_UNNAMED = re.compile(r"[^\w.]", re.ASCII)  # cmd/link/internal/wasm's nameRegexp
# `[go.shape.int]` or `[...]` after a generic function or type, in the linker's form
_GO_TYPE_ARGUMENTS = r"(?:_(?:go\.shape\.|\.\.\.)[\w.]*?_)?"


def _go_name(name: str) -> str:
    """A Go symbol as the Go linker writes it into a Wasm `name` section."""
    return _GO_UNNAMED.sub("_", name)


def _go_listed(
    specific: Mapping[str, Any],
) -> Iterator[tuple[str, tuple[str, ...], str | None]]:
    for entry in _list(specific.get("imports")):
        if not isinstance(entry, Mapping):
            continue
        path = entry.get("path")
        if not isinstance(path, str) or not path or len(path) > MAX_SYMBOL:
            continue
        packages = _go_packages(path)
        symbols = [s for s in _list(entry.get("symbols")) if isinstance(s, str) and s]
        if not symbols:
            yield path, packages, None
        for symbol in symbols:
            if len(symbol) <= MAX_SYMBOL:
                yield f"{path}.{symbol}", packages, symbol


def _go_packages(path: str) -> tuple[str, ...]:
    """`gopkg.in/yaml.v2` as symbols name it: written as is, or escaped (`yaml%2ev2`)."""
    head, slash, last = path.rpartition("/")
    escaped = head + slash + last.replace(".", "%2e")
    return tuple(dict.fromkeys((_go_name(path), _go_name(escaped))))


@functools.lru_cache(maxsize=4096)
def _go_symbol(symbol: str) -> re.Pattern[str]:
    """What follows `package.` in the name of `symbol`, its closures and its instances."""
    if "#" in symbol:  # `init#1`: the second `init` function, `init.1`
        function = re.escape(_go_name(symbol.replace("#", ".")))
        return re.compile(function + r"(?:\.|$)", re.ASCII)
    receiver, _, method = symbol.partition(".")
    receiver = re.escape(_go_name(receiver))
    if not method:
        return re.compile(receiver + _GO_TYPE_ARGUMENTS + r"(?:\.|$)", re.ASCII)
    method = re.escape(_go_name(method))
    pointer = "__" + receiver + _GO_TYPE_ARGUMENTS + "_"  # `(*T).M`
    value = receiver + _GO_TYPE_ARGUMENTS
    return re.compile(rf"(?:{pointer}|{value})\.{method}(?:\.|_fm$|$)", re.ASCII)


__all__ = [
    "FunctionNames",
    "Reach",
    "Reachability",
    "demangle",
    "function_names",
    "hint",
]
