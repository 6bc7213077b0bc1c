"""Scan policies: what a module may import, loaded from YAML files and built-in presets.

A policy is a stack of layers: the policy's own rules, then those of the policy it
`extends`, and so on. For each import the first layer with a matching rule decides; inside a
layer a `deny` rule beats an `allow` rule, which beats a `warn` rule. When no rule matches,
`unknown` decides for imports of no known capability and `default` for the rest. Command-line
`--allow` / `--deny` form one more layer on top. Several policies given together must all
pass: each import gets the strictest of their decisions.

The file format is documented in docs/policy.md, with a JSON schema in
docs/policy.schema.json.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from wasmctl._files import read_limited
from wasmctl.errors import PolicyError
from wasmctl.scan.capabilities import Capability, strip_version
from wasmctl.scan.presets import PRESETS
from wasmctl.wasm.model import ExternKind, ImportEntry

MAX_POLICY_BYTES = 1 << 20
MAX_EXTENDS_DEPTH = 16


class Decision(enum.StrEnum):
    """What a policy says about one import; ordered from mildest to strictest."""

    INFO = "info"
    ALLOW = "allow"
    WARN = "warn"
    DENY = "deny"

    @property
    def severity(self) -> int:
        """Position in the order info < allow < warn < deny."""
        return _SEVERITY[self]


_SEVERITY = {Decision.INFO: 0, Decision.ALLOW: 1, Decision.WARN: 2, Decision.DENY: 3}
_ACTIONS = (Decision.DENY, Decision.ALLOW, Decision.WARN)


class Ruling(NamedTuple):
    """A decision, the rule or setting that made it (`deny[0] capability=network.*`), and
    the rule's own `reason` text when it has one."""

    decision: Decision
    rule: str
    note: str | None = None


class ComponentRule(enum.StrEnum):
    """Whether a policy accepts components: `allow`, `deny` (core only) or `require`."""

    ALLOW = "allow"
    DENY = "deny"
    REQUIRE = "require"


@dataclass(frozen=True, slots=True)
class Rule:
    """A match on an import; every key given must match (globs, `*` `?` `[...]`).

    `import_` matches `module:name` of a core import or the whole name of a component-level
    import; `module` matches the module or interface name; `capability` the capability class;
    `kind` the extern kind. Names are tried with and without their `@version` suffix.
    """

    action: Decision
    import_: str | None = None
    module: str | None = None
    capability: str | None = None
    kind: str | None = None
    reason: str | None = None
    origin: str = ""

    def matches(self, entry: ImportEntry, capability: Capability) -> bool:
        """True when every key of the rule matches this import."""
        if self.capability is not None and not fnmatchcase(capability, self.capability):
            return False
        if self.kind is not None and entry.kind != self.kind:
            return False
        if self.module is not None and not _name_matches(entry.module, self.module):
            return False
        return self.import_ is None or _name_matches(entry.display_name, self.import_)

    def describe(self) -> str:
        """What the rule matches, as `capability=network.*`."""
        keys = [
            f"{key}={value}"
            for key, value in (
                ("import", self.import_),
                ("module", self.module),
                ("capability", self.capability),
                ("kind", self.kind),
            )
            if value is not None
        ]
        return " ".join(keys)


def _name_matches(name: str, pattern: str) -> bool:
    """Match `name` as written, without a trailing `@version`, and without the version of
    the interface in `interface@version:function` (a core import of a lowered function)."""
    return any(
        fnmatchcase(candidate, pattern)
        for candidate in {name, strip_version(name), _INNER_VERSION.sub("", name)}
    )


_INNER_VERSION = re.compile(r"@[^@/:]*(?=:[^:/]*$)")


@dataclass(frozen=True, slots=True)
class ExportRequirement:
    """At least one export whose name matches one of `any_of` (globs, version stripped)."""

    any_of: tuple[str, ...]

    def satisfied_by(self, names: Sequence[str]) -> bool:
        """True when some export name matches."""
        return any(
            fnmatchcase(n, p) or fnmatchcase(strip_version(n), p)
            for p in self.any_of
            for n in names
        )


