"""What the pages say about an image, computed the way the CLI computes it.

* verification: ``kiln.attest.verify_image`` with ``default_policy()`` over the layout's
  bundles and the store's published key: the verdict ``kiln verify REF --key kiln.pub``
  prints;
* vulnerabilities: ``kiln.inventory.load_target`` on the layout for one platform, then
  ``kiln.vuln.scan_inventory`` against the database with the signed VEX attached to the
  image applied: what ``kiln scan REF --platform P --key kiln.pub`` reports;
* packages: the installed set (``kiln.inventory``), and the signed SPDX / CycloneDX
  SBOMs for download;
* diff: packages, CVEs fixed and size between two tags.

Results are cached by digest (content-addressed: an image never changes under its
digest) and, for scans, by the database snapshots they used, for ``SCAN_TTL`` seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kiln.attest import (
    CYCLONEDX_1_6,
    SPDX_2_3,
    VerificationError,
    VerificationReport,
    check_bundles,
    default_policy,
    load_verifier,
    verify_image,
)
from kiln.attest.bundle import parse_bundle
from kiln.attest.keys import Verifier
from kiln.errors import KilnError
from kiln.inventory import load_target
from kiln.inventory.model import Inventory
from kiln.site.store import Store, StoredBundle, StoredImage
from kiln.vuln import FindingStatus, ScanResult, scan_inventory
from kiln.vuln.db import open_for_scan
from kiln.vuln.report.json_format import result_json
from kiln.vuln.vex.attested import vex_from_attestations

SCAN_TTL = 300.0
#: cached results kept at most (the oldest go first): images change, the process stays
MAX_CACHED = 1024
T = TypeVar("T")


@dataclass(frozen=True)
class Verdict:
    """``kiln verify``'s outcome on one image, or why it failed."""

    ok: bool
    key_id: str
    passes: tuple[str, ...]
    warnings: tuple[str, ...]
    failures: tuple[str, ...]
    attestations: tuple[tuple[str, str, bool], ...]  # (kind, source file, signed by the key)

    def to_json(self) -> dict[str, Any]:
        """The verdict as the API returns it."""
        return {
            "ok": self.ok,
            "key_id": self.key_id,
            "passes": list(self.passes),
            "warnings": list(self.warnings),
            "failures": list(self.failures),
            "attestations": [
                {"kind": kind, "file": source, "signed": signed}
                for kind, source, signed in self.attestations
            ],
        }


@dataclass(frozen=True)
class DiffResult:
    """Two tags of one image compared on one platform."""

    arch: str
    added: tuple[tuple[str, str], ...]
    removed: tuple[tuple[str, str], ...]
    changed: tuple[tuple[str, str, str], ...]
    fixed: tuple[str, ...]  # CVE ids active in the first and not in the second
    introduced: tuple[str, ...]
    size_before: int
    size_after: int

    def to_json(self) -> dict[str, Any]:
        """The diff as the API returns it."""
        return {
            "arch": self.arch,
            "added": [{"name": n, "version": v} for n, v in self.added],
            "removed": [{"name": n, "version": v} for n, v in self.removed],
            "changed": [{"name": n, "from": a, "to": b} for n, a, b in self.changed],
            "cves_fixed": list(self.fixed),
            "cves_introduced": list(self.introduced),
            "compressed_before": self.size_before,
            "compressed_after": self.size_after,
            "compressed_change": self.size_after - self.size_before,
        }


