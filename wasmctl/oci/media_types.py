"""Media types of the OCI image spec and of the Wasm artifact formats in the wild.

Sources: opencontainers/image-spec v1.1.1 (media-types.md, manifest.md), the CNCF TAG-Runtime
Wasm OCI artifact, engineerd/wasm-to-oci, Spin and wasmCloud (shared/reference/oci-formats.md
§1-§3), Docker's image manifest v2 schema 2.
"""

from __future__ import annotations

OCI_LAYOUT_VERSION = "1.0.0"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
IMAGE_CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
TAR_LAYER_TYPES = (OCI_LAYER_TAR, OCI_LAYER_TAR_GZIP, DOCKER_LAYER_TAR_GZIP)

# CNCF TAG-Runtime Wasm artifact (runwasi, wkg, wasmCloud 1.x+, Spin pull)
WASM_CONFIG = "application/vnd.wasm.config.v0+json"
WASM_LAYER = "application/wasm"
# runwasi's second accepted layer type
BYTECODEALLIANCE_COMPONENT_LAYER = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm"
# engineerd/wasm-to-oci and cosign `upload wasm`; Spin's per-component layers
WASM_TO_OCI_CONFIG = "application/vnd.wasm.config.v1+json"
WASM_CONTENT_LAYER = "application/vnd.wasm.content.layer.v1+wasm"
# Spin
SPIN_DATA_LAYER = "application/vnd.wasm.content.layer.v1+data"
SPIN_BUNDLE_LAYER = "application/vnd.wasm.content.bundle.v1.tar+gzip"
SPIN_LOCKED_APP = "application/vnd.fermyon.spin.application.v1+config"
SPIN_LOCKED_APP_LABEL = "com.fermyon.spin.lockedAppDigest"
# wasmCloud before 1.0 (actors) and provider archives
WASMCLOUD_ACTOR_CONFIG = "application/vnd.wasmcloud.actor.archive.config"
WASMCLOUD_PROVIDER_CONFIG = "application/vnd.wasmcloud.provider.archive.config"
WASMCLOUD_PROVIDER_LAYER = "application/vnd.wasmcloud.provider.archive.layer.v1+par"
MODULE_WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"

# Layers whose blob is a raw module or component
RAW_WASM_LAYER_TYPES = (
    WASM_LAYER,
    BYTECODEALLIANCE_COMPONENT_LAYER,
    WASM_CONTENT_LAYER,
    MODULE_WASM_LAYER,
)

# SBOMs stored as referrers (wasmctl sbom --attach, oras attach): the artifact type is the
# document's own media type. Attested SBOMs are found by their in-toto predicate type
# instead, as `cosign attest --type cyclonedx|spdxjson` writes them.
CYCLONEDX_JSON = "application/vnd.cyclonedx+json"
SPDX_JSON = "application/spdx+json"
SBOM_TYPES = (CYCLONEDX_JSON, SPDX_JSON)
CYCLONEDX_PREDICATE = "https://cyclonedx.org/bom"
SPDX_PREDICATE = "https://spdx.dev/Document"

# Annotations
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_COMPAT_VARIANT = "module.wasm.image/variant"
DOCKER_REFERENCE_TYPE = "vnd.docker.reference.type"
DOCKER_ATTESTATION_MANIFEST = "attestation-manifest"

EMPTY_JSON = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