@dataclass(frozen=True)
class Policy:
    """One layer of rules and settings, and the policy it extends.

    Settings left as None are taken from the extended policy; at the bottom `unknown` is
    `deny`, `default` is `allow`, components are allowed and preview1 names are not checked.
    """

    name: str
    rules: tuple[Rule, ...] = ()
    parent: Policy | None = None
    description: str = ""
    unknown: Decision | None = None
    default: Decision | None = None
    components: ComponentRule | None = None
    preview1_standard_only: bool | None = None
    max_size: int | None = None
    max_imports: int | None = None
    require_exports: tuple[ExportRequirement, ...] = field(default=())

    def layers(self) -> Iterator[Policy]:
        """This policy, then the one it extends, and so on."""
        layer: Policy | None = self
        while layer is not None:
            yield layer
            layer = layer.parent

    def _setting(self, attr: str, fallback: Any) -> Any:
        for layer in self.layers():
            value = getattr(layer, attr)
            if value is not None:
                return value
        return fallback

    @property
    def unknown_decision(self) -> Decision:
        """The decision for an import of no known capability that no rule matches."""
        value: Decision = self._setting("unknown", Decision.DENY)
        return value

    @property
    def default_decision(self) -> Decision:
        """The decision for a classified import that no rule matches."""
        value: Decision = self._setting("default", Decision.ALLOW)
        return value

    @property
    def component_rule(self) -> ComponentRule:
        """Whether components are allowed, denied or required."""
        value: ComponentRule = self._setting("components", ComponentRule.ALLOW)
        return value

    @property
    def preview1_strict(self) -> bool:
        """True when only the 46 standard preview1 names are accepted."""
        value: bool = self._setting("preview1_standard_only", False)
        return value

    @property
    def size_limit(self) -> int | None:
        """The largest module size accepted, in bytes."""
        value: int | None = self._setting("max_size", None)
        return value

    @property
    def import_limit(self) -> int | None:
        """The most imports accepted (top level)."""
        value: int | None = self._setting("max_imports", None)
        return value

    @property
    def export_requirements(self) -> tuple[ExportRequirement, ...]:
        """Every layer's export requirements."""
        return tuple(req for layer in self.layers() for req in layer.require_exports)

    def with_overrides(self, allow: Sequence[str] = (), deny: Sequence[str] = ()) -> Policy:
        """This policy under a layer of command-line `--allow` / `--deny` rules."""
        if not allow and not deny:
            return self
        rules = tuple(
            _override_rule(spec, action)
            for action, specs in ((Decision.DENY, deny), (Decision.ALLOW, allow))
            for spec in specs
        )
        return Policy(name=self.name, rules=rules, parent=self, description=self.description)

    def decide(self, entry: ImportEntry, capability: Capability) -> Ruling:
        """The decision for one top-level import and the rule (or setting) that made it."""
        rule = self.matching_rule(entry, capability)
        if rule is not None:
            return Ruling(
                rule.action, f"{rule.origin or rule.action} {rule.describe()}", rule.reason
            )
        if capability is Capability.UNKNOWN:
            return Ruling(self.unknown_decision, f"unknown imports: {self.unknown_decision}")
        return Ruling(self.default_decision, f"default: {self.default_decision}")

    def matching_rule(self, entry: ImportEntry, capability: Capability) -> Rule | None:
        """The rule that decides this import, if any rule matches."""
        for layer in self.layers():
            for action in _ACTIONS:
                for rule in layer.rules:
                    if rule.action is action and rule.matches(entry, capability):
                        return rule
        return None


def _override_rule(spec: str, action: Decision) -> Rule:
    """`--allow network.socket` names a capability; anything with `:` names an import."""
    origin = f"--{action}"
    if ":" in spec:
        return Rule(action, import_=spec, origin=origin)
    return Rule(action, capability=spec, origin=origin)


# ---------------------------------------------------------------------------------------
# Loading

