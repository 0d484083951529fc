"""The OCI content model (``kiln.oci``) among the registry's exports.

Digests, descriptors, manifests and indexes exist once, in ``kiln.oci``; the registry
client speaks them, and ``kiln.registry`` re-exports them so that its callers need one
import. lazy_loader's stub takes only relative imports, hence this module.
"""

from kiln.oci.digest import Digest
from kiln.oci.layout import ImageLayout
from kiln.oci.model import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER_TAR,
    OCI_LAYER_TAR_GZIP,
    OCI_MANIFEST,
    SIGSTORE_BUNDLE,
    Descriptor,
    ImageIndex,
    ImageManifest,
    Manifest,
    Platform,
    canonical_json,
    parse_manifest,
)

__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "EMPTY_JSON",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER_TAR",
    "OCI_LAYER_TAR_GZIP",
    "OCI_MANIFEST",
    "SIGSTORE_BUNDLE",
    "Descriptor",
    "Digest",
    "ImageIndex",
    "ImageLayout",
    "ImageManifest",
    "Manifest",
    "Platform",
    "canonical_json",
    "parse_manifest",
]
