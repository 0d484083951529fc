"""The published store as the site and the front door read it: OCI layouts and evidence.

A store is a directory of OCI image layouts, one per image variant, as ``kiln build``
writes them (``<name>/``, ``<name>-<variant>/``) and ``kiln site publish`` completes
them: Sigstore bundles in ``<layout>/attestations/`` and ``<layout>/site.json`` (the
spec's name, variant, release and what the image replaces). The published public key
is ``<store>/kiln.pub``. Nothing here writes: the site is read-only.

Every manifest is read through ``kiln.registry.ImageLayout`` (checked against its
digest); a blob is hashed the first time it is served and again whenever its file
changes (``verified_blob``). Attestations become OCI referrers the way ``kiln publish``
attaches them (``kiln.registry.artifact_manifest``: one artifact per bundle and
subject, annotated with the predicate type), so ``kiln verify HOST/kiln/NAME:TAG``
works against the front door exactly as against a registry kiln published to.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from kiln.attest.bundle import parse_bundle
from kiln.attest.policy import RawBundle
from kiln.attest.predicates import ImageDigests, predicate_name
from kiln.attest.verify import BUNDLE_SUFFIXES, MAX_BUNDLE_BYTES, PREDICATE_TYPE_ANNOTATION
from kiln.errors import InputError, IntegrityError, KilnError, Location
from kiln.jsonlimits import read_json_file
from kiln.pipeline.tags import tags_for
from kiln.registry import (
    EMPTY_JSON,
    OCI_EMPTY,
    SIGSTORE_BUNDLE,
    Descriptor,
    Digest,
    ImageIndex,
    ImageLayout,
    ImageManifest,
    Manifest,
    artifact_manifest,
)

#: the prefix images are served under (``HOST/kiln/<name>:<tag>``)
PREFIX = "kiln"
SITE_META = "site.json"
PUBLIC_KEY = "kiln.pub"
ATTESTATIONS = "attestations"
#: earlier releases: ``<store>/history/<label>/<index digest hex>/``, layouts as published
HISTORY = "history"
REF_NAME = "org.opencontainers.image.ref.name"
_MAX_META_BYTES = 64 * 1024
_CHUNK = 1024 * 1024
#: distribution-spec's repository name component and tag grammars
_NAME_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST_PATTERN = re.compile(r"sha256:[a-f0-9]{64}")


def valid_name(name: str) -> bool:
    """Whether ``name`` is a repository name the distribution spec allows."""
    return len(name) <= 255 and all(_NAME_COMPONENT.fullmatch(part) for part in name.split("/"))


@dataclass(frozen=True)
class SiteMeta:
    """What ``kiln site publish`` records beside a layout (``site.json``)."""

    name: str
    variant: str
    release: str = ""
    replaces: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    published: str = ""  # when this digest was first published into the store
    digest: str = ""  # the image (index) digest it was published as

    def to_json(self) -> dict[str, Any]:
        """The document written to ``site.json``."""
        return {
            "name": self.name,
            "variant": self.variant,
            "release": self.release,
            "replaces": list(self.replaces),
            "notes": list(self.notes),
            "published": self.published,
            "digest": self.digest,
        }


def _strings(value: object, where: Location) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError("expected a list of strings", location=where)
    return tuple(value)


def read_meta(path: Path) -> SiteMeta:
    """Parse ``site.json``; a malformed one is an ``InputError`` naming the field."""
    document = read_json_file(path, max_bytes=_MAX_META_BYTES, what="site.json")
    if not isinstance(document, dict):
        raise InputError("not a JSON object", location=Location(str(path)))
    values: dict[str, Any] = {}
    for key in ("name", "variant", "release", "published", "digest"):
        value = document.get(key, "")
        if not isinstance(value, str):
            raise InputError("expected a string", location=Location(str(path), field=key))
        values[key] = value
    if not valid_name(values["name"]) or not values["variant"]:
        raise InputError(
            "name must be a repository name component and variant non-empty",
            location=Location(str(path), field="name"),
        )
    for key in ("replaces", "notes"):
        values[key] = _strings(document.get(key, []), Location(str(path), field=key))
    return SiteMeta(**values)


@dataclass(frozen=True)
class PlatformImage:
    """One platform's manifest of an image: its config and layers."""

    arch: str  # Debian architecture (amd64, arm64)
    platform: str  # os/arch[/variant], as --platform takes it
    manifest: Manifest
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def compressed(self) -> int:
        """Bytes a pull transfers: config and layers as stored."""
        return self.config.size + sum(layer.size for layer in self.layers)