_TOP_KEYS = {
    "name", "description", "extends", "unknown", "default", "components", "preview1",
    "limits", "allow", "warn", "deny", "require_exports", "version",
}  # fmt: skip
_RULE_KEYS = {"import", "module", "capability", "kind", "reason"}
_KINDS = {k.value for k in ExternKind}
_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG]i?[bB]?|[bB])?\s*$")
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3,
          "ki": 1024, "mi": 1024**2, "gi": 1024**3}  # fmt: skip


def load_preset(name: str) -> Policy:
    """A built-in preset by name."""
    if name not in PRESETS:
        raise PolicyError(f"unknown preset {name!r}", hint=f"presets are: {', '.join(PRESETS)}")
    return _load_preset_cached(name)


@cache
def _load_preset_cached(name: str) -> Policy:
    text = resources.files("wasmctl.scan.presets").joinpath(f"{name}.yaml").read_text("utf-8")
    return parse_policy(text, source=f"preset {name}", default_name=name)


def load_policy_file(path: str | Path) -> Policy:
    """A policy from a YAML file; `extends` may name a preset or a file beside it."""
    return _load_file(Path(path), depth=0, seen=())


def _load_file(path: Path, depth: int, seen: tuple[Path, ...]) -> Policy:
    raw = read_limited(path, MAX_POLICY_BYTES, "policy", PolicyError)
    resolved = path.resolve()
    if resolved in seen:
        raise PolicyError(f"policy {path} extends itself (cycle through {seen[-1]})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"policy {path} is not UTF-8 text") from None
    return parse_policy(
        text,
        source=str(path),
        default_name=path.stem,
        base_dir=path.parent,
        depth=depth,
        seen=(*seen, resolved),
    )


def parse_policy(
    text: str,
    *,
    source: str = "<policy>",
    default_name: str = "policy",
    base_dir: Path | None = None,
    depth: int = 0,
    seen: tuple[Path, ...] = (),
) -> Policy:
    """A policy from YAML text; errors name the `source` and the offending key."""
    from wasmctl import _yaml

    doc = _yaml.load(text, source, PolicyError)
    if doc is None:
        raise PolicyError(f"{source}: the policy is empty", hint="start it with `version: 1`")
    if not isinstance(doc, dict):
        raise PolicyError(f"{source}: a policy must be a mapping, not {type(doc).__name__}")
    unknown_keys = sorted(str(k) for k in set(doc) - _TOP_KEYS)
    if unknown_keys:
        raise PolicyError(
            f"{source}: unknown key(s) {', '.join(unknown_keys)}",
            hint=f"allowed keys: {', '.join(sorted(_TOP_KEYS))}",
        )
    if "version" not in doc:
        raise PolicyError(
            f"{source}: no `version`", hint="start the policy with `version: 1` (docs/policy.md)"
        )
    version = doc["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version != 1:
        raise PolicyError(f"{source}: unsupported policy version {version!r}")
    for key, value in doc.items():
        if value is None:
            raise PolicyError(
                f"{source}: `{key}` has no value",
                hint="give it one (an empty list is `[]`), or leave the key out",
            )
    name = _string(doc, "name", source) or default_name
    parent = None
    extends = _string(doc, "extends", source)
    if extends is not None:
        if depth >= MAX_EXTENDS_DEPTH:
            raise PolicyError(f"{source}: `extends` nested deeper than {MAX_EXTENDS_DEPTH}")
        if extends in PRESETS:
            parent = load_preset(extends)
        elif base_dir is not None:
            parent = _load_file(base_dir / extends, depth + 1, seen)
        else:
            raise PolicyError(f"{source}: `extends: {extends}` is not a preset")
    rules = tuple(
        _parse_rule(item, Decision(action), f"{source}: {action}[{i}]")
        for action in ("deny", "allow", "warn")
        for i, item in enumerate(_list(doc, action, source))
    )
    limits = doc.get("limits") or {}
    if not isinstance(limits, dict) or set(limits) - {"max_size", "max_imports"}:
        raise PolicyError(f"{source}: `limits` takes only max_size and max_imports")
    preview1 = _choice(doc, "preview1", source, ("any", "standard"))
    return Policy(
        name=name,
        description=_string(doc, "description", source) or "",
        rules=rules,
        parent=parent,
        unknown=_decision(doc, "unknown", source),
        default=_decision(doc, "default", source),
        components=_optional(
            ComponentRule, _choice(doc, "components", source, tuple(c.value for c in ComponentRule))
        ),
        preview1_standard_only=None if preview1 is None else preview1 == "standard",
        max_size=_size(limits.get("max_size"), f"{source}: limits.max_size"),
        max_imports=_count(limits.get("max_imports"), f"{source}: limits.max_imports"),
        require_exports=tuple(
            _export_requirement(item, f"{source}: require_exports[{i}]")
            for i, item in enumerate(_list(doc, "require_exports", source))
        ),
    )


def _optional(factory: type[ComponentRule], value: str | None) -> ComponentRule | None:
    return None if value is None else factory(value)


def _string(doc: Mapping[str, Any], key: str, source: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PolicyError(f"{source}: `{key}` must be a string")
    return value


def _list(doc: Mapping[str, Any], key: str, source: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyError(f"{source}: `{key}` must be a list")
    return value


def _choice(doc: Mapping[str, Any], key: str, source: str, allowed: tuple[str, ...]) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if value not in allowed:
        raise PolicyError(f"{source}: `{key}` must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def _decision(doc: Mapping[str, Any], key: str, source: str) -> Decision | None:
    value = _choice(doc, key, source, ("allow", "warn", "deny"))
    return None if value is None else Decision(value)


def _parse_rule(item: Any, action: Decision, where: str) -> Rule:
    if not isinstance(item, dict) or not item:
        raise PolicyError(f"{where}: a rule is a mapping such as {{capability: network.*}}")
    extra = sorted(str(k) for k in set(item) - _RULE_KEYS)
    if extra:
        raise PolicyError(
            f"{where}: unknown rule key(s) {', '.join(extra)}",
            hint=f"rule keys: {', '.join(sorted(_RULE_KEYS))}",
        )
    if set(item) <= {"reason"}:
        raise PolicyError(f"{where}: the rule matches nothing (give import, module, ...)")
    for key, value in item.items():
        if not isinstance(value, str) or not value:
            raise PolicyError(f"{where}: `{key}` must be a non-empty string")
    if "kind" in item and item["kind"] not in _KINDS:
        raise PolicyError(f"{where}: unknown kind {item['kind']!r}")
    return Rule(
        action=action,
        import_=item.get("import"),
        module=item.get("module"),
        capability=item.get("capability"),
        kind=item.get("kind"),
        reason=item.get("reason"),
        origin=f"{action}[{where.rsplit('[', 1)[-1]}",
    )


def _export_requirement(item: Any, where: str) -> ExportRequirement:
    if isinstance(item, str) and item:
        return ExportRequirement((item,))
    if (
        isinstance(item, dict)
        and set(item) == {"any_of"}
        and isinstance(item["any_of"], list)
        and item["any_of"]
        and all(isinstance(n, str) and n for n in item["any_of"])
    ):
        return ExportRequirement(tuple(item["any_of"]))
    raise PolicyError(f"{where}: give an export name or {{any_of: [name, ...]}}")


def _size(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise PolicyError(f"{where}: a size is bytes or a number with a unit (10MiB, 500KB)")
    unit = (match.group(2) or "").lower().rstrip("b")
    return int(match.group(1)) * _UNITS[unit]


def _count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise PolicyError(f"{where}: must be a non-negative integer")


AUDIT = Policy(
    name="audit",
    description="No policy given: every import is reported, unknown ones with a warning.",
    unknown=Decision.WARN,
    default=Decision.ALLOW,
)
"""What `wasmctl scan` uses when neither `--policy` nor `--preset` is given."""
