"""CycloneDX 1.6 JSON through cyclonedx-python-lib, strictly validated before it is returned.

Layout (shared/reference/sbom-scan.md §2):
- `metadata.component` is the (first) module: `application` for a command or a runnable
  component, `library` for a reactor; SHA-256 and SHA-512 of its bytes; for an artifact,
  `pkg:oci/NAME@sha256:<manifest digest>?repository_url=...&tag=...` (there is no `wasm`
  purl type; the module's own hash is in `hashes`).
- nested modules and components of a component are its sub-components, with their hashes;
- embedded dependencies are components with a dependency graph: crates from `.dep-v0` as
  `pkg:cargo/NAME@VERSION` (build-time crates with scope `excluded`), Go modules from the
  modinfo as `pkg:golang/PATH@VERSION`;
- producers' `processed-by` and `sdk` entries are tools; languages, imports, exports,
  capability classes and target features are `wasmctl:` properties (the `cdx:` namespace is
  CycloneDX's registered taxonomy).

The MIME type goes in a property: the library writes `mimeType` where the 1.6 schema says
`mime-type`, which strict validation rejects.

Three parts of the library's path are quadratic in the number of components (10,000
crates took many minutes): `Bom.register_dependency` searches the whole graph for every
edge, the outputter runs it again for every component (`Bom.validate`), and jsonschema
checks `uniqueItems` by comparing every pair of components. So the graph is given to the
`Bom` whole, the library's own serialiser (`as_json`, what its outputter calls) writes the
document after the graph checks the outputter would make are made here with sets, and the
library's strict 1.6 schema is checked by jsonschema-rs, whose `uniqueItems` hashes each
item. Nothing of the library is patched.

`render(..., vulnerabilities=...)` adds the findings of `wasmctl audit` as the BOM's
`vulnerabilities`, each affecting the component of its package in its module (made by
`wasmctl.audit.report.cyclonedx`): `wasmctl audit --format cyclonedx` and `wasmctl sbom
--with-vulnerabilities` write the same document.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from wasmctl import __version__
from wasmctl.errors import InternalError
from wasmctl.sbom.deps import CargoDependencies, GoBuildInfo, GoModule
from wasmctl.sbom.facts import ModuleFacts, Subject, cargo_purl, golang_purl

if TYPE_CHECKING:
    from cyclonedx.model import HashType, Property
    from cyclonedx.model.component import Component

    from wasmctl.audit.model import DatabaseInfo, Placed

SERIAL_NAMESPACE = uuid.UUID("6f1b0c52-5a0c-4c8b-9d6e-2f8f4b2b7a11")
# What the library's JSON outputter for 1.6 puts around the serialised BOM.
_JSON_CORE = {
    "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
    "bomFormat": "CycloneDX",
    "specVersion": "1.6",
}


def render(
    subject: Subject,
    created: datetime,
    *,
    vulnerabilities: Sequence[Placed] = (),
    database: DatabaseInfo | None = None,
) -> str:
    """The SBOM as CycloneDX 1.6 JSON text (validated; a schema failure is a bug), with
    the audit's findings of `subject` as its `vulnerabilities` when given, and the
    database they were matched against in the metadata's properties."""
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.schema.schema import SchemaVersion1Dot6

    builder = _Builder()
    modules = [builder.module(m, subject, index=i) for i, m in enumerate(subject.modules)]
    bom = Bom(serial_number=uuid.uuid5(SERIAL_NAMESPACE, f"cyclonedx:{subject.content_digest}"))
    bom.metadata.timestamp = created
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="wasmctl", version=__version__)
    )
    for tool in builder.tools:
        bom.metadata.tools.components.add(tool)
    bom.metadata.component = modules[0]
    if subject.artifact is not None:
        bom.metadata.properties.add(Property(name="wasmctl:oci:reference",
                                             value=subject.artifact.reference))  # fmt: skip
    if vulnerabilities or database is not None:
        from wasmctl.audit.report.cyclonedx import bom_vulnerabilities, database_properties

        bom.vulnerabilities = bom_vulnerabilities(vulnerabilities, builder.package_ref)
        if database is not None:
            bom.metadata.properties.update(database_properties(database))
    # Given presorted, the library's sorted set checks the order in one pass instead of
    # bisecting with its costly comparisons for every insertion.
    bom.components = sorted((*modules[1:], *builder.components), key=_component_order)
    edges = [*builder.edges, *((modules[0], [extra]) for extra in modules[1:])]
    bom.dependencies = _dependency_graph([modules[0], *modules[1:], *builder.components], edges)
    _check_graph(bom)
    document = json.loads(bom.as_json(view_=SchemaVersion1Dot6))  # type: ignore[attr-defined]
    document.update(_JSON_CORE)
    error = next(_schema_validator().iter_errors(document), None)
    if error is not None:
        raise InternalError(f"the CycloneDX SBOM does not validate: {error.message}")
    return json.dumps(document, indent=2) + "\n"


