"""The capability taxonomy: which host power an import (or export) stands for.

One table, read top to bottom; the first row that matches wins, so the most specific
patterns come first (`sock_getaddrinfo` is `network.dns` before `sock_*` is
`network.socket`). Interface names are matched with their `@version` suffix stripped, so
`wasi:sockets/tcp@0.2.0` and `wasi:sockets/tcp@0.2.12` are the same row. The table follows
shared/reference/sbom-scan.md §3 (WASI preview1 and 0.2/0.3 interfaces, WasmEdge, proxy-wasm
ABI v0.2.1, Extism, Fastly Compute, wasm-bindgen, Emscripten, Go js/wasm, OPA).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

from wasmctl.wasm.model import ExportEntry, ExternKind, ImportEntry


class Capability(enum.StrEnum):
    """A class of host power. Policies match these names with globs (`network.*`)."""

    NETWORK_SOCKET = "network.socket"
    NETWORK_DNS = "network.dns"
    NETWORK_HTTP_OUT = "network.http-out"
    NETWORK_HTTP_IN = "network.http-in"
    FILESYSTEM = "filesystem"
    STDIO = "stdio"
    ENV = "env"
    CLOCK = "clock"
    RANDOM = "random"
    PROCESS = "process"
    PROCESS_SPAWN = "process.spawn"
    AI_NN = "ai.nn"
    CRYPTO = "crypto"
    SECRETS = "secrets"
    THREADS = "threads"
    HOST_SERVICE = "host.service"
    HOST_JS = "host.js"
    HOST_ABI = "host.abi"
    LINKING = "linking"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CapabilityRule:
    """A row: `module` and `name` globs (name `*` for interfaces) and the class they mean."""

    module: str
    name: str
    capability: Capability


P1 = "wasi_{snapshot_preview1,unstable}"
C = Capability


def _rows(*rows: tuple[str, str, Capability]) -> tuple[CapabilityRule, ...]:
    """Expand `{a,b}` alternatives in module and name patterns into separate rules."""
    out: list[CapabilityRule] = []
    for module, name, capability in rows:
        out.extend(CapabilityRule(m, n, capability) for m in _braces(module) for n in _braces(name))
    return tuple(out)


def _braces(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [p for alt in match.group(1).split(",") for p in _braces(head + alt + tail)]


IMPORT_RULES: tuple[CapabilityRule, ...] = _rows(
    # WASI preview1 (and preview0's `wasi_unstable`), most specific first.
    (P1, "sock_getaddrinfo", C.NETWORK_DNS),
    (P1, "sock_*", C.NETWORK_SOCKET),
    (P1, "{path_*,fd_prestat_*,fd_readdir,fd_filestat_*,fd_allocate,fd_renumber}", C.FILESYSTEM),
    (P1, "{fd_advise,fd_datasync,fd_sync,fd_pread,fd_pwrite,fd_fdstat_set_rights}", C.FILESYSTEM),
    (P1, "fd_*", C.STDIO),
    (P1, "{environ_*,args_*}", C.ENV),
    (P1, "{clock_*,poll_oneoff}", C.CLOCK),
    (P1, "random_get", C.RANDOM),
    (P1, "{proc_exit,proc_raise,sched_yield}", C.PROCESS),
    # wasi-threads
    ("wasi", "thread-spawn", C.THREADS),
    # WASI 0.2 / 0.3 interfaces (module = interface name, version stripped)
    ("wasi:sockets/ip-name-lookup", "*", C.NETWORK_DNS),
    ("wasi:sockets/*", "*", C.NETWORK_SOCKET),
    ("wasi:http/{outgoing-handler,client,handler}", "*", C.NETWORK_HTTP_OUT),
    # wasi:http/types is neutral: servers and clients both import it.
    ("wasi:http/*", "*", C.HOST_SERVICE),
    ("wasi:filesystem/*", "*", C.FILESYSTEM),
    ("wasi:cli/{stdin,stdout,stderr,terminal-*}", "*", C.STDIO),
    ("wasi:cli/environment", "*", C.ENV),
    ("wasi:cli/exit", "*", C.PROCESS),
    ("wasi:clocks/*", "*", C.CLOCK),
    ("wasi:io/poll", "*", C.CLOCK),
    ("wasi:io/{error,streams}", "*", C.STDIO),
    ("wasi:random/*", "*", C.RANDOM),
    ("wasi:nn/*", "*", C.AI_NN),
    ("wasi:crypto/*", "*", C.CRYPTO),
    ("wasi:config/*", "*", C.ENV),
    ("wasi:{keyvalue,blobstore,messaging,logging,sql}/*", "*", C.HOST_SERVICE),
    ("wasi:thread*", "*", C.THREADS),
    ("{spin,fermyon:spin,wasmcloud}:*", "*", C.HOST_SERVICE),
    # WasmEdge plugins
    ("wasi_ephemeral_nn", "*", C.AI_NN),
    ("wasi_ephemeral_crypto_*", "*", C.CRYPTO),
    ("wasmedge_{tensorflow*,stablediffusion,ocr,image,opencvmini,llmc,ffmpeg_*}", "*", C.AI_NN),
    ("wasmedge_httpsreq", "*", C.NETWORK_HTTP_OUT),
    ("wasmedge_process", "*", C.PROCESS_SPAWN),
    ("{wasmedge_*,wasm_bpf}", "*", C.HOST_ABI),
    # proxy-wasm ABI (Envoy, Istio)
    ("env", "{proxy_http_call,proxy_grpc_*,proxy_call_foreign_function}", C.NETWORK_HTTP_OUT),
    ("env", "proxy_log", C.STDIO),
    ("env", "proxy_get_current_time_nanoseconds", C.CLOCK),
    ("env", "proxy_*", C.HOST_ABI),
    # Extism
    ("extism:host/env", "http_*", C.NETWORK_HTTP_OUT),
    ("extism:host/env", "log_*", C.STDIO),
    ("extism:host/env", "config_get", C.ENV),
    ("extism:host/*", "*", C.HOST_ABI),
    ("env", "extism_*", C.HOST_ABI),
    # Fastly Compute
    ("fastly_http_req", "send*", C.NETWORK_HTTP_OUT),
    ("fastly_backend", "*", C.NETWORK_HTTP_OUT),
    ("fastly_log", "*", C.STDIO),
    ("fastly_config_store", "*", C.ENV),
    ("fastly_secret_store", "*", C.SECRETS),
    ("fastly_{kv_store,object_store,cache,http_cache}", "*", C.HOST_SERVICE),
    ("fastly_*", "*", C.HOST_ABI),
    # waPC (Kubewarden), OPA, hyperlight
    ("wapc", "*", C.HOST_ABI),
    ("env", "opa_*", C.HOST_ABI),
    ("hyperlight:*", "*", C.HOST_ABI),
    # Dynamic linking (tool-conventions DynamicLinking.md)
    ("GOT.{mem,func}", "*", C.LINKING),
    ("env", "{__memory_base,__table_base,__stack_pointer,__indirect_function_table}", C.LINKING),
    # JavaScript hosts: Go js/wasm, wasm-bindgen, Emscripten
    ("{gojs,go}", "*", C.HOST_JS),
    ("{wbg,__wbindgen_placeholder__,__wbindgen_externref_xform__}", "*", C.HOST_JS),
    ("./*", "*", C.HOST_JS),
    ("env", "__syscall_{socket,connect,bind,listen,accept4,sendto,recvfrom}", C.NETWORK_SOCKET),
    ("env", "__syscall_{sendmsg,recvmsg,shutdown,socketpair}", C.NETWORK_SOCKET),
    ("env", "__syscall_{getsockname,getpeername,getsockopt,setsockopt}", C.NETWORK_SOCKET),
    ("env", "__syscall_*", C.HOST_JS),
    ("env", "{emscripten_*,_emscripten_*,invoke_*,_*_js,__cxa_*,abort}", C.HOST_JS),
)

EXPORT_RULES: tuple[CapabilityRule, ...] = _rows(
    ("wasi:http/{incoming-handler,handler}", "", C.NETWORK_HTTP_IN),
    ("proxy_on_request_*", "", C.NETWORK_HTTP_IN),
    ("proxy_on_http_call_response", "", C.NETWORK_HTTP_IN),
)

_VERSION_SUFFIX = re.compile(r"@[0-9A-Za-z.+-]*$")
_CUSTOM_INTERFACE = re.compile(r"[a-z][a-z0-9-]*:[a-z][a-z0-9-]*/[^/]+$")
_PREVIEW1_MODULES = frozenset(("wasi_snapshot_preview1", "wasi_unstable"))

PREVIEW1_STANDARD = frozenset(
    (
        "args_get",
        "args_sizes_get",
        "environ_get",
        "environ_sizes_get",
        "clock_res_get",
        "clock_time_get",
        "fd_advise",
        "fd_allocate",
        "fd_close",
        "fd_datasync",
        "fd_fdstat_get",
        "fd_fdstat_set_flags",
        "fd_fdstat_set_rights",
        "fd_filestat_get",
        "fd_filestat_set_size",
        "fd_filestat_set_times",
        "fd_pread",
        "fd_prestat_get",
        "fd_prestat_dir_name",
        "fd_pwrite",
        "fd_read",
        "fd_readdir",
        "fd_renumber",
        "fd_seek",
        "fd_sync",
        "fd_tell",
        "fd_write",
        "path_create_directory",
        "path_filestat_get",
        "path_filestat_set_times",
        "path_link",
        "path_open",
        "path_readlink",
        "path_remove_directory",
        "path_rename",
        "path_symlink",
        "path_unlink_file",
        "poll_oneoff",
        "proc_exit",
        "proc_raise",
        "sched_yield",
        "random_get",
        "sock_accept",
        "sock_recv",
        "sock_send",
        "sock_shutdown",
    )
)
"""The 46 functions of `wasi_snapshot_preview1` (WASI witx); any other name is a host extension."""


def strip_version(name: str) -> str:
    """`wasi:sockets/tcp@0.2.0` -> `wasi:sockets/tcp`; other names are returned unchanged."""
    return _VERSION_SUFFIX.sub("", name)


def is_preview1(entry: ImportEntry) -> bool:
    """True for an import from WASI preview1 (or preview0)."""
    return entry.module in _PREVIEW1_MODULES


def classify_import(entry: ImportEntry) -> Capability:
    """The capability an import stands for."""
    if entry.kind in (ExternKind.MODULE, ExternKind.COMPONENT):
        return Capability.LINKING  # unbundled: code that is not in this artifact
    if entry.kind is ExternKind.MEMORY:
        return Capability.THREADS if entry.shared else Capability.LINKING
    if entry.kind is ExternKind.TABLE:
        return Capability.LINKING
    module = strip_version(entry.module)
    rule = _first_import_rule(module, entry.name)
    if rule is not None:
        return rule.capability
    if _CUSTOM_INTERFACE.match(module) and not module.startswith("wasi:"):
        return Capability.HOST_ABI  # a custom `ns:pkg/iface` interface of some host
    return Capability.UNKNOWN


def _glob_regex(pattern: str) -> str:
    """The table's globs use only `*` and `?` (braces are expanded by `_rows`)."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