@dataclass(frozen=True)
class StoredBundle:
    """One attestation file: its bytes, predicate type and the digests it is about."""

    path: Path
    data: bytes
    predicate_type: str
    subjects: tuple[str, ...]

    @property
    def kind(self) -> str:
        """The short name (provenance, SPDX SBOM, ...)."""
        return predicate_name(self.predicate_type)


@dataclass
class StoredImage:
    """One variant's layout: tags, platforms, manifests, referrers and evidence."""

    layout: ImageLayout
    name: str
    variant: str
    tag: str
    top: Manifest
    platforms: tuple[PlatformImage, ...]
    bundles: tuple[StoredBundle, ...]
    unreadable: tuple[str, ...]
    meta: SiteMeta | None
    archived: bool = False  # an earlier release, kept under history/
    manifests: dict[Digest, Manifest] = field(default_factory=dict)
    referrers: dict[Digest, list[Descriptor]] = field(default_factory=dict)
    small_blobs: dict[Digest, bytes] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The variant's image name: ``python``, ``python-dev``."""
        return self.name if self.variant == "runtime" else f"{self.name}-{self.variant}"

    @property
    def repository(self) -> str:
        """Where the front door serves it: ``kiln/<name>``."""
        return f"{PREFIX}/{self.name}"

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags ``kiln publish`` moves for this variant (``latest`` included); an
        earlier release keeps only its full version's tag (the others moved on)."""
        return (self.tag,) if self.archived else tags_for(self.tag, self.variant)

    @property
    def digest(self) -> str:
        """The image (index) digest."""
        return str(self.top.digest)

    @property
    def annotations(self) -> dict[str, str]:
        """The index's (or manifest's) annotations."""
        return dict(self.top.parsed.annotations or {})

    @property
    def created(self) -> str:
        """When the image says it was created (SOURCE_DATE_EPOCH)."""
        return self.annotations.get("org.opencontainers.image.created", "")

    @property
    def version(self) -> str:
        """The upstream version the image was built at (may be empty)."""
        return self.annotations.get("org.opencontainers.image.version", "")

    @property
    def description(self) -> str:
        """The spec's description, from the annotations."""
        return self.annotations.get("org.opencontainers.image.description", "")

    @property
    def digests(self) -> ImageDigests:
        """The index and per-arch manifest digests (what attestations are about)."""
        return ImageDigests(
            self.label,
            self.digest,
            {p.arch: str(p.manifest.digest) for p in self.platforms if p.manifest != self.top},
        )

    def raw_bundles(self) -> tuple[RawBundle, ...]:
        """The bundles as ``kiln.attest.verify_image`` takes them."""
        return tuple(RawBundle(str(b.path), b.data) for b in self.bundles)

    def platform(self, arch: str) -> PlatformImage | None:
        """The platform image of one Debian architecture, if any."""
        return next((p for p in self.platforms if p.arch == arch), None)

    def blob_descriptors(self) -> dict[Digest, Descriptor]:
        """Every blob a manifest of this image (or of its referrers) lists."""
        found: dict[Digest, Descriptor] = {}
        for manifest in self.manifests.values():
            parsed = manifest.parsed
            if isinstance(parsed, ImageManifest):
                for d in (parsed.config, *parsed.layers):
                    found[d.digest] = d
        return found


