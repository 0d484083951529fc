"""Verify an image: gather its Sigstore bundles, check them, apply the policy.

``verify_image`` is the pure core (bundles + digest + key + policy -> report or
``VerificationError``). The edges gather bundles: ``read_bundle_dir`` from a local
directory, ``fetch_bundles`` from a registry through the OCI referrers of the image
(``artifactType`` = the Sigstore bundle media type; referrers API or tag fallback).
``verify_reference`` does both for ``kiln verify REF --key PUB``; ``attach_bundle``
is the publishing side.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kiln.attest.keys import Verifier
from kiln.attest.policy import CheckedBundle, Evidence, Outcome, Policy, RawBundle, check_bundles
from kiln.errors import InputError, PolicyError, RemoteContentError
from kiln.registry import (
    SIGSTORE_BUNDLE,
    Descriptor,
    Digest,
    ImageManifest,
    Reference,
    RegistryClient,
    attach_artifact,
    list_referrers,
)

PREDICATE_TYPE_ANNOTATION = "dev.sigstore.bundle.predicateType"
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
BUNDLE_SUFFIXES = (".sigstore.json", ".bundle.json")
MAX_PARALLEL_FETCHES = 8


@dataclass(frozen=True)
class VerificationReport:
    """The verdict on one image: what passed, what warned, and each bundle as checked."""

    image_digest: str
    key_id: str
    outcome: Outcome
    bundles: tuple[CheckedBundle, ...]


class VerificationError(PolicyError):
    """The image does not satisfy the verification policy (exit 1)."""

    report: VerificationReport | None = None


def verify_image(
    bundles: Sequence[RawBundle], image_digest: str, verifier: Verifier, policy: Policy
) -> VerificationReport:
    """Check ``bundles`` against ``verifier``'s key and ``policy`` for ``image_digest``.

    Returns the report when the policy holds; raises ``VerificationError`` (whose
    ``details`` list every failure) when it does not.
    """
    Digest.parse(image_digest, what="image digest")
    checked = check_bundles(bundles, verifier)
    evidence = Evidence(image_digest, verifier.key_id, checked)
    outcome = policy.check(evidence)
    report = VerificationReport(image_digest, verifier.key_id, outcome, checked)
    if not outcome.ok:
        error = VerificationError(
            f"{image_digest} failed verification: {outcome.failures[0]}",
            details=[
                *outcome.failures[1:],
                *(f"unreadable: {b.problem}" for b in evidence.unreadable()),
            ],
            hint="the image is not what the policy requires; do not deploy it",
        )
        error.report = report
        raise error
    return report


def read_bundle_dir(directory: Path) -> tuple[RawBundle, ...]:
    """Every ``*.sigstore.json`` / ``*.bundle.json`` file in ``directory``, by name."""
    if not directory.is_dir():
        raise InputError(f"bundle directory {directory} does not exist or is not a directory")
    found = []
    for path in sorted(directory.iterdir()):
        if not path.name.endswith(BUNDLE_SUFFIXES) or not path.is_file():
            continue
        if path.stat().st_size > MAX_BUNDLE_BYTES:
            found.append(RawBundle(str(path), problem=f"larger than {MAX_BUNDLE_BYTES} bytes"))
            continue
        found.append(RawBundle(str(path), path.read_bytes()))
    return tuple(found)


def _fetch_bundle(client: RegistryClient, repository: str, artifact: Digest, where: str) -> bytes:
    """The bundle bytes of one referrer, after checking the artifact's shape.

    The artifact's own ``subject`` is not what is trusted: the signed statement's
    subjects are, so a referrer copied from another image is read and judged by the
    policy (which then names the digest it covers), not dismissed as unreadable.
    """
    parsed = client.get_manifest(repository, artifact).parsed
    if not isinstance(parsed, ImageManifest):
        raise RemoteContentError(f"{where}: the referrer is an index, not an artifact")
    layers = [layer for layer in parsed.layers if layer.media_type == SIGSTORE_BUNDLE]
    if len(layers) != 1:
        raise RemoteContentError(
            f"{where}: the artifact has {len(layers)} Sigstore bundle layers, not 1"
        )
    if layers[0].size > MAX_BUNDLE_BYTES:
        raise RemoteContentError(
            f"{where}: the bundle is {layers[0].size} bytes, over {MAX_BUNDLE_BYTES}"
        )
    return client.fetch_blob(repository, layers[0].digest, max_bytes=MAX_BUNDLE_BYTES)


def fetch_bundles(
    client: RegistryClient, repository: str, subject: Digest
) -> tuple[RawBundle, ...]:
    """The Sigstore bundles attached to ``subject`` as OCI referrers.

    A referrer whose content is malformed is returned with its ``problem`` (the policy
    then decides whether the image still passes); transport failures propagate.
    """
    descriptors = list_referrers(client, repository, subject, artifact_type=SIGSTORE_BUNDLE)

    def fetch(descriptor: Descriptor) -> RawBundle:
        where = f"registry {client.registry}: {repository}@{descriptor.digest}"
        try:
            return RawBundle(where, _fetch_bundle(client, repository, descriptor.digest, where))
        except RemoteContentError as exc:
            return RawBundle(where, problem=str(exc))

    # two round trips per bundle: in parallel they overlap the registry's latency (the
    # client is thread-safe); map keeps the referrers' order, and the first transport
    # failure propagates after the other fetches end
    workers = max(1, min(MAX_PARALLEL_FETCHES, len(descriptors)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return tuple(pool.map(fetch, descriptors))


def verify_reference(
    client: RegistryClient, reference: Reference, verifier: Verifier, policy: Policy
) -> VerificationReport:
    """Resolve ``reference`` to a digest, fetch its bundles and verify them.

    A tag can move after this call: deploy ``report.image_digest``, the digest that
    was verified, never the tag.
    """
    digest = (
        reference.digest or client.get_manifest(reference.repository, reference.identifier).digest
    )
    bundles = fetch_bundles(client, reference.repository, digest)
    return verify_image(bundles, str(digest), verifier, policy)


def attach_bundle(
    client: RegistryClient,
    repository: str,
    subject: Descriptor,
    bundle: bytes,
    *,
    predicate_type: str,
) -> Descriptor:
    """Push ``bundle`` as a referrer of ``subject`` (annotated with its predicate type)."""
    return attach_artifact(
        client,
        repository,
        subject,
        artifact_type=SIGSTORE_BUNDLE,
        payload=bundle,
        payload_media_type=SIGSTORE_BUNDLE,
        annotations={PREDICATE_TYPE_ANNOTATION: predicate_type},
    )