def _is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


# Rows by the literal module they name, and the rows whose module is a glob by the glob's
# first character (no row's module starts with a wildcard): the rows that can match a
# module are found without trying the other hundred and more.
_ROWS_BY_MODULE: dict[str, list[int]] = {}
_GLOB_ROWS_BY_FIRST: dict[str, list[int]] = {}
for _i, _rule in enumerate(IMPORT_RULES):
    if _is_glob(_rule.module):
        _GLOB_ROWS_BY_FIRST.setdefault(_rule.module[0], []).append(_i)
    else:
        _ROWS_BY_MODULE.setdefault(_rule.module, []).append(_i)


@lru_cache(maxsize=4096)
def _rows_for_module(module: str) -> re.Pattern[str] | None:
    """The name patterns of the rows that match `module`, in table order, as one regex
    with a group per row (named by row index); None when no row matches the module."""
    rows = sorted(
        [
            *_ROWS_BY_MODULE.get(module, ()),
            *(
                i
                for i in _GLOB_ROWS_BY_FIRST.get(module[:1], ())
                if fnmatchcase(module, IMPORT_RULES[i].module)
            ),
        ]
    )
    return _name_regex(tuple(rows)) if rows else None


@lru_cache(maxsize=1024)
def _name_regex(rows: tuple[int, ...]) -> re.Pattern[str]:
    # A full match takes the first alternative that matches: the first row, as the table
    # is read.
    return re.compile(
        "|".join(f"(?P<r{i}>{_glob_regex(IMPORT_RULES[i].name)})" for i in rows), re.DOTALL
    )


def _first_import_rule(module: str, name: str) -> CapabilityRule | None:
    """The first row of the table matching `module` (version stripped) and `name`: two
    cached lookups and one regex match, where a scan of 200,000 imports used to try every
    row with two glob matches each."""
    names = _rows_for_module(module)
    match = None if names is None else names.fullmatch(name)
    if match is None or match.lastgroup is None:
        return None
    return IMPORT_RULES[int(match.lastgroup[1:])]


def classify_export(entry: ExportEntry) -> Capability | None:
    """The capability an export offers to the host (`network.http-in`), if any."""
    name = strip_version(entry.name)
    for rule in EXPORT_RULES:
        if fnmatchcase(name, rule.module):
            return rule.capability
    return None
