"""Publish a built image: attest what was observed, push it, attach the attestations.

The orchestrator (this module), not the build, writes the provenance: it records the
lock, the spec digest, the image digests it read back from the layout and the times it
measured. Signing keys never enter the build sandbox. Every statement is DSSE-signed
into a Sigstore bundle and attached as an OCI referrer (referrers API, or the
``sha256-<hex>`` tag fallback): image signatures, SLSA provenance, SPDX and CycloneDX
SBOMs per platform, and the CTRF test report.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.assemble import BuiltImage
from kiln.attest import (
    CYCLONEDX_1_6,
    IMAGE_SIGNATURE,
    LOCAL_BUILDER_ID,
    OPENVEX_0_2,
    PROVENANCE_V1,
    SPDX_2_3,
    TEST_REPORT_CTRF,
    Attestation,
    BundleSigner,
    EcdsaVerifier,
    ImageDigests,
    KeyBundleSigner,
    ProvenanceInputs,
    Subject,
    VerificationError,
    attach_attestations,
    attest_image,
    default_policy,
    detect_git_source,
    fetch_bundles,
    sign_image,
    statement_for,
    verify_image,
)
from kiln.errors import InputError, KilnError, RemoteContentError
from kiln.pipeline.tags import tags_for
from kiln.registry import (
    Descriptor,
    Digest,
    ImageIndex,
    Manifest,
    Reference,
    RegistryClient,
    RegistryNotFoundError,
    TransferStats,
    list_referrers,
    push_layout,
)
from kiln.resolve.lockfile import Lock
from kiln.sbom import SbomFormat, SbomInput, read_sbom_input, render_sbom
from kiln.spec import LoadedSpec
from kiln.vuln.advisories import openvex_for_image

if TYPE_CHECKING:
    from kiln.pipeline.build import BuiltVariant
    from kiln.vuln.advisories import AdvisoryStore


@dataclass(frozen=True)
class Destination:
    """``HOST[:PORT][/PREFIX]``: images go to ``HOST/PREFIX/<image-name>``."""

    registry: str
    prefix: str

    @classmethod
    def parse(cls, text: str) -> Destination:
        host, _, prefix = text.strip("/").partition("/")
        if not host:
            raise InputError(f"--registry {text!r}: expected HOST[:PORT][/PREFIX]")
        probe = Reference.parse(f"{host}/{prefix + '/' if prefix else ''}x:probe")
        return cls(probe.registry, prefix)

    def repository(self, image: str) -> str:
        return f"{self.prefix}/{image}" if self.prefix else image


@dataclass(frozen=True)
class BuildObservation:
    """What the orchestrator saw while building and testing one variant."""

    loaded: LoadedSpec
    lock: Lock
    variant: str
    built: BuiltImage
    started_on: dt.datetime
    finished_on: dt.datetime
    #: arch -> the CTRF report of the tests run on that platform (an arch whose tests did
    #: not run has none, and no test report is attested for it)
    test_reports: Mapping[str, Mapping[str, Any]]
    options: Mapping[str, Any]

    @classmethod
    def of(
        cls, built: BuiltVariant, *, test_reports: Mapping[str, Mapping[str, Any]]
    ) -> BuildObservation:
        """A built variant and the CTRF reports of the platforms its tests ran on.

        ``options`` records where the tests ran (``tests_ran_on``: the archs, or
        ``none`` for an image published again without testing, its digest unchanged).
        """
        return cls(
            loaded=built.loaded,
            lock=built.lock,
            variant=built.variant,
            built=built.image,
            started_on=built.started_on,
            finished_on=built.finished_on,
            test_reports=test_reports,
            options={"tests_ran_on": ",".join(sorted(test_reports)) or "none"},
        )


@dataclass(frozen=True)
class Published:
    reference: str  # repository@digest
    tags: tuple[str, ...]
    attestations: int
    uploaded_bytes: int  # blobs + manifests, image and attestations
    image_blobs_sent: int  # layers/configs the registry did not have yet


def _sent_of(stats: TransferStats) -> int:
    return stats.blob_bytes_uploaded + stats.manifest_bytes_uploaded


def _sent(client: RegistryClient) -> int:
    return _sent_of(client.stats)


#: What a published kiln image carries; a re-publish with all of them valid is a no-op.
PUBLISHED_TYPES = (IMAGE_SIGNATURE, PROVENANCE_V1, SPDX_2_3, CYCLONEDX_1_6, TEST_REPORT_CTRF)


def already_attested(
    client: RegistryClient,
    destination: Destination,
    image: str,
    index_digest: str,
    signer: BundleSigner,
) -> bool:
    """Whether the registry holds this exact image with every attestation, signed by us.

    Then a warm publish only refreshes the tags: the same digest was built from the same
    lock, tested and attested before. Keyless signers always attest anew.
    """
    if not isinstance(signer, KeyBundleSigner):
        return False
    repository = destination.repository(image)
    digest = Digest.parse(index_digest, what="image digest")
    try:
        if not client.manifest_exists(repository, digest):
            return False
        bundles = fetch_bundles(client, repository, digest)
    except RegistryNotFoundError:
        return False
    verifier = EcdsaVerifier.from_pem(signer.signer.public_key_pem(), where="the signing key")
    try:
        verify_image(bundles, index_digest, verifier, default_policy(required=PUBLISHED_TYPES))
    except VerificationError:
        return False
    return True


def attestations_for(
    seen: BuildObservation,
    signer: BundleSigner,
    *,
    builder_id: str = LOCAL_BUILDER_ID,
    advisories: AdvisoryStore | None = None,
) -> tuple[Attestation, ...]:
    """Every signed statement about one built variant (pure apart from reading the layout
    and, when ``advisories`` is given, the image's advisories).

    With ``advisories``, the image's OpenVEX (``openvex_for_image`` of the variant's
    label, e.g. ``python-dev``) is attested too when the store has determined statements
    for it: about the index and every platform manifest, so that ``kiln scan --key`` of
    either applies it.
    """
    spec = seen.loaded.spec
    name = spec.label(seen.variant)
    digests = ImageDigests.from_built(seen.built, name)
    installed_by_arch = {
        image.arch: read_sbom_input(
            seen.built.layout, platform=f"linux/{image.arch}", lock=seen.lock
        )
        for image in seen.built.images
    }
    provenance = ProvenanceInputs(
        image=digests,
        lock=seen.lock,
        variant=seen.variant,
        spec_path=str(seen.loaded.path),
        spec_sha256=seen.loaded.sha256,
        builder_id=builder_id,
        invocation_id=str(uuid.uuid4()),
        started_on=seen.started_on,
        finished_on=seen.finished_on,
        source_date_epoch=seen.built.source_date_epoch,
        source=detect_git_source(seen.loaded.path),
        options=dict(seen.options),
        rebuilt=_rebuilt(installed_by_arch.values()),
    )
    found = [
        *sign_image(digests, signer),
        *attest_image(digests, signer, provenance=provenance),
        *_test_reports(seen, digests, name, signer),
    ]
    for image in seen.built.images:
        # One SBOM per platform, about that platform's manifest within this index.
        subjects = [
            Subject.of(name, digests.index_digest),
            Subject.of(f"{name}@linux/{image.arch}", str(image.manifest.digest)),
        ]
        installed = installed_by_arch[image.arch]
        formats: tuple[tuple[SbomFormat, str], ...] = (
            ("spdx-json", SPDX_2_3),
            ("cyclonedx-json", CYCLONEDX_1_6),
        )
        for fmt, predicate_type in formats:
            sbom = render_sbom(installed, fmt)
            statement = statement_for(predicate_type, subjects, json.loads(sbom))
            found.append(
                Attestation(
                    predicate_type,
                    signer.sign_statement(statement),
                    (digests.index_digest, str(image.manifest.digest)),
                )
            )
    if advisories is not None:
        vex = openvex_attestation(advisories, digests, signer)
        found.extend([vex] if vex else [])
    return tuple(found)


def openvex_attestation(
    advisories: AdvisoryStore, digests: ImageDigests, signer: BundleSigner
) -> Attestation | None:
    """The image's OpenVEX from the advisory store as a signed attestation about the index
    and every platform manifest (``digests.name`` is the image the store knows, e.g.
    ``python-dev``), or ``None`` when the store has no determined statement for it. The
    document is deterministic: its times come from the events."""
    document = openvex_for_image(advisories, digests.name)
    if not document:
        return None
    statement = statement_for(OPENVEX_0_2, digests.subjects(), json.loads(document))
    attach_to = (digests.index_digest, *(d for _, d in sorted(digests.manifests.items())))
    return Attestation(OPENVEX_0_2, signer.sign_statement(statement), attach_to)


def _test_reports(
    seen: BuildObservation, digests: ImageDigests, name: str, signer: BundleSigner
) -> list[Attestation]:
    """One signed CTRF report per platform whose tests ran, about that platform.

    A report names the index as a subject too only when every platform of the index was
    tested: a test report never vouches for a platform whose tests did not run.
    """
    images = seen.built.images
    everywhere = all(image.arch in seen.test_reports for image in images)
    found = []
    for image in images:
        report = seen.test_reports.get(image.arch)
        if report is None:
            continue
        subjects = [Subject.of(f"{name}@linux/{image.arch}", str(image.manifest.digest))]
        if everywhere:
            subjects.insert(0, Subject.of(name, digests.index_digest))
        statement = statement_for(TEST_REPORT_CTRF, subjects, report)
        found.append(
            Attestation(
                TEST_REPORT_CTRF,
                signer.sign_statement(statement),
                (digests.index_digest, str(image.manifest.digest)),
            )
        )
    return found


def _rebuilt(inputs: Iterable[SbomInput]) -> dict[str, dict[str, str]]:
    """``name=version`` -> how kiln rebuilt it (Kiln-* control fields), for provenance."""
    found: dict[str, dict[str, str]] = {}
    for inp in inputs:
        for package in inp.packages:
            if package.kiln_build:
                key = f"{package.name}={package.version}"
                found[key] = dict(package.kiln_build)
    return found


def publish(
    seen: BuildObservation,
    attestations: Sequence[Attestation],
    *,
    client: RegistryClient,
    destination: Destination,
) -> Published:
    """Push the image and its evidence, read both back, and only then move the tags.

    Order: blobs and manifests by digest (``push_layout`` without tags) and their
    read-back, every signature and attestation with its referrer index and their
    read-back, then the tags (``latest`` last). A failure before the tags leaves every
    tag where it was, so a tag never names an image whose blobs or evidence are missing;
    the error says so.
    """
    repository = destination.repository(seen.loaded.spec.name)
    tags = tags_for(seen.built.tag, seen.variant)
    for tag in tags:
        Reference(destination.registry, repository, tag=tag)  # refuses a bad tag before any push
    digest = Digest.parse(seen.built.index_digest, what="image digest")
    target = Reference.parse(f"{destination.registry}/{repository}@{digest}")
    before = client.stats
    try:
        result = push_layout(client, Path(seen.built.layout), target, ref_name=seen.built.tag)
        image = confirm_image(client, repository, digest)
        attached = attach_attestations(client, repository, attestations)
        confirm_referrers(client, repository, _by_subject(attestations, attached))
    except KilnError as exc:
        exc.details.append(f"no tag was moved: {', '.join(tags)} name what they named before")
        raise
    moved: list[str] = []
    for tag in tags:
        try:
            client.tag(repository, image, tag)
        except KilnError as exc:
            exc.details.append(
                f"tags moved to {digest} (signed and attested): {', '.join(moved) or 'none'}; "
                f"not moved: {', '.join(t for t in tags if t not in moved)}"
            )
            raise
        moved.append(tag)
    return Published(
        reference=f"{destination.registry}/{repository}@{result.digest}",
        tags=tags,
        attestations=len(attestations),
        uploaded_bytes=_sent(client) - _sent_of(before),
        image_blobs_sent=result.stats.blobs_uploaded,
    )


def _by_subject(
    attestations: Sequence[Attestation], attached: Sequence[Descriptor]
) -> dict[Digest, set[Digest]]:
    """Subject digest -> the referrers attached to it (``attach_attestations``'s order)."""
    subjects = [subject for a in attestations for subject in a.attach_to]
    found: dict[Digest, set[Digest]] = {}
    for subject, descriptor in zip(subjects, attached, strict=True):
        key = Digest.parse(subject, what="attestation subject")
        found.setdefault(key, set()).add(descriptor.digest)
    return found


def confirm_image(client: RegistryClient, repository: str, digest: Digest) -> Manifest:
    """Read back a pushed image: its manifest (verified) out, or ``RemoteContentError``.

    The image by digest and each platform manifest (content checked against its
    digest), and a HEAD of every blob they list: the registry must still have what it
    accepted before signatures are attached to it or a tag names it.
    """
    where = f"registry {client.registry}: repository {repository}"
    image = client.get_manifest(repository, digest)
    pending = [image]
    while pending:  # the index, its platform manifests (and any index nested in it)
        manifest = pending.pop()
        listed = manifest.parsed
        if isinstance(listed, ImageIndex):
            pending += [client.get_manifest(repository, c.digest) for c in listed.manifests]
            continue
        for blob in (listed.config, *listed.layers):
            if client.blob_size(repository, blob.digest) is None:
                raise RemoteContentError(
                    f"{where}: blob {blob.digest} of manifest {manifest.digest} is missing "
                    "after the push"
                )
    return image


def confirm_referrers(
    client: RegistryClient, repository: str, referrers: Mapping[Digest, set[Digest]]
) -> None:
    """Read back attached evidence: each subject lists its referrers, and each is stored."""
    where = f"registry {client.registry}: repository {repository}"
    for subject, expected in sorted(referrers.items(), key=lambda item: str(item[0])):
        listed = {d.digest for d in list_referrers(client, repository, subject)}
        missing = sorted(str(d) for d in expected - listed)
        if missing:
            raise RemoteContentError(
                f"{where}: {len(missing)} signature or attestation referrers of {subject} "
                "are not listed after attaching them",
                details=missing,
            )
        for referrer in sorted(expected, key=str):
            if not client.manifest_exists(repository, referrer):
                raise RemoteContentError(
                    f"{where}: referrer {referrer} of {subject} is listed but not stored"
                )
