"""Publish into the store the site serves: attestations and ``site.json`` beside a layout.

``kiln site publish`` builds (or reuses) and tests each variant like ``kiln publish``,
makes the same signed attestations (``kiln.pipeline.publish.attestations_for``: image
signatures, SLSA provenance, SPDX and CycloneDX per platform, a CTRF report per tested
platform) and writes them as Sigstore bundles into ``<layout>/attestations/``, each
file written atomically; bundles of an earlier build of the layout are removed after
the new ones are in place. The public key goes to ``<store>/kiln.pub``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from kiln.attest import Attestation, predicate_name
from kiln.errors import KilnError
from kiln.fileio import atomic_write
from kiln.registry import canonical_json
from kiln.site.store import ATTESTATIONS, PUBLIC_KEY, SITE_META, SiteMeta, now_iso, read_meta
from kiln.spec import LoadedSpec

BUNDLE_SUFFIX = ".sigstore.json"


def _file_name(attestation: Attestation) -> str:
    kind = predicate_name(attestation.predicate_type).lower().replace(" ", "-")
    digest = hashlib.sha256(attestation.bundle).hexdigest()[:16]
    return f"{kind}-{digest}{BUNDLE_SUFFIX}"


def write_attestations(layout: Path, attestations: Sequence[Attestation]) -> list[Path]:
    """Write each bundle into ``layout/attestations``; remove bundles not among them."""
    directory = layout / ATTESTATIONS
    directory.mkdir(exist_ok=True)
    written = []
    for attestation in attestations:
        path = directory / _file_name(attestation)
        atomic_write(path, attestation.bundle)
        written.append(path)
    keep = {p.name for p in written}
    for old in directory.iterdir():
        if old.name.endswith(BUNDLE_SUFFIX) and old.name not in keep:
            old.unlink()
    return written


def previous_meta(layout: Path) -> SiteMeta | None:
    """The layout's ``site.json`` before a rebuild replaces the layout (None: none or
    unreadable, then the image counts as newly published)."""
    try:
        return read_meta(layout / SITE_META) if (layout / SITE_META).is_file() else None
    except KilnError:
        return None


def site_meta(loaded: LoadedSpec, variant: str, digest: str, previous: SiteMeta | None) -> SiteMeta:
    """What the site shows about a variant that the layout does not say. The publication
    time stays the previous one when the digest did not change (a rebuild that changed
    nothing is no new release)."""
    spec = loaded.spec
    same = previous is not None and previous.digest == digest and previous.published
    published = previous.published if same and previous is not None else now_iso()
    return SiteMeta(
        name=spec.name,
        variant=variant,
        release=spec.distro,
        replaces=spec.compatibility.replaces,
        notes=spec.compatibility.notes,
        published=published,
        digest=digest,
    )


def write_meta(layout: Path, meta: SiteMeta) -> None:
    """``layout/site.json``, canonical JSON."""
    atomic_write(layout / SITE_META, canonical_json(meta.to_json()))


def write_public_key(store: Path, pem: bytes) -> Path:
    """The published key (``store/kiln.pub``): the signer's own public half."""
    target = store / PUBLIC_KEY
    atomic_write(target, pem)
    return target
