"""What the gate is asked about: references, layouts, and the images of Kubernetes manifests.

A manifest file may hold several YAML documents and `List` kinds. From every `Pod`,
`Deployment`, `StatefulSet`, `DaemonSet`, `ReplicaSet`, `Job` and `CronJob`, each container,
init container and ephemeral container becomes a target, remembering where it came from
(file, document, line of its `image:`) and whether its pod asks for a Wasm runtime class.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wasmctl._files import read_limited
from wasmctl.errors import InputError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_MANIFEST_BYTES = 16 << 20
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class Origin:
    """Where in a Kubernetes manifest a container's image is named."""

    file: str
    document: int
    kind: str
    name: str
    container: str
    field: str
    line: int | None
    runtime_class: str | None

    def describe(self) -> str:
        return f"{self.file}#{self.document} {self.kind}/{self.name} {self.field}[{self.container}]"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "document": self.document,
            "kind": self.kind,
            "name": self.name,
            "container": self.container,
            "field": self.field,
            "line": self.line,
            "runtimeClassName": self.runtime_class,
        }


@dataclass(frozen=True)
class Target:
    """One thing to gate: a reference as written, and where it was found."""

    reference: str
    origin: Origin | None = None
    wasm_runtime: bool = True  # named directly, or its pod asks for a Wasm runtime class


def is_manifest_path(text: str) -> bool:
    """A file or directory argument that is Kubernetes YAML/JSON rather than a reference."""
    path = Path(text)
    return path.is_dir() or (path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES)


def collect(arguments: list[str], runtime_classes: tuple[str, ...]) -> list[Target]:
    """Targets from the command line: manifests are expanded, references kept as given."""
    targets: list[Target] = []
    for argument in arguments:
        if is_manifest_path(argument):
            for path in _manifest_files(Path(argument)):
                targets += manifest_targets(path, runtime_classes)
        else:
            targets.append(Target(argument))
    return targets


def _manifest_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    found = []
    for directory, names, files in os.walk(path):
        names.sort()
        found += [
            Path(directory, f) for f in sorted(files) if Path(f).suffix.lower() in MANIFEST_SUFFIXES
        ]
    return found


def manifest_targets(path: Path, runtime_classes: tuple[str, ...]) -> list[Target]:
    """Every container image of the workloads in one manifest file."""
    import yaml

    raw = read_limited(path, MAX_MANIFEST_BYTES, "manifest")
    try:
        documents: list[Any] = list(yaml.compose_all(raw.decode("utf-8"), Loader=yaml.SafeLoader))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputError(f"{path}: not a Kubernetes manifest (YAML): {e}") from None
    targets = []
    for number, node in enumerate(documents):
        if node is None:
            continue
        document = _plain(node)
        if not isinstance(document, Mapping):
            raise InputError(f"{path}: document {number} is not a Kubernetes object")
        for kind, name, pod in _pods(document):
            runtime_class = pod.get("runtimeClassName")
            runtime_class = runtime_class if isinstance(runtime_class, str) else None
            for field in CONTAINER_FIELDS:
                containers = pod.get(field) or []
                if not isinstance(containers, list):
                    raise InputError(f"{path}: {kind}/{name}: `{field}` is not a list")
                for container in containers:
                    image = container.get("image") if isinstance(container, Mapping) else None
                    if not isinstance(image, str) or not image:
                        raise InputError(f"{path}: {kind}/{name}: a container without an image")
                    origin = Origin(
                        file=str(path),
                        document=number,
                        kind=kind,
                        name=name,
                        container=str(container.get("name", "")),
                        field=field,
                        line=getattr(image, "line", None),
                        runtime_class=runtime_class,
                    )
                    wasm = runtime_class is not None and runtime_class in runtime_classes
                    targets.append(Target(str(image), origin, wasm))
    return targets


def _pods(document: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(kind, name, pod spec) of every workload in a document (and in a `List`'s items)."""
    kind = str(document.get("kind", ""))
    if kind.endswith("List") and isinstance(document.get("items"), list):
        for item in document["items"]:
            if isinstance(item, Mapping):
                yield from _pods(item)
        return
    name = str((document.get("metadata") or {}).get("name", ""))
    spec = document.get("spec")
    paths = {
        "Pod": (),
        "Deployment": ("template", "spec"),
        "StatefulSet": ("template", "spec"),
        "DaemonSet": ("template", "spec"),
        "ReplicaSet": ("template", "spec"),
        "Job": ("template", "spec"),
        "CronJob": ("jobTemplate", "spec", "template", "spec"),
    }
    if kind not in paths or not isinstance(spec, Mapping):
        return
    pod: Any = spec
    for key in paths[kind]:
        pod = pod.get(key) if isinstance(pod, Mapping) else None
    if isinstance(pod, Mapping):
        yield kind, name, pod


class _Scalar(str):
    """A string that remembers its line in the manifest (1-based)."""

    line: int


def _plain(node: Any) -> Any:
    """YAML nodes as dicts, lists and strings (scalars keep their line): all the gate reads
    is strings, and `image:` lines are wanted for SARIF locations."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        return {str(_plain(k)): _plain(v) for k, v in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item) for item in node.value]
    if node.tag == "tag:yaml.org,2002:null":
        return None
    text = _Scalar(node.value)
    text.line = node.start_mark.line + 1
    return text
