"""What the gate is asked about: references, layouts, and the images of Kubernetes manifests.

A manifest file may hold several YAML documents and `List` kinds. From every `Pod`,
`Deployment`, `StatefulSet`, `DaemonSet`, `ReplicaSet`, `ReplicationController`, `Job` and
`CronJob`, each container, init container and ephemeral container becomes a target,
remembering where it came from (file, document, line of its `image:`), whether its pod asks
for a Wasm runtime class, and what else could make a runtime run it as Wasm (the pod's crun
annotations, the container's command and args; the engine weighs them with the image).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
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
    # What else may make a runtime run it as Wasm: the pod's crun annotations
    # (`run.oci.handler`, `module.wasm.image/variant`) and the container's command and args.
    annotations: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    # The digest a tag was resolved to before the gate ran (the admission server's tag
    # cache): the gate then reads that artifact, whatever the tag names by now.
    digest: str | None = None


def is_manifest_path(text: str) -> bool:
    """A file or directory argument that is Kubernetes YAML/JSON rather than a reference."""
    path = Path(text)
    return path.is_dir() or (path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES)


def collect(arguments: list[str], runtime_classes: tuple[str, ...]) -> list[Target]:
    """Targets from the command line: manifests are expanded, references kept as given.

    A `RuntimeClass` in the manifests whose `handler` is a Wasm one (`crun-wasm`, `spin`,
    ...) makes its name a Wasm runtime class for every pod that names it, in any file."""
    targets: list[Target] = []
    handlers: dict[str, str] = {}
    for argument in arguments:
        if is_manifest_path(argument):
            for path in _manifest_files(Path(argument)):
                targets += manifest_targets(path, runtime_classes, handlers)
        else:
            targets.append(Target(argument))
    wasm_classes = {name for name, handler in handlers.items() if _wasm_name(handler)}
    return [
        replace(t, wasm_runtime=True)
        if t.origin is not None and t.origin.runtime_class in wasm_classes
        else t
        for t in targets
    ]


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


def manifest_targets(
    path: Path, runtime_classes: tuple[str, ...], handlers: dict[str, str] | None = None
) -> list[Target]:
    """Every container image of the workloads in one manifest file; the `handler` of each
    `RuntimeClass` in it is recorded in `handlers` (by the class's name)."""
    from wasmctl import _yaml

    raw = read_limited(path, MAX_MANIFEST_BYTES, "manifest")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a Kubernetes manifest (YAML): {e}") from None
    documents = _yaml.compose_all(text, f"{path}: not a Kubernetes manifest;")
    targets = []
    for number, node in enumerate(documents):
        if node is None:
            continue
        document = _plain(node)
        if not isinstance(document, Mapping):
            raise InputError(f"{path}: document {number} is not a Kubernetes object")
        if handlers is not None:
            handlers.update(_runtime_class(document))
        targets += object_targets(document, runtime_classes, str(path), number)
    return targets


def object_targets(
    document: Mapping[str, Any], runtime_classes: tuple[str, ...], file: str, number: int = 0
) -> list[Target]:
    """Every container image of the workloads in one Kubernetes object (a `List`'s items
    too), named in origins as document `number` of `file` (the admission server: the
    request). A container without an image is an error: the apiserver never sends one."""
    targets = []
    for kind, name, pod, metadata in _pods(document):
        runtime_class = pod.get("runtimeClassName")
        runtime_class = runtime_class if isinstance(runtime_class, str) else None
        annotations = _wasm_annotations(metadata)
        wasm = runtime_class is not None and (
            runtime_class in runtime_classes or _wasm_name(runtime_class)
        )
        for field in CONTAINER_FIELDS:
            containers = pod.get(field) or []
            if not isinstance(containers, list):
                raise InputError(f"{file}: {kind}/{name}: `{field}` is not a list")
            for container in containers:
                image = container.get("image") if isinstance(container, Mapping) else None
                if not isinstance(image, str) or not image:
                    raise InputError(f"{file}: {kind}/{name}: a container without an image")
                origin = Origin(
                    file=file,
                    document=number,
                    kind=kind,
                    name=name,
                    container=str(container.get("name", "")),
                    field=field,
                    line=getattr(image, "line", None),
                    runtime_class=runtime_class,
                )
                targets.append(
                    Target(
                        str(image),
                        origin,
                        wasm,
                        annotations,
                        _strings(container.get("command")),
                        _strings(container.get("args")),
                    )
                )
    return targets


def _wasm_name(runtime_class: str) -> bool:
    """A runtime class (or handler) whose name says Wasm (`crun-wasm`, `wasmtime-spin-v2`,
    `spin`, `wasmedge`) is taken for one even when the policy's `runtimeClasses` forgets it:
    a gate errs to Wasm."""
    name = runtime_class.lower()
    return any(word in name for word in ("wasm", "wasi", "spin", "slight", "wws"))


def _runtime_class(document: Mapping[str, Any]) -> dict[str, str]:
    """{name: handler} of a `RuntimeClass` (and of those in a `List`)."""
    kind = str(document.get("kind", ""))
    if kind.endswith("List") and isinstance(document.get("items"), list):
        found: dict[str, str] = {}
        for item in document["items"]:
            if isinstance(item, Mapping):
                found.update(_runtime_class(item))
        return found
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    handler = document.get("handler")
    if kind != "RuntimeClass" or not isinstance(name, str) or not isinstance(handler, str):
        return {}
    return {name: handler}


def _wasm_annotations(metadata: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The pod annotations crun reads to pick its Wasm handler."""
    from wasmctl.oci.artifact import WASM_ANNOTATIONS

    annotations = metadata.get("annotations")
    if not isinstance(annotations, Mapping):
        return ()
    return tuple(
        (key, str(annotations[key]))
        for key in WASM_ANNOTATIONS
        if isinstance(annotations.get(key), str)
    )


def _strings(value: Any) -> tuple[str, ...] | None:
    """A container's `command` or `args`: None when absent or empty (the image's apply)."""
    if not isinstance(value, list) or not value:
        return None
    return tuple(str(v) for v in value)


def _pods(
    document: Mapping[str, Any],
) -> Iterator[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]]:
    """(kind, name, pod spec, pod metadata) of every workload in a document (and in a
    `List`'s items); a template's metadata is the pod's (its annotations reach the runtime)."""
    kind = str(document.get("kind", ""))
    if kind.endswith("List") and isinstance(document.get("items"), list):
        for item in document["items"]:
            if isinstance(item, Mapping):
                yield from _pods(item)
        return
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = str(metadata.get("name", ""))
    spec = document.get("spec")
    paths = {
        "Pod": (),
        "Deployment": ("template", "spec"),
        "StatefulSet": ("template", "spec"),
        "DaemonSet": ("template", "spec"),
        "ReplicaSet": ("template", "spec"),
        "ReplicationController": ("template", "spec"),
        "Job": ("template", "spec"),
        "CronJob": ("jobTemplate", "spec", "template", "spec"),
    }
    if kind not in paths or not isinstance(spec, Mapping):
        return
    pod: Any = spec
    pod_metadata: Any = metadata
    for key in paths[kind]:
        if key == "spec" and isinstance(pod, Mapping):
            pod_metadata = pod.get("metadata")  # the template's, beside its spec
        pod = pod.get(key) if isinstance(pod, Mapping) else None
    if isinstance(pod, Mapping):
        yield kind, name, pod, pod_metadata if isinstance(pod_metadata, Mapping) else {}


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