def _platform_images(layout: ImageLayout, top: Manifest) -> tuple[PlatformImage, ...]:
    found = []
    if isinstance(top.parsed, ImageIndex):
        children = [(c, layout.manifest(c)) for c in top.parsed.manifests]
    else:
        children = [(top.descriptor, top)]
    for descriptor, manifest in children:
        parsed = manifest.parsed
        if not isinstance(parsed, ImageManifest):
            raise InputError(f"{layout.path}: nested index {manifest.digest} is not supported")
        platform = descriptor.platform
        if platform is None:
            config = read_json_file(
                layout.blob(parsed.config.digest), max_bytes=_MAX_META_BYTES, what="image config"
            )
            os_name = str(config.get("os", "linux")) if isinstance(config, dict) else "linux"
            arch = str(config.get("architecture", "")) if isinstance(config, dict) else ""
            variant = None
        else:
            os_name, arch, variant = platform.os, platform.architecture, platform.variant
        debian = {"arm": "armhf", "386": "i386"}.get(arch, arch)
        name = f"{os_name}/{arch}" + (f"/{variant}" if variant else "")
        found.append(PlatformImage(debian, name, manifest, parsed.config, parsed.layers))
    return tuple(found)


def _bundles(directory: Path) -> tuple[tuple[StoredBundle, ...], tuple[str, ...]]:
    """Each readable bundle with its statement's subjects; why the others were skipped."""
    found: list[StoredBundle] = []
    problems: list[str] = []
    if not directory.is_dir():
        return (), ()
    for path in sorted(directory.iterdir()):
        if not path.name.endswith(BUNDLE_SUFFIXES) or not path.is_file():
            continue
        if path.stat().st_size > MAX_BUNDLE_BYTES:
            problems.append(f"{path.name}: larger than {MAX_BUNDLE_BYTES} bytes")
            continue
        data = path.read_bytes()
        try:
            statement = parse_bundle(data, where=str(path)).statement(where=str(path))
        except KilnError as exc:
            problems.append(f"{path.name}: {exc.message}")
            continue
        subjects = tuple(sorted(statement.subject_digests()))
        found.append(StoredBundle(path, data, statement.predicate_type, subjects))
    return tuple(found), tuple(problems)


def _name_variant(path: Path, top: Manifest, tag: str, meta: SiteMeta | None) -> tuple[str, str]:
    """The image name and variant: ``site.json``, else the layout's title and ref name."""
    if meta is not None:
        return meta.name, meta.variant
    title = (top.parsed.annotations or {}).get("org.opencontainers.image.title", path.name)
    base, dash, variant = title.rpartition("-")
    if dash and base and tag.endswith(f"-{variant}") and valid_name(base):
        return base, variant
    name = title if valid_name(title) else path.name
    return name, "runtime"


def load_image(path: Path, *, archived: bool = False) -> StoredImage:
    """Read one layout with its evidence; ``InputError`` when it is not a usable image."""
    layout = ImageLayout.open(path)
    top_descriptor = layout.select()
    top = layout.manifest(top_descriptor)
    tag = (top_descriptor.annotations or {}).get(REF_NAME, "latest")
    if not TAG_PATTERN.fullmatch(tag):
        raise InputError(f"{path}/index.json: ref name {tag!r} is not an OCI tag")
    meta_path = path / SITE_META
    meta = read_meta(meta_path) if meta_path.is_file() else None
    name, variant = _name_variant(path, top, tag, meta)
    if not valid_name(name):
        raise InputError(f"{path}: image name {name!r} is not a repository name")
    platforms = _platform_images(layout, top)
    bundles, unreadable = _bundles(path / ATTESTATIONS)
    image = StoredImage(
        layout, name, variant, tag, top, platforms, bundles, unreadable, meta, archived
    )
    image.manifests[top.digest] = top
    for p in platforms:
        image.manifests[p.manifest.digest] = p.manifest
    _attach_referrers(image)
    return image


