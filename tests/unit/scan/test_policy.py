"""Policies: loading, layering, overrides, presets, and what each preset decides."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests import wasmbytes as wb
from wasmctl.errors import PolicyError
from wasmctl.scan import (
    PRESETS,
    Decision,
    RuleId,
    Verdict,
    load_policy_file,
    load_preset,
    parse_policy,
    scan_file,
)
from wasmctl.scan.capabilities import Capability
from wasmctl.wasm.model import ExternKind, ImportEntry

Wat = Callable[[str], Path]
SCHEMA = json.loads((Path(__file__).parents[3] / "docs" / "policy.schema.json").read_text())
PRESET_DIR = Path(__file__).parents[3] / "wasmctl" / "scan" / "presets"
SOCKETS = ImportEntry("wasi_snapshot_preview1", "sock_accept", ExternKind.FUNC, 0)


@pytest.mark.parametrize("name", PRESETS)
def test_presets_fit_the_documented_schema_and_deny_unknown_imports(name: str) -> None:
    jsonschema.validate(yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text()), SCHEMA)
    assert load_preset(name).unknown_decision is Decision.DENY


def test_deny_beats_allow_within_a_layer() -> None:
    policy = parse_policy(
        "version: 1\nallow: [{capability: 'network.*'}]\ndeny: [{import: '*:sock_*'}]"
    )
    assert policy.decide(SOCKETS, Capability.NETWORK_SOCKET)[0] is Decision.DENY


def test_a_layer_overrides_the_policy_it_extends(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("version: 1\ndeny: [{capability: network.socket}]\n")
    (tmp_path / "child.yaml").write_text(
        "version: 1\nextends: base.yaml\nallow: [{import: '*:sock_*'}]\n"
    )
    child = load_policy_file(tmp_path / "child.yaml")
    decision, reason, _ = child.decide(SOCKETS, Capability.NETWORK_SOCKET)
    assert decision is Decision.ALLOW
    assert "allow[0]" in reason


def test_settings_are_inherited_from_the_extended_preset() -> None:
    policy = parse_policy("version: 1\nextends: wasi-p1-strict\nname: mine")
    assert policy.name == "mine"
    assert policy.preview1_strict
    assert policy.default_decision is Decision.DENY


def test_command_line_overrides_sit_above_the_policy() -> None:
    strict = load_preset("wasi-p1-strict")
    assert strict.decide(SOCKETS, Capability.NETWORK_SOCKET)[0] is Decision.DENY
    opened = strict.with_overrides(allow=["network.socket"])
    assert opened.decide(SOCKETS, Capability.NETWORK_SOCKET)[0] is Decision.ALLOW
    closed = load_preset("no-network").with_overrides(deny=["wasi_snapshot_preview1:fd_*"])
    fd_write = ImportEntry("wasi_snapshot_preview1", "fd_write", ExternKind.FUNC, 0)
    assert closed.decide(fd_write, Capability.STDIO)[0] is Decision.DENY


def test_versioned_names_match_unversioned_globs() -> None:
    policy = parse_policy(
        "version: 1\ndeny: [{module: 'wasi:sockets/tcp'}, {import: 'wasi:http/client'}]"
    )
    tcp = ImportEntry("wasi:sockets/tcp@0.2.0", "", ExternKind.INSTANCE, 0)
    lowered = ImportEntry("wasi:http/client@0.3.0", "send", ExternKind.FUNC, 0)
    client = ImportEntry("wasi:http/client@0.3.0", "", ExternKind.INSTANCE, 0)
    assert policy.decide(tcp, Capability.NETWORK_SOCKET)[0] is Decision.DENY
    assert policy.decide(client, Capability.NETWORK_HTTP_OUT)[0] is Decision.DENY
    assert policy.decide(lowered, Capability.NETWORK_HTTP_OUT)[0] is Decision.ALLOW


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list", "must be a mapping"),
        ("version: 1\nalow: []", "unknown key"),
        ("version: 1\nunknown: maybe", "must be one of allow, warn, deny"),
        ("version: 1\ndeny: [{capabilty: network.*}]", "unknown rule key"),
        ("version: 1\ndeny: [{reason: because}]", "matches nothing"),
        ("version: 1\ndeny: [{kind: gadget}]", "unknown kind"),
        ("version: 1\ndeny: network.*", "must be a list"),
        ("version: 1\nlimits: {max_size: lots}", "a size is bytes"),
        ("version: 1\nlimits: {max_imports: -1}", "non-negative"),
        ("version: 1\nrequire_exports: [{all_of: [a]}]", "any_of"),
        ("version: 1\nextends: nonexistent-preset", "not a preset"),
        ("version: 2", "unsupported policy version"),
        ("version: true", "unsupported policy version"),
        ("name: no-version", "no `version`"),
        ("", "the policy is empty"),
        ("version: 1\ndeny:\n", "`deny` has no value"),
        ("version: 1\nunknown: allow\nunknown: deny\n", "duplicate key 'unknown'"),
        ("version: 1\ndeny: [{capability: network.*}]\ndeny: []\n", "duplicate key 'deny'"),
        ("version: 1\ndeny: [{import: [unclosed", "not valid YAML"),
    ],
)
def test_bad_policies_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)


def test_sizes_take_units() -> None:
    assert parse_policy("version: 1\nlimits: {max_size: 10MiB}").size_limit == 10 * 1024 * 1024
    assert parse_policy("version: 1\nlimits: {max_size: 500KB}").size_limit == 500_000
    assert parse_policy("version: 1\nlimits: {max_size: 42}").size_limit == 42


def test_extends_cycles_and_unreadable_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 1\nextends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("version: 1\nextends: a.yaml\n")
    with pytest.raises(PolicyError, match="extends itself"):
        load_policy_file(tmp_path / "a.yaml")
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy_file(tmp_path / "missing.yaml")
    (tmp_path / "huge.yaml").write_bytes(b"#" * (2 << 20))
    with pytest.raises(PolicyError, match="larger than"):
        load_policy_file(tmp_path / "huge.yaml")


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(PolicyError) as caught:
        load_preset("no-networking")
    assert caught.value.hint is not None and "no-network" in caught.value.hint


# -- presets on real modules -----------------------------------------------------------------

HELLO = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")))"""


