"""Vulnerability orchestration: import a feed, scan a target (pulled and verified if remote).

``kiln db update`` and ``kiln scan`` (and the factory) run these:

* ``update_feed`` picks a feed's input: a file, directory, zip or URL given with
  ``--from``, else the feed's own URL; with three special cases: ``debian-archive``
  reads the configured Debian mirror for a scope of source packages (the catalog's
  locks, some scan targets, or all of main), ``nvd`` downloads the window since its
  stored cursor through the API client, and ``debian-changelog`` reads kiln's .deb
  cache. It imports the input as one snapshot (all or nothing).
* ``scan_target`` scans a local target (layout, image tar, rootfs, SBOM, dpkg status)
  or a registry reference: the reference is pulled into a scratch layout and, with a
  public key, the signed VEX attached to it in the registry is verified and applied
  with the VEX files given. It returns the report model (``ScanResult``) that every
  formatter renders.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.errors import InputError

if TYPE_CHECKING:
    from kiln.vuln.db.store import ImportResult
    from kiln.vuln.feeds import Feed, FeedInput
    from kiln.vuln.scan import ScanResult
    from kiln.vuln.vex import VexStatement

# The vulnerability stack (SQLAlchemy, the feeds, the registry client, the attestation
# verifier) loads inside the functions: a command pays only for what it runs.
# ruff: noqa: PLC0415

DEFAULT_ARCHIVE_DISTRO = "debian-13"


@dataclass(frozen=True)
class FeedRequest:
    """Which feed to import, from where (``kiln db update``'s options)."""

    source: str  # a name in kiln.vuln.feeds.FEEDS
    from_: str | None = None  # FILE, DIR, ZIP or URL (default: the feed's own)
    since: str | None = None  # nvd: start of the last-modified window (ISO 8601)
    force: bool = False  # import even if the input digest is unchanged
    all_sources: bool = False  # debian-archive: every source package of main
    images: tuple[str, ...] = ()  # debian-archive: the sources of these scan targets
    catalog: Path | None = None  # debian-archive: the catalog whose locks name the sources
    distro: str = DEFAULT_ARCHIVE_DISTRO  # debian-archive: the release to derive statuses for


def update_feed(request: FeedRequest, db: str | None = None) -> ImportResult:
    """Import one feed as a new snapshot of the database at ``db`` (default ``$KILN_DB``).

    Raises ``InputError`` for an unknown source or options that do not fit it.
    """
    from kiln.net import HttpFetcher
    from kiln.vuln.db import VulnDB
    from kiln.vuln.feeds import FEEDS, NvdFeed, resolve_input

    source, from_ = request.source, request.from_
    if source not in FEEDS:
        raise InputError(
            f"unknown feed source {source!r}", hint=f"choose one of: {', '.join(FEEDS)}"
        )
    feed = FEEDS[source]()
    archive_input: FeedInput | None = None
    if source == "debian-archive":
        if from_ is not None:
            raise InputError(
                "debian-archive reads the configured Debian mirror; --from is not used",
                hint="choose the sources with --catalog DIR, --image TARGET or --all",
            )
        feed, archive_input = _archive_feed(request)
    store = VulnDB.open(db)
    try:
        cursor = None
        if archive_input is not None:
            data = archive_input
        elif isinstance(feed, NvdFeed) and (
            from_ is None or from_.startswith(("http://", "https://"))
        ):
            data, cursor = _nvd_window(request, store.cursor("nvd"))
        elif from_ is None and source == "debian-changelog":
            from kiln.debian.cache import default_cache_root

            blobs = default_cache_root() / "sha256"
            if not blobs.is_dir():
                raise InputError(
                    f"no cached .deb files under {blobs}",
                    hint="pass --from DIR of <source>.changelog.Debian files or .debs",
                )
            data = resolve_input(str(blobs))
        elif from_ is None:
            if feed.default_url is None:
                raise InputError(
                    f"the {source} feed has no download URL", hint="pass --from FILE|DIR"
                )
            data = resolve_input(feed.default_url, fetcher=HttpFetcher())
        else:
            data = resolve_input(from_, fetcher=HttpFetcher() if "://" in from_ else None)
        return store.import_feed(feed, data, cursor=cursor, force=request.force)
    finally:
        store.close()


def _nvd_window(request: FeedRequest, previous: str | None) -> tuple[FeedInput, str]:
    """NVD's changes since ``--since`` (else the stored cursor), and the new cursor."""
    from kiln.net import HttpFetcher, http_client
    from kiln.vuln.feeds import NvdClient, NvdFeed, parse_since

    client = http_client()
    key = os.environ.get("NVD_API_KEY")
    if key:
        client.headers["apiKey"] = key
    fetcher = HttpFetcher(client)
    end = datetime.now(UTC)
    since = request.since
    start = parse_since(since) if since else (parse_since(previous) if previous else None)
    base_url = request.from_ or NvdFeed.default_url or ""
    nvd = NvdClient(fetcher, base_url=base_url, api_key=bool(key))
    return nvd.download(start, end), end.isoformat(timespec="seconds")


def _archive_feed(request: FeedRequest) -> tuple[Feed, FeedInput]:
    """The debian-archive feed over the configured mirror and its input for this scope."""
    from kiln.debian.cache import Cache
    from kiln.debian.distro import get_distro
    from kiln.debian.sources import discover_mirrors
    from kiln.net import HttpFetcher, SchemeFetcher
    from kiln.vuln.feeds import Archive, DebianArchiveFeed, Scope

    images, catalog = list(request.images), request.catalog
    if sum((request.all_sources, bool(images), catalog is not None)) > 1:
        raise InputError("choose one of --all, --image and --catalog")
    if request.all_sources:
        scope = Scope(None, "all of main")
    elif images:
        scope = Scope(frozenset(_image_sources(images)), f"sources of {', '.join(images)}")
    else:
        from kiln.migrate import default_catalog_dir

        directory = catalog or default_catalog_dir()
        scope = Scope(frozenset(catalog_sources(directory)), f"sources of the locks in {directory}")
    keyring = os.environ.get("KILN_KEYRING")
    archive = Archive(
        distro=get_distro(request.distro),
        cache=Cache.default(),
        fetcher=SchemeFetcher(HttpFetcher()),
        mirrors=discover_mirrors(),
        now=lambda: datetime.now(UTC),
        keyring=Path(keyring) if keyring else None,
    )
    return DebianArchiveFeed(archive, scope), archive.manifest(scope)


def catalog_sources(directory: Path) -> set[str]:
    """The source packages every lock of a catalog names."""
    from kiln.resolve.lockfile import parse_lock

    locks = sorted(directory.glob("*.lock.json"))
    if not locks:
        raise InputError(
            f"no *.lock.json in {directory}", hint="lock the catalog first, or pass --image/--all"
        )
    try:
        return {
            p.source for path in locks for p in parse_lock(path.read_bytes(), path).all_packages()
        }
    except OSError as exc:
        raise InputError(f"cannot read the locks in {directory}: {exc}") from exc


def _image_sources(targets: list[str]) -> set[str]:
    """The Debian source packages installed in each scan target."""
    from kiln.inventory import load_target

    names: set[str] = set()
    for target in targets:
        inventory = load_target(target)
        names |= {p.source_name or p.name for p in inventory.packages if p.ecosystem == "deb"}
    if not names:
        raise InputError(f"no Debian packages in {', '.join(targets)}")
    return names


# ------------------------------------------------------------------------------ scanning


def is_registry_reference(target: str) -> bool:
    """A target that is no local path and reads as HOST[:PORT]/REPO[:TAG][@DIGEST]."""
    if Path(target).exists() or "/" not in target:
        return False
    host = target.split("/", 1)[0]
    return "." in host or ":" in host or host == "localhost"


def scan_target(
    target: str,
    *,
    vex: Sequence[Path] = (),
    db: str | None = None,
    platform: str | None = None,
    key: Path | None = None,
    insecure: bool = False,
) -> ScanResult:
    """Scan ``target`` against the database at ``db`` with the VEX documents ``vex``.

    A registry reference is pulled into a scratch layout first; with ``key`` (a public
    key) the VEX attached to it in the registry and signed with that key applies too,
    and without one the report says it was not read. ``key`` with a local target is an
    ``InputError``. ``platform`` (os/arch[/variant]) picks one image of a multi-arch one.
    """
    from kiln.inventory import load_target
    from kiln.vuln.db import open_for_scan
    from kiln.vuln.scan import scan_inventory

    statements: list[VexStatement] = []
    if vex:
        from kiln.vuln.vex import load_vex

        statements = [s for p in vex for s in load_vex(p)]
    with tempfile.TemporaryDirectory(prefix="kiln-scan-") as tmp:
        notes: list[str] = []
        if is_registry_reference(target):
            target, attested, notes = _pull_for_scan(target, Path(tmp), key, insecure)
            statements.extend(attested)
        elif key is not None:
            raise InputError("--key verifies VEX attached in a registry; TARGET is local")
        inventory = load_target(target, platform) if platform else load_target(target)
        store = open_for_scan(db)
        try:
            return scan_inventory(
                inventory, store, vex=statements, warnings=[*inventory.warnings, *notes]
            )
        finally:
            store.close()


def _pull_for_scan(
    target: str, into: Path, key: Path | None, insecure: bool
) -> tuple[str, list[VexStatement], list[str]]:
    """Pull ``target`` into ``into``; with ``key``, the signed VEX attached to it too."""
    from kiln.attest import ImageDigests, check_bundles, load_verifier
    from kiln.attest.verify import fetch_bundles
    from kiln.registry import Reference, RegistryClient, pull_layout
    from kiln.vuln.vex.attested import vex_from_attestations

    reference = Reference.parse(target)
    layout = into / "image"
    with RegistryClient.for_host(reference.registry, insecure=insecure) as client:
        pulled = pull_layout(client, reference, layout)
        if key is None:
            return str(layout), [], ["VEX attached in the registry not read: give --key PUB"]
        digests = ImageDigests.from_layout(layout)
        raws = fetch_bundles(client, reference.repository, pulled.descriptor.digest)
    checked = check_bundles(raws, load_verifier(key))
    attested = vex_from_attestations(checked, {digests.index_digest, *digests.manifests.values()})
    applied = f"{len(attested.statements)} VEX statement(s) from signed registry attestations"
    return str(layout), list(attested.statements), [applied, *attested.set_aside]