def _attach_referrers(image: StoredImage) -> None:
    """Each bundle as an artifact manifest referring to each of its subjects in the image."""
    subjects = {str(d): m.descriptor for d, m in image.manifests.items()}
    image.small_blobs[Digest.of(EMPTY_JSON)] = EMPTY_JSON
    for bundle in image.bundles:
        for digest in bundle.subjects:
            subject = subjects.get(digest)
            if subject is None:
                continue  # about another image (an older build): not a referrer here
            manifest, layer = artifact_manifest(
                subject,
                artifact_type=SIGSTORE_BUNDLE,
                payload=bundle.data,
                payload_media_type=SIGSTORE_BUNDLE,
                annotations={PREDICATE_TYPE_ANNOTATION: bundle.predicate_type},
            )
            image.manifests[manifest.digest] = manifest
            image.small_blobs[layer.digest] = bundle.data
            image.referrers.setdefault(subject.digest, []).append(manifest.descriptor)
    empty = Descriptor.of(EMPTY_JSON, OCI_EMPTY)
    image.small_blobs.setdefault(empty.digest, EMPTY_JSON)


@dataclass(frozen=True)
class Repository:
    """``kiln/<name>``: every variant of one image, and their tags."""

    name: str
    images: tuple[StoredImage, ...]

    @property
    def path(self) -> str:
        """The repository path: ``kiln/<name>``."""
        return f"{PREFIX}/{self.name}"

    def tags(self) -> dict[str, StoredImage]:
        """tag -> image. A variant's tags never collide with another's (they carry its
        suffix); a current release's tags win over an earlier one's, as in a registry
        where ``kiln publish`` moved them."""
        found: dict[str, StoredImage] = {}
        for image in sorted(self.images, key=lambda i: not i.archived):
            for tag in image.tags:
                found[tag] = image
        return found

    @property
    def current(self) -> tuple[StoredImage, ...]:
        """The images the catalog lists (not the earlier releases)."""
        return tuple(image for image in self.images if not image.archived)

    def manifest(self, reference: str) -> Manifest | None:
        """A manifest by tag or digest (only one this repository's images hold)."""
        if DIGEST_PATTERN.fullmatch(reference):
            digest = Digest.parse(reference)
            for image in self.images:
                if digest in image.manifests:
                    return image.manifests[digest]
            return None
        tagged = self.tags().get(reference)
        return tagged.top if tagged is not None else None

    def referrers(self, digest: Digest) -> list[Descriptor]:
        """The artifact manifests attached to ``digest``."""
        return [d for image in self.images for d in image.referrers.get(digest, [])]

    def blob(self, digest: Digest) -> tuple[StoredImage, bytes | Path] | None:
        """Where a blob is: its bytes (evidence) or its file in a layout."""
        for image in self.images:
            if digest in image.small_blobs:
                return image, image.small_blobs[digest]
            if digest in image.blob_descriptors():
                return image, image.layout.blob(digest)
        return None


@dataclass(frozen=True)
class _Stamp:
    """What tells a layout changed: index.json, site.json and the attestations' mtimes."""

    values: tuple[int, ...]

    @classmethod
    def of(cls, path: Path) -> _Stamp:
        values = []
        for each in (path / "index.json", path / SITE_META, path / ATTESTATIONS):
            try:
                stat = each.stat()
            except OSError:
                values += [0, 0]
                continue
            values += [stat.st_mtime_ns, stat.st_ino]
        return cls(tuple(values))