def verdict_of(path: Path, *presets: str, **overrides: list[str]) -> tuple[Verdict, set[RuleId]]:
    policies = [load_preset(p).with_overrides(**overrides) for p in presets]
    report = scan_file(path, policies)
    return report.verdict, {f.rule for f in report.findings}


def test_pure_compute_allows_writing_and_exiting_only(wat: Wat) -> None:
    assert verdict_of(wat(HELLO), "pure-compute") == (Verdict.ALLOW, set())
    reading = wat('(module (import "wasi_snapshot_preview1" "fd_read" (func)))')
    assert verdict_of(reading, "pure-compute") == (Verdict.DENY, {RuleId.FORBIDDEN_IMPORT})


def test_no_network_denies_sockets_in_compact_groups(tmp_path: Path) -> None:
    group = wb.name("wasi_snapshot_preview1") + wb.name("") + b"\x7e\x00\x00"
    group += wb.vec([wb.name("fd_write"), wb.name("sock_accept")])
    data = wb.core_module(wb.section(1, wb.vec([b"\x60\x00\x00"])), wb.section(2, wb.vec([group])))
    (tmp_path / "compact.wasm").write_bytes(data)
    report = scan_file(tmp_path / "compact.wasm", [load_preset("no-network")])
    denied = [(f.module, f.name) for f in report.findings]
    assert report.verdict is Verdict.DENY
    assert denied == [("wasi_snapshot_preview1", "sock_accept")]


def test_no_network_denies_a_socket_import_of_a_nested_module(wat: Wat) -> None:
    component = wat(
        """(component
          (core module (import "wasi_snapshot_preview1" "sock_accept" (func)))
          (core module (import "__main_module__" "whatever" (func))))"""
    )
    report = scan_file(component, [load_preset("no-network")])
    assert report.verdict is Verdict.DENY
    assert [(f.location, f.name) for f in report.findings] == [("/0", "sock_accept")]
    internal = [v for v in report.imports if v.module == "__main_module__"]
    assert [v.decision for v in internal] == [Decision.INFO]