def _component_order(component: Component) -> tuple[str, str, str, str, str]:
    """The leading fields of the library's component ordering (bom-refs are unique)."""
    return (
        str(component.type),
        component.group or "",
        component.name,
        component.version or "",
        component.bom_ref.value or "",
    )


def _dependency_graph(
    described: list[Component], edges: list[tuple[Component, list[Component]]]
) -> list[Any]:
    """One `Dependency` per described component and per end of an edge, as the outputter's
    `register_dependency` calls leave the graph, built with a dictionary."""
    from cyclonedx.model.dependency import Dependency

    children: dict[Any, dict[Any, None]] = {c.bom_ref: {} for c in described}
    for parent, targets in edges:
        children.setdefault(parent.bom_ref, {}).update((t.bom_ref, None) for t in targets)
        for target in targets:
            children.setdefault(target.bom_ref, {})
    return [
        Dependency(ref=ref, dependencies=[Dependency(ref=child) for child in refs])
        for ref, refs in children.items()
    ]


def _check_graph(bom: Any) -> None:
    """What `Bom.validate` checks before the outputter writes: bom-refs unique, and every
    reference in the graph naming a component of this BOM."""
    refs: set[str | None] = set()
    for component in _all_components(bom):
        value = component.bom_ref.value
        if value is None or value in refs:
            raise InternalError(f"the CycloneDX SBOM has a missing or repeated bom-ref {value}")
        refs.add(value)
    for dependency in bom.dependencies:
        for ref in (dependency.ref, *(d.ref for d in dependency.dependencies)):
            if ref.value not in refs:
                raise InternalError(f"the CycloneDX dependency graph names {ref.value}")
    for vulnerability in bom.vulnerabilities:
        value = vulnerability.bom_ref.value
        if value is None or value in refs:
            raise InternalError(f"the CycloneDX SBOM has a missing or repeated bom-ref {value}")
        refs.add(value)
        for target in vulnerability.affects:
            if target.ref not in refs:
                raise InternalError(f"the CycloneDX vulnerability {value} names {target.ref}")


def _all_components(bom: Any) -> Iterator[Any]:
    stack = [bom.metadata.component, *bom.components]
    while stack:
        component = stack.pop()
        yield component
        stack.extend(component.components)


@cache
def _schema_validator() -> Any:
    """The CycloneDX 1.6 JSON schema that cyclonedx-python-lib ships (with the SPDX licence,
    cryptography and JSF schemas it refers to), strictly: formats are checked (`date-time`,
    `iri-reference`, `idn-email`, `uri`), and unknown properties refused, as the library's
    `JsonStrictValidator` does.

    The check runs on jsonschema-rs, not on jsonschema (issue 15): importing jsonschema
    imports every format checker it can find, and `rfc3987-syntax` (its checker for
    `iri-reference`) compiles 38 lark grammars on import, 1.4 s of every `sbom` process for
    one format. jsonschema-rs builds this validator in ~20 ms and checks the same formats;
    its `uniqueItems` hashes items, so 10,000 components stay linear.
    tests/unit/sbom/test_cyclonedx_schema.py holds it to the library's own validator.
    """
    from importlib import resources

    import jsonschema_rs

    schemas = resources.files("cyclonedx.schema") / "_res"  # the library's data files

    def load(name: str) -> Any:
        return json.loads((schemas / name).read_text(encoding="utf-8"))

    referred = ("spdx", "cryptography-defs", "jsf-0.82")
    registry = jsonschema_rs.Registry(
        [
            (
                f"http://cyclonedx.org/schema/{name}.SNAPSHOT.schema.json",
                load(f"{name}.SNAPSHOT.schema.json"),
            )
            for name in referred
        ]
    )
    return jsonschema_rs.Draft7Validator(
        load("bom-1.6.SNAPSHOT.schema.json"),
        registry=registry,
        validate_formats=True,
        ignore_unknown_formats=False,
    )