class Store:
    """The images under one directory, reloaded when a layout changes on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._images: dict[Path, tuple[_Stamp, StoredImage | None, str]] = {}
        self._verified: dict[tuple[Path, Digest], tuple[int, int, int]] = {}
        self._uncompressed: dict[Digest, int | None] = {}

    @property
    def public_key(self) -> Path:
        """Where the published key is: ``<store>/kiln.pub``."""
        return self.root / PUBLIC_KEY

    def _layouts(self) -> list[Path]:
        if not self.root.is_dir():
            raise InputError(
                f"store {self.root} is not a directory",
                hint="build images first (kiln build / kiln site publish) or pass --store DIR",
            )
        found = [p for p in self.root.iterdir() if (p / "oci-layout").is_file()]
        history = self.root / HISTORY
        if history.is_dir():
            found += [
                release
                for label in history.iterdir()
                if label.is_dir()
                for release in label.iterdir()
                if (release / "oci-layout").is_file()
            ]
        return sorted(found)

    def refresh(self) -> None:
        """Re-read the layouts whose files changed since the last look."""
        with self._lock:
            seen = set()
            for path in self._layouts():
                seen.add(path)
                stamp = _Stamp.of(path)
                cached = self._images.get(path)
                if cached is not None and cached[0] == stamp:
                    continue
                archived = path.parent.parent == self.root / HISTORY
                try:
                    self._images[path] = (stamp, load_image(path, archived=archived), "")
                except KilnError as exc:
                    self._images[path] = (stamp, None, exc.message)
                except OSError as exc:
                    self._images[path] = (stamp, None, f"{exc.filename or path}: {exc.strerror}")
            for gone in set(self._images) - seen:
                del self._images[gone]

    def problems(self) -> list[str]:
        """Layouts that could not be read, and why (shown on the catalog page)."""
        return [
            f"{path.relative_to(self.root)}: {why}"
            for path, (_, image, why) in self._images.items()
            if why
        ]

    def images(self, *, archived: bool = False) -> list[StoredImage]:
        """The current images (with ``archived``, the earlier releases too)."""
        self.refresh()
        return [
            image
            for _, image, _ in self._images.values()
            if image is not None and (archived or not image.archived)
        ]

    def repositories(self) -> dict[str, Repository]:
        """name -> its repository (current images and earlier releases)."""
        by_name: dict[str, list[StoredImage]] = {}
        for image in self.images(archived=True):
            by_name.setdefault(image.name, []).append(image)
        return {
            name: Repository(name, tuple(sorted(images, key=lambda i: i.variant != "runtime")))
            for name, images in sorted(by_name.items())
        }

    def verified_blob(self, path: Path, digest: Digest) -> Path:
        """``path`` once its content hashes to ``digest`` (re-hashed when the file changes)."""
        stat = path.stat()
        key = (path, digest)
        stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if self._verified.get(key) == stamp:
            return path
        hasher = digest.hasher()
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
        if not digest.matches(hasher):
            raise IntegrityError(f"{path}: stored blob does not match its digest {digest}")
        self._verified[key] = stamp
        return path

    def uncompressed_size(self, image: StoredImage, layer: Descriptor) -> int | None:
        """A layer's size unpacked (streamed once, then remembered by digest); None when
        it does not decompress (a damaged blob: the front door refuses to serve it too)."""
        if layer.digest in self._uncompressed:
            return self._uncompressed[layer.digest]
        total: int | None = 0
        try:
            total = _unpacked_size(image.layout.blob(layer.digest), layer)
        except (zlib.error, zstandard.ZstdError, KilnError, OSError):
            total = None
        self._uncompressed[layer.digest] = total
        return total

    def sizes(self, image: StoredImage) -> dict[str, tuple[int, int | None]]:
        """arch -> (compressed, uncompressed) bytes; uncompressed None if a layer is damaged."""
        found: dict[str, tuple[int, int | None]] = {}
        for p in image.platforms:
            unpacked = [self.uncompressed_size(image, layer) for layer in p.layers]
            known = [size for size in unpacked if size is not None]
            total = p.config.size + sum(known) if len(known) == len(unpacked) else None
            found[p.arch] = (p.compressed, total)
        return found


def _unpacked_size(path: Path, layer: Descriptor) -> int | None:
    """Bytes ``path`` decompresses to under the layer's media type (None: truncated)."""
    total = 0
    with path.open("rb") as handle:
        if layer.media_type.endswith("+gzip"):
            inflate = zlib.decompressobj(wbits=31)
            while chunk := handle.read(_CHUNK):
                total += len(inflate.decompress(chunk))
            total += len(inflate.flush())
            return total if inflate.eof else None
        if layer.media_type.endswith("+zstd"):
            reader = zstandard.ZstdDecompressor().stream_reader(handle)
            while chunk := reader.read(_CHUNK):
                total += len(chunk)
            return total
    return layer.size


def published_at(meta: SiteMeta | None, created: str) -> str:
    """When the image was last rebuilt/published: site.json's time, else the created date."""
    return (meta.published if meta and meta.published else created) or ""


def now_iso() -> str:
    """The current UTC time, as ``site.json`` records it."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