def test_no_network_denies_http_servers(wat: Wat) -> None:
    server = wat(
        """(component
          (import "wasi:http/types@0.2.0" (instance $t))
          (instance $h)
          (export "wasi:http/incoming-handler@0.2.0" (instance $h)))"""
    )
    assert verdict_of(server, "no-network")[0] is Verdict.DENY
    assert verdict_of(server, "wasi-p2-proxy") == (Verdict.ALLOW, set())


def test_wasi_p1_strict(wat: Wat) -> None:
    sockets = wat(
        """(module (import "wasi_snapshot_preview1" "sock_accept" (func))
                   (import "wasi_snapshot_preview1" "fd_write" (func)))"""
    )
    assert verdict_of(sockets, "wasi-p1-strict")[0] is Verdict.DENY
    assert verdict_of(sockets, "wasi-p1-strict", allow=["network.socket"])[0] is Verdict.ALLOW
    wasmedge = wat('(module (import "wasi_snapshot_preview1" "sock_open" (func)))')
    verdict, rules = verdict_of(wasmedge, "wasi-p1-strict", allow=["network.socket"])
    assert (verdict, rules) == (Verdict.DENY, {RuleId.NONSTANDARD_PREVIEW1})
    assert verdict_of(wat("(component)"), "wasi-p1-strict") == (Verdict.DENY, {RuleId.WRONG_KIND})


def test_wasi_p2_proxy_requires_the_handler_export(wat: Wat) -> None:
    client = wat('(component (import "wasi:http/outgoing-handler@0.2.0" (instance)))')
    assert verdict_of(client, "wasi-p2-proxy") == (Verdict.DENY, {RuleId.MISSING_EXPORT})
    assert verdict_of(wat("(module)"), "wasi-p2-proxy")[1] >= {RuleId.WRONG_KIND}


def test_proxy_wasm_and_no_network_together_deny_http_calls(wat: Wat) -> None:
    source = """(module
      (import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))
      (import "env" "proxy_http_call" (func))
      (memory (export "memory") 1)
      (func (export "proxy_abi_version_0_2_1")) (func (export "proxy_on_memory_allocate")))"""
    filt = wat(source)
    assert verdict_of(filt, "proxy-wasm")[0] is Verdict.ALLOW
    assert verdict_of(filt, "proxy-wasm", "no-network") == (
        Verdict.DENY,
        {RuleId.FORBIDDEN_IMPORT},
    )
    assert verdict_of(wat("(module)"), "proxy-wasm") == (Verdict.DENY, {RuleId.MISSING_EXPORT})


def test_opa_accepts_the_opa_abi_only(wat: Wat) -> None:
    exports = " ".join(
        f'(func (export "{n}"))'
        for n in (
            "opa_eval_ctx_new",
            "eval",
            "entrypoints",
            "builtins",
            "opa_malloc",
            "opa_json_parse",
        )
    )
    policy = wat(
        f"""(module (import "env" "memory" (memory 2))
                    (import "env" "opa_abort" (func (param i32)))
                    (import "env" "opa_builtin2" (func)) {exports})"""
    )
    assert verdict_of(policy, "opa") == (Verdict.ALLOW, set())
    fetching = wat(f'(module (import "env" "opa_http_send" (func)) {exports})')
    assert verdict_of(fetching, "opa")[0] is Verdict.DENY


def test_limits(wat: Wat, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("version: 1\nlimits: {max_size: 10, max_imports: 1}\n")
    policy = load_policy_file(tmp_path / "p.yaml")
    two = wat('(module (import "a" "b" (func)) (import "a" "c" (func)))')
    report = scan_file(two, [policy])
    assert [f.rule for f in report.findings if f.module is None] == [
        RuleId.LIMIT_EXCEEDED,
        RuleId.LIMIT_EXCEEDED,
    ]