class _Builder:
    """Collects components, tools and dependency edges while modules are described."""

    def __init__(self) -> None:
        self.components: list[Component] = []
        self.tools: list[Component] = []
        self._tool_keys: set[tuple[str, str]] = set()
        self.edges: list[tuple[Component, list[Component]]] = []
        # OSV's view of each component, for the vulnerabilities that affect it:
        # (module as `wasmctl.audit` names it, ecosystem, name, version) -> bom-ref
        self.packages: dict[tuple[str, str, str, str], str] = {}
        self.modules: dict[str, str] = {}

    def package_ref(self, where: str, ecosystem: str, name: str, version: str) -> str | None:
        """The bom-ref of a package found in the module `where` (`app`, `app/0`): its
        component, or the module's own for the Go toolchain (`stdlib` is no component)."""
        if ecosystem == "Go" and name == "stdlib":
            return self.modules.get(where)
        return self.packages.get((where, ecosystem, name, version))

    def module(self, facts: ModuleFacts, subject: Subject, *, index: int) -> Component:
        """The component of a module (the `index`th of the subject) and what it nests."""
        from cyclonedx.model import ExternalReference, ExternalReferenceType, XsUri
        from cyclonedx.model.component import Component, ComponentType
        from cyclonedx.model.contact import OrganizationalContact
        from cyclonedx.model.license import LicenseExpression
        from packageurl import PackageURL

        top = index == 0 and not facts.position
        purl = None
        if top and subject.artifact is not None:
            purl = PackageURL.from_string(subject.artifact.purl())
        references = []
        for key, kind in (("source", ExternalReferenceType.VCS),
                          ("homepage", ExternalReferenceType.WEBSITE)):  # fmt: skip
            value = facts.field(key)
            if value and _is_uri(value):
                references.append(ExternalReference(type=kind, url=XsUri(value)))
        licenses = [LicenseExpression(lic)] if (lic := facts.field("licenses")) else []
        authors = [OrganizationalContact(name=a.strip())
                   for a in (facts.field("authors") or "").split(",") if a.strip()]  # fmt: skip
        ref = f"wasm:{index}{facts.position}:{facts.sha256[:16]}"
        where = subject.modules[index].name + facts.position
        self.modules.setdefault(where, ref)
        component = Component(
            type=ComponentType.APPLICATION
            if facts.role == "application"
            else ComponentType.LIBRARY,
            name=facts.name,
            version=facts.field("version"),
            description=facts.field("description"),
            bom_ref=ref,
            hashes=_hashes(facts),
            purl=purl,
            licenses=licenses,
            authors=authors,
            external_references=references,
            properties=self._properties(facts, subject if top else None),
            components=[self.module(child, subject, index=index) for child in facts.nested],
        )
        self._dependencies(component, facts, ref, where)
        return component

    def _properties(self, facts: ModuleFacts, subject: Subject | None) -> list[Property]:
        from cyclonedx.model import Property

        pairs: list[tuple[str, str]] = [
            ("wasmctl:wasm:kind", facts.kind.value),
            ("wasmctl:wasm:mime-type", "application/wasm"),
            ("wasmctl:wasm:size", str(facts.size)),
        ]
        if facts.position:
            pairs.append(("wasmctl:wasm:position", facts.position))
        if subject is not None and subject.artifact is not None:
            pairs.append(("wasmctl:oci:manifest-digest", subject.artifact.digest))
        if revision := facts.field("revision"):
            pairs.append(("wasmctl:wasm:revision", revision))
        for field in facts.producers:
            for value in field.values:
                text = f"{value.name} {value.version}".strip()
                pairs.append((f"wasmctl:wasm:producers:{field.name}", text))
                if field.name in ("processed-by", "sdk"):
                    self._tool(value.name, value.version)
        pairs += [("wasmctl:wasm:target-feature", f"{f.prefix}{f.name}")
                  for f in facts.target_features]  # fmt: skip
        pairs += [("wasmctl:wasm:import", name) for name, _ in facts.imports]
        pairs += [("wasmctl:wasm:export", name) for name in facts.exports]
        pairs += [("wasmctl:capability", c) for c in facts.capabilities]
        return [Property(name=k, value=v) for k, v in pairs]

    def _tool(self, name: str, version: str) -> None:
        from cyclonedx.model.component import Component, ComponentType

        if (name, version) not in self._tool_keys:
            self._tool_keys.add((name, version))
            self.tools.append(
                Component(type=ComponentType.APPLICATION, name=name, version=version or None)
            )

    def _dependencies(self, module: Component, facts: ModuleFacts, ref: str, where: str) -> None:
        direct: list[Component] = []
        if facts.cargo is not None:
            direct += self._cargo(facts.cargo, ref, where)
        if facts.go is not None:
            direct += self._go(facts.go, ref, where)
        if direct:
            self.edges.append((module, direct))

    def _cargo(self, deps: CargoDependencies, owner: str, where: str) -> list[Component]:
        from cyclonedx.model import Property
        from cyclonedx.model.component import Component, ComponentScope, ComponentType
        from packageurl import PackageURL

        made = []
        for i, package in enumerate(deps.packages):
            properties = []
            if package.source != "crates.io":
                properties.append(Property(name="wasmctl:cargo:source", value=package.source))
            made.append(
                Component(
                    type=ComponentType.LIBRARY,
                    name=package.name,
                    version=package.version,
                    bom_ref=f"{owner}:cargo:{i}:{package.name}",
                    purl=PackageURL.from_string(cargo_purl(package.name, package.version)),
                    scope=ComponentScope.EXCLUDED if package.kind == "build" else None,
                    properties=properties,
                )
            )
        self.components += made
        for package, component in zip(deps.packages, made, strict=True):
            key = (where, "crates.io", package.name, package.version)
            self.packages.setdefault(key, str(component.bom_ref.value))
            if package.dependencies:
                self.edges.append((component, [made[i] for i in package.dependencies]))
        return [made[i] for i, p in enumerate(deps.packages) if p.root]

    def _go(self, info: GoBuildInfo, owner: str, where: str) -> list[Component]:
        from cyclonedx.model import Property

        made = [self._go_module(m, owner, i) for i, m in enumerate(info.deps)]
        for module, component in zip(info.deps, made, strict=True):
            used = module.replaced_by or module  # the module that was built
            key = (where, "Go", used.path, used.version)
            self.packages.setdefault(key, str(component.bom_ref.value))
        main = None
        if info.main is not None:
            main = self._go_module(info.main, owner, "main")
            main.properties.update(
                Property(name=f"wasmctl:go:build:{k}", value=v) for k, v in info.settings if v
            )
        self.components += [*made, *([main] if main is not None else [])]
        if main is None:
            return made
        if made:
            self.edges.append((main, made))
        return [main]

    def _go_module(self, module: GoModule, owner: str, index: int | str) -> Component:
        from cyclonedx.model import Property
        from cyclonedx.model.component import Component, ComponentType
        from packageurl import PackageURL

        used = module.replaced_by or module
        version = used.version if used.version and used.version != "(devel)" else None
        properties = []
        if module.replaced_by is not None:
            replaced = f"{module.path} {module.version}".strip()
            properties.append(Property(name="wasmctl:go:replaces", value=replaced))
        if used.sum:
            properties.append(Property(name="wasmctl:go:sum", value=used.sum))
        return Component(
            type=ComponentType.LIBRARY,
            name=used.path,
            version=version,
            bom_ref=f"{owner}:golang:{index}:{used.path}",
            purl=PackageURL.from_string(golang_purl(used.path, version)),
            properties=properties,
        )


def _hashes(facts: ModuleFacts) -> Iterable[HashType]:
    from cyclonedx.model import HashAlgorithm, HashType

    return [
        HashType(alg=HashAlgorithm.SHA_256, content=facts.sha256),
        HashType(alg=HashAlgorithm.SHA_512, content=facts.sha512),
    ]


def _is_uri(value: str) -> bool:
    return value.startswith(("https://", "http://", "git+", "ssh://", "git://"))
