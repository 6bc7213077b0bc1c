"""The capability taxonomy (reference/sbom-scan.md §3)."""

from __future__ import annotations

import pytest

from wasmctl.scan.capabilities import (
    PREVIEW1_STANDARD,
    Capability,
    classify_export,
    classify_import,
    strip_version,
)
from wasmctl.wasm.model import ExportEntry, ExternKind, ImportEntry

P1 = "wasi_snapshot_preview1"


def imp(module: str, name: str = "", kind: ExternKind = ExternKind.FUNC, **kw: bool) -> Capability:
    return classify_import(ImportEntry(module, name, kind, 0, **kw))


@pytest.mark.parametrize(
    ("module", "name", "expected"),
    [
        (P1, "sock_getaddrinfo", Capability.NETWORK_DNS),  # more specific than sock_*
        (P1, "sock_accept", Capability.NETWORK_SOCKET),
        (P1, "sock_open", Capability.NETWORK_SOCKET),  # WasmEdge extension
        ("wasi_unstable", "sock_recv", Capability.NETWORK_SOCKET),
        (P1, "path_open", Capability.FILESYSTEM),
        (P1, "fd_prestat_dir_name", Capability.FILESYSTEM),
        (P1, "fd_readdir", Capability.FILESYSTEM),
        (P1, "fd_write", Capability.STDIO),
        (P1, "environ_get", Capability.ENV),
        (P1, "args_sizes_get", Capability.ENV),
        (P1, "clock_time_get", Capability.CLOCK),
        (P1, "poll_oneoff", Capability.CLOCK),
        (P1, "random_get", Capability.RANDOM),
        (P1, "proc_exit", Capability.PROCESS),
        ("wasi", "thread-spawn", Capability.THREADS),
        ("wasi:sockets/ip-name-lookup@0.2.0", "", Capability.NETWORK_DNS),
        ("wasi:sockets/tcp@0.2.12", "", Capability.NETWORK_SOCKET),
        ("wasi:sockets/types@0.3.0-rc-2026-03-15", "", Capability.NETWORK_SOCKET),
        ("wasi:http/outgoing-handler@0.2.0", "", Capability.NETWORK_HTTP_OUT),
        ("wasi:http/client@0.3.0-rc-2026-03-15", "", Capability.NETWORK_HTTP_OUT),
        ("wasi:filesystem/preopens@0.2.0", "", Capability.FILESYSTEM),
        ("wasi:cli/stdout@0.2.0", "", Capability.STDIO),
        ("wasi:cli/environment@0.2.0", "", Capability.ENV),
        ("wasi:cli/exit@0.2.0", "", Capability.PROCESS),
        ("wasi:clocks/monotonic-clock@0.2.0", "", Capability.CLOCK),
        ("wasi:random/insecure-seed@0.2.0", "", Capability.RANDOM),
        ("wasi:nn/graph", "", Capability.AI_NN),
        ("wasi:keyvalue/store@0.2.0-draft", "", Capability.HOST_SERVICE),
        ("wasi_ephemeral_nn", "load", Capability.AI_NN),
        ("wasi_ephemeral_crypto_signatures", "signature_sign", Capability.CRYPTO),
        ("wasmedge_httpsreq", "send_data", Capability.NETWORK_HTTP_OUT),
        ("wasmedge_process", "wasmedge_process_run", Capability.PROCESS_SPAWN),
        ("env", "proxy_http_call", Capability.NETWORK_HTTP_OUT),
        ("env", "proxy_grpc_call", Capability.NETWORK_HTTP_OUT),
        ("env", "proxy_log", Capability.STDIO),
        ("env", "proxy_get_buffer_bytes", Capability.HOST_ABI),
        ("extism:host/env", "http_request", Capability.NETWORK_HTTP_OUT),
        ("extism:host/env", "var_get", Capability.HOST_ABI),
        ("fastly_http_req", "send", Capability.NETWORK_HTTP_OUT),
        ("fastly_secret_store", "get", Capability.SECRETS),
        ("fastly_kv_store", "lookup", Capability.HOST_SERVICE),
        ("fastly_geo", "lookup", Capability.HOST_ABI),
        ("wapc", "__host_call", Capability.HOST_ABI),
        ("env", "opa_builtin0", Capability.HOST_ABI),
        ("gojs", "syscall/js.valueGet", Capability.HOST_JS),
        ("./wasmer_sdk_js_bg.js", "__wbg_new_1", Capability.HOST_JS),
        ("env", "__syscall_connect", Capability.NETWORK_SOCKET),
        ("env", "emscripten_memcpy_big", Capability.HOST_JS),
        ("GOT.mem", "__heap_base", Capability.LINKING),
        ("env", "__memory_base", Capability.LINKING),
        ("acme:billing/ledger@1.0.0", "", Capability.HOST_ABI),
        ("a", "a", Capability.UNKNOWN),  # minified Emscripten
        ("wasi:unheard-of/thing@0.2.0", "", Capability.UNKNOWN),
    ],
)
def test_classification(module: str, name: str, expected: Capability) -> None:
    kind = ExternKind.INSTANCE if not name else ExternKind.FUNC
    assert imp(module, name, kind) is expected


def test_lowered_p2_functions_in_core_modules_take_the_interface_class() -> None:
    assert imp("wasi:sockets/tcp@0.2.10", "[method]tcp-socket.start-connect") is (
        Capability.NETWORK_SOCKET
    )


def test_memories_tables_and_unbundled_imports() -> None:
    assert imp("env", "memory", ExternKind.MEMORY) is Capability.LINKING
    assert imp("env", "memory", ExternKind.MEMORY, shared=True) is Capability.THREADS
    assert imp("env", "table", ExternKind.TABLE) is Capability.LINKING
    assert imp("lib", "", ExternKind.MODULE) is Capability.LINKING
    assert imp("plugin", "", ExternKind.COMPONENT) is Capability.LINKING


def test_http_servers_are_recognised_by_their_exports() -> None:
    handler = ExportEntry("wasi:http/incoming-handler@0.2.0", ExternKind.INSTANCE, 0)
    assert classify_export(handler) is Capability.NETWORK_HTTP_IN
    assert classify_export(ExportEntry("_start", ExternKind.FUNC, 0)) is None


def test_version_suffix_stripping() -> None:
    assert strip_version("wasi:sockets/tcp@0.2.0") == "wasi:sockets/tcp"
    assert strip_version("wasi:http/types@0.3.0-rc-2026-03-15") == "wasi:http/types"
    assert strip_version("env") == "env"


def test_preview1_has_the_46_standard_functions() -> None:
    assert len(PREVIEW1_STANDARD) == 46
    assert {"sock_accept", "sock_shutdown", "fd_write"} <= PREVIEW1_STANDARD
    assert "sock_open" not in PREVIEW1_STANDARD