class Evidence:
    """Verification, inventories, scans and SBOMs of the store's images, cached."""

    def __init__(self, store: Store, *, db: str | None = None) -> None:
        self.store = store
        self.db = db
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, ...], tuple[float, object]] = {}

    def _cached(self, key: tuple[str, ...], make: Callable[[], T], ttl: float | None = None) -> T:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and (ttl is None or time.monotonic() - hit[0] < ttl):
                return hit[1]  # type: ignore[return-value]
        value = make()
        with self._lock:
            while len(self._cache) >= MAX_CACHED:
                del self._cache[next(iter(self._cache))]
            self._cache[key] = (time.monotonic(), value)
        return value

    def verifier(self) -> Verifier | None:
        """The published public key, if the store has one."""
        path = self.store.public_key
        return load_verifier(path) if path.is_file() else None

    def verdict(self, image: StoredImage) -> Verdict:
        """``kiln verify`` with the default policy and the store's key."""
        verifier = self.verifier()
        if verifier is None:
            return Verdict(False, "", (), (), (f"no published key {self.store.public_key}",), ())
        bundles = image.raw_bundles()
        key = ("verify", image.digest, verifier.key_id, *sorted(b.source for b in bundles))

        def make() -> Verdict:
            checked = check_bundles(bundles, verifier)
            listed = tuple(
                (b.predicate_type or "unreadable", b.source.rsplit("/", 1)[-1], b.signed)
                for b in checked
            )
            policy = default_policy(required=(), now=dt.datetime.now(dt.UTC))
            try:
                report: VerificationReport = verify_image(bundles, image.digest, verifier, policy)
            except VerificationError as exc:
                outcome = exc.report.outcome if exc.report else None
                failures = outcome.failures if outcome else (exc.message,)
                return Verdict(False, verifier.key_id, (), (), tuple(failures), listed)
            out = report.outcome
            return Verdict(True, report.key_id, out.passes, out.warnings, (), listed)

        return self._cached(key, make, ttl=SCAN_TTL)

    def inventory(self, image: StoredImage, platform: str) -> Inventory:
        """The installed set of one platform (``kiln scan``'s first step)."""
        key = ("inventory", image.digest, platform)
        return self._cached(key, lambda: load_target(str(image.layout.path), platform))

    def scan(self, image: StoredImage, platform: str) -> ScanResult:
        """``kiln scan REF --platform P --key kiln.pub`` on the stored image."""
        key = ("scan", image.digest, platform, self.db or "")
        return self._cached(key, lambda: self._scan(image, platform), ttl=SCAN_TTL)

    def _scan(self, image: StoredImage, platform: str) -> ScanResult:
        inventory = self.inventory(image, platform)
        verifier = self.verifier()
        statements: Sequence[Any] = ()
        notes: list[str] = []
        if verifier is not None:
            checked = check_bundles(image.raw_bundles(), verifier)
            digests = image.digests
            attested = vex_from_attestations(
                checked, {digests.index_digest, *digests.manifests.values()}
            )
            statements = attested.statements
            notes = [
                f"{len(attested.statements)} VEX statement(s) from signed registry attestations",
                *attested.set_aside,
            ]
        source = open_for_scan(self.db)
        try:
            return scan_inventory(
                inventory, source, vex=statements, warnings=[*inventory.warnings, *notes]
            )
        finally:
            source.close()

    def scan_json(self, image: StoredImage, platform: str) -> dict[str, Any]:
        """The scan as ``kiln scan --format json`` writes it."""
        return result_json(self.scan(image, platform))

    def counts(self, image: StoredImage) -> dict[str, int] | None:
        """Active findings per severity on the first platform, or None if it cannot scan."""
        if not image.platforms:
            return None
        try:
            return self.scan(image, image.platforms[0].platform).counts()
        except KilnError:
            return None

    def sbom(self, image: StoredImage, fmt: str, arch: str) -> bytes | None:
        """The signed SBOM document (SPDX or CycloneDX) about one platform, as JSON bytes."""
        wanted = SPDX_2_3 if fmt == "spdx" else CYCLONEDX_1_6
        platform = image.platform(arch)
        if platform is None:
            return None
        digest = str(platform.manifest.digest)
        for bundle in image.bundles:
            if bundle.predicate_type != wanted or digest not in bundle.subjects:
                continue
            predicate = predicate_of(bundle)
            if predicate is not None:
                return json.dumps(predicate, indent=2, sort_keys=True).encode()
        return None

    def descriptions(self, image: StoredImage, arch: str) -> dict[str, str]:
        """Package name -> description (or summary) as the signed SPDX SBOM states it."""
        document = self.sbom(image, "spdx", arch)
        if document is None:
            return {}
        parsed = json.loads(document)
        found: dict[str, str] = {}
        for package in parsed.get("packages") or []:
            if not isinstance(package, dict) or not isinstance(package.get("name"), str):
                continue
            text = package.get("description") or package.get("summary")
            if isinstance(text, str):
                found[package["name"]] = text
        return found

    def diff(self, before: StoredImage, after: StoredImage, arch: str) -> DiffResult | None:
        """What changed from ``before`` to ``after`` on ``arch`` (None: not on both)."""
        one, two = before.platform(arch), after.platform(arch)
        if one is None or two is None:
            return None
        a = _versions(self.inventory(before, one.platform))
        b = _versions(self.inventory(after, two.platform))
        cves_a = _active_ids(self.scan(before, one.platform))
        cves_b = _active_ids(self.scan(after, two.platform))
        return DiffResult(
            arch=arch,
            added=tuple((n, b[n]) for n in sorted(b.keys() - a.keys())),
            removed=tuple((n, a[n]) for n in sorted(a.keys() - b.keys())),
            changed=tuple((n, a[n], b[n]) for n in sorted(a.keys() & b.keys()) if a[n] != b[n]),
            fixed=tuple(sorted(cves_a - cves_b)),
            introduced=tuple(sorted(cves_b - cves_a)),
            size_before=one.compressed,
            size_after=two.compressed,
        )


def predicate_of(bundle: StoredBundle) -> dict[str, Any] | None:
    """The predicate of a bundle's statement (read, not trusted: the page verifies)."""
    where = str(bundle.path)
    try:
        statement = parse_bundle(bundle.data, where=where).statement(where=where)
    except KilnError:
        return None
    return dict(statement.predicate)


def _versions(inventory: Inventory) -> dict[str, str]:
    return {f"{p.ecosystem}:{p.name}": p.version for p in inventory.packages}


def _active_ids(result: ScanResult) -> set[str]:
    return {f.id for f in result.active if f.status is not FindingStatus.NOT_AFFECTED}
