"""Images a Wasm runtime would run as Wasm though they do not say `wasi/wasm`, written
straight into an OCI layout (or pushed), for the gate's Wasm-detection tests.

The default is the issue's case: a compat image relabelled `linux/amd64` that keeps crun's
`module.wasm.image/variant: compat-smart` annotation and a `.wasm` entrypoint, holding
examples/modules/echo_server.wasm (a socket server that the `no-network` preset denies).
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wasmctl.oci import media_types as mt
from wasmctl.oci.layout import OCILayout
from wasmctl.oci.models import Descriptor, Index, Manifest, Platform, canonical_json

EXAMPLES = Path(__file__).parents[3] / "examples" / "modules"
SERVER = (EXAMPLES / "echo_server.wasm").read_bytes()
VARIANT = "module.wasm.image/variant"
HANDLER = "run.oci.handler"


def tar_gz(files: Mapping[str, bytes]) -> bytes:
    """A reproducible gzipped tar of regular files (mode 0755)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass
class Image:
    """One platform image, and optionally the index around it."""

    os: str = "linux"
    architecture: str = "amd64"
    entrypoint: Sequence[str] | None = ("/server.wasm",)
    cmd: Sequence[str] | None = None
    files: Mapping[str, bytes] = field(default_factory=lambda: {"server.wasm": SERVER})
    layer_type: str = mt.OCI_LAYER_TAR_GZIP
    annotations: Mapping[str, str] = field(default_factory=lambda: {VARIANT: "compat-smart"})
    # an index around the manifest: None for a bare manifest
    index_annotations: Mapping[str, str] | None = None
    entry_annotations: Mapping[str, str] = field(default_factory=dict)
    entry_platform: tuple[str, str] | None = ("linux", "amd64")
    # more entries of the index: (platform os/arch, annotations, descriptor media type)
    extra_entries: Sequence[tuple[tuple[str, str], Mapping[str, str], str]] = ()

    def config(self) -> bytes:
        inner: dict[str, object] = {}
        if self.entrypoint is not None:
            inner["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            inner["Cmd"] = list(self.cmd)
        return canonical_json(
            {
                "architecture": self.architecture,
                "os": self.os,
                "config": inner,
                "rootfs": {"type": "layers", "diff_ids": []},
            }
        )

    def layer(self) -> bytes:
        if self.layer_type in mt.RAW_WASM_LAYER_TYPES:
            [data] = self.files.values()
            return data
        return tar_gz(self.files)

    def blobs(self) -> tuple[list[tuple[Descriptor, bytes]], Descriptor]:
        """Every blob (config, layer, manifests, index) in push order, and the root."""
        config = self.config()
        config_d = Descriptor.of(mt.OCI_CONFIG, config)
        layer = self.layer()
        title = {mt.ANNOTATION_TITLE: next(iter(self.files))}
        layer_d = Descriptor.of(self.layer_type, layer, title)
        manifest = Manifest(config_d, (layer_d,), annotations=dict(self.annotations)).to_bytes()
        blobs = [(config_d, config), (layer_d, layer)]
        if self.index_annotations is None:
            root = Descriptor.of(mt.OCI_MANIFEST, manifest)
            return [*blobs, (root, manifest)], root
        platform = (
            Platform(os=self.entry_platform[0], architecture=self.entry_platform[1])
            if self.entry_platform
            else None
        )
        entry = Descriptor.of(
            mt.OCI_MANIFEST, manifest, dict(self.entry_annotations), platform=platform
        )
        entries = [entry]
        blobs.append((entry, manifest))
        for (os_name, arch), notes, media_type in self.extra_entries:
            if media_type == mt.OCI_INDEX:  # a nested index: an empty one
                data = Index(()).to_bytes()
            else:  # an ordinary image of another platform (an empty layer list)
                other = canonical_json({"architecture": arch, "os": os_name, "rootfs": {}})
                other_d = Descriptor.of(mt.OCI_CONFIG, other)
                blobs.append((other_d, other))
                data = Manifest(other_d, ()).to_bytes()
            where = Platform(os=os_name, architecture=arch)
            d = Descriptor.of(media_type, data, dict(notes), platform=where)
            blobs.append((d, data))
            entries.append(d)
        index = Index(tuple(entries), annotations=dict(self.index_annotations)).to_bytes()
        root = Descriptor.of(mt.OCI_INDEX, index)
        return [*blobs, (root, index)], root

    def write(self, root: Path, tag: str = "v1") -> Descriptor:
        """Into the OCI layout at `root`, tagged."""
        blobs, top = self.blobs()
        with OCILayout.writer(root) as w:
            for descriptor, data in blobs:
                w.add_bytes(descriptor.media_type, data)
            w.tag(top, tag)
        return top


def ordinary(**changes: object) -> Image:
    """An ordinary linux/amd64 container image: nothing about it says Wasm."""
    base: dict[str, object] = {
        "entrypoint": ("/bin/server",),
        "files": {"bin/server": b"\x7fELF not really"},
        "annotations": {},
    }
    base.update(changes)
    return Image(**base)  # type: ignore[arg-type]
