"""OCI distribution client: references, auth, blob and manifest transfer, referrers.

Implements the client side of the OCI distribution spec v1.1
(https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md): pull with
every byte verified against its digest, push content before names, referrers with the
tag-schema fallback, and Docker-compatible credentials.
"""

from kiln.registry._auth import (
    Anonymous,
    ChainedCredentials,
    Credentials,
    CredentialSource,
    DockerConfigCredentials,
    EnvCredentials,
    StaticCredentials,
    containers_auth_paths,
    default_credentials,
    docker_config_path,
    parse_challenge,
)
from kiln.registry._client import BlobOutcome, PutManifestResult, RegistryClient, TransferStats
from kiln.registry._digest import Digest
from kiln.registry._errors import RegistryAuthError, RegistryNotFoundError, RegistryRequestError
from kiln.registry._image import PullResult, PushResult, pull_layout, push_layout
from kiln.registry._layout import ImageLayout
from kiln.registry._model import (
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
from kiln.registry._reference import Reference, is_loopback
from kiln.registry._referrers import artifact_manifest, attach_artifact, list_referrers
from kiln.registry._session import RegistrySession

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
    "Anonymous",
    "BlobOutcome",
    "ChainedCredentials",
    "CredentialSource",
    "Credentials",
    "Descriptor",
    "Digest",
    "DockerConfigCredentials",
    "EnvCredentials",
    "ImageIndex",
    "ImageLayout",
    "ImageManifest",
    "Manifest",
    "Platform",
    "PullResult",
    "PushResult",
    "PutManifestResult",
    "Reference",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryNotFoundError",
    "RegistryRequestError",
    "RegistrySession",
    "StaticCredentials",
    "TransferStats",
    "artifact_manifest",
    "attach_artifact",
    "canonical_json",
    "containers_auth_paths",
    "default_credentials",
    "docker_config_path",
    "is_loopback",
    "list_referrers",
    "parse_challenge",
    "parse_manifest",
    "pull_layout",
    "push_layout",
]
