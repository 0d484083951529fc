"""Publish into the store the site serves: attestations and ``site.json`` beside a layout.

``kiln site publish`` builds (or reuses) and tests each variant like ``kiln publish``,
makes the same signed attestations (``kiln.pipeline.publish.attestations_for``: image
signatures, SLSA provenance, SPDX and CycloneDX per platform, a CTRF report per tested
platform) and writes them as Sigstore bundles into ``<layout>/attestations/``, each
file written atomically; evidence attached since about the same image (a VEX) is
carried over. The public key goes to ``<store>/kiln.pub``. The layout published before
a rebuild is kept as an earlier release (``keep_release``, ``settle_release``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from kiln.attest import Attestation, predicate_name
from kiln.attest.bundle import parse_bundle
from kiln.errors import KilnError
from kiln.fileio import atomic_write
from kiln.registry import ImageLayout, canonical_json
from kiln.site.store import (
    ATTESTATIONS,
    HISTORY,
    PUBLIC_KEY,
    SITE_META,
    SiteMeta,
    now_iso,
    read_meta,
)
from kiln.spec import LoadedSpec

BUNDLE_SUFFIX = ".sigstore.json"


def _file_name(attestation: Attestation) -> str:
    kind = predicate_name(attestation.predicate_type).lower().replace(" ", "-")
    digest = hashlib.sha256(attestation.bundle).hexdigest()[:16]
    return f"{kind}-{digest}{BUNDLE_SUFFIX}"


def _about(data: bytes, where: str) -> tuple[str, set[str]]:
    """A bundle's predicate type and the digests it is about ("", none: unreadable)."""
    try:
        statement = parse_bundle(data, where=where).statement(where=where)
    except KilnError:
        return "", set()
    return statement.predicate_type, set(statement.subject_digests())


def previous_bundles(layout: Path) -> dict[str, bytes]:
    """The bundles in ``layout/attestations`` now, read before a rebuild replaces the
    layout (and its attestations) whole."""
    directory = layout / ATTESTATIONS
    if not directory.is_dir():
        return {}
    return {
        p.name: p.read_bytes()
        for p in sorted(directory.iterdir())
        if p.name.endswith(BUNDLE_SUFFIX) and p.is_file()
    }


def write_attestations(
    layout: Path, attestations: Sequence[Attestation], previous: Mapping[str, bytes] | None = None
) -> list[Path]:
    """Write each bundle into ``layout/attestations``, and those ``previous`` bundles that
    are about this same image and of a type not written anew (a VEX document attached
    since, say). The others were about an earlier build (its kept release has them) or
    are superseded by the new ones; every other bundle in the directory is removed."""
    directory = layout / ATTESTATIONS
    directory.mkdir(exist_ok=True)
    current = {digest for a in attestations for digest in a.attach_to}
    renewed = {a.predicate_type for a in attestations}
    written = []
    for attestation in attestations:
        path = directory / _file_name(attestation)
        atomic_write(path, attestation.bundle)
        written.append(path)
    for name, data in (previous or {}).items():
        path = directory / name
        kind, subjects = _about(data, name)
        if path not in written and kind and kind not in renewed and subjects & current:
            atomic_write(path, data)
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


def _link_or_copy(source: str, target: str) -> None:
    """Blobs never change in place (layouts are swapped in whole): a hard link is a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def keep_release(layout: Path, store: Path, label: str) -> Path | None:
    """Keep the layout published now as an earlier release before a rebuild replaces it:
    ``store/history/<label>/<digest hex>/`` (hard links), or None when there is nothing
    published there or it is kept already."""
    meta = previous_meta(layout)
    if meta is None or not meta.digest.startswith("sha256:"):
        return None
    target = store / HISTORY / label / meta.digest.removeprefix("sha256:")
    if target.exists():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(layout, staging, copy_function=_link_or_copy, symlinks=True)
    os.replace(staging, target)
    return target


def settle_release(kept: Path | None, layout: Path) -> None:
    """Drop a kept release that is still the current one (the rebuild changed nothing,
    or it failed before replacing the layout)."""
    if kept is None:
        return
    try:
        current = str(ImageLayout.open(layout).select().digest)
    except (KilnError, OSError):
        return  # no readable current layout: the kept release is the last good one
    if current.removeprefix("sha256:") == kept.name:
        shutil.rmtree(kept)


def write_public_key(store: Path, pem: bytes) -> Path:
    """The published key (``store/kiln.pub``): the signer's own public half."""
    target = store / PUBLIC_KEY
    atomic_write(target, pem)
    return target
