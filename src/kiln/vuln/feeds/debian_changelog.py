"""Changelog-derived Debian fixes: a version whose changelog entry names a CVE fixes it.

Input: a directory (or zip) of ``<source>.changelog.Debian`` files, or of ``.deb`` files
(recognised by content, so kiln's content-addressed download cache works as is) whose
``usr/share/doc/<pkg>/changelog.Debian.gz`` is read with python-debian. The first
(oldest) version that names a CVE fixes it for every later version of that source
package (Debian Policy §4.4 for the changelog format).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from typing import ClassVar

from debian.changelog import ChangeBlock, Changelog, ChangelogParseError

from kiln.debian.deb import DebFormatError, read_changelog
from kiln.errors import Location
from kiln.vuln.feeds.interface import Feed, FeedFormatError, FeedWarning, ImportMode
from kiln.vuln.feeds.source import FeedInput
from kiln.vuln.model import ChangelogFix, FeedRecord

CVE_RE = re.compile(r"\bCVE-\d{4}-\d{4,}\b")
_CHANGELOG_RE = re.compile(r"(^|/)([^/]+\.)?changelog(\.Debian)?(\.gz)?$")
_BLOB_RE = re.compile(r"(^|/)[0-9a-f]{64}$")
_AR_MAGIC = b"!<arch>\n"  # a .deb is an ar archive (deb(5))


def parse_changelog(text: bytes, display: str) -> Changelog:
    """A Debian changelog parsed strictly; ``FeedFormatError`` naming ``display`` if not one."""
    try:
        changelog = Changelog(text, strict=True)
    except (ChangelogParseError, ValueError) as exc:
        raise FeedFormatError(f"not a valid Debian changelog: {exc}", Location(display)) from exc
    if len(changelog) == 0:
        raise FeedFormatError("not a Debian changelog: no entries", Location(display))
    return changelog


def fixes_from_changelog(text: bytes, display: str) -> list[ChangelogFix]:
    """The (source, CVE) -> first fixing version facts of one changelog, sorted."""
    changelog = parse_changelog(text, display)
    # Facts belong to the current source name: older entries may carry a former name
    # (libidn2-0 became libidn2), and the fix lineage continues under the new one.
    source = str(changelog.package)
    first: dict[str, ChangelogFix] = {}
    # Blocks run newest first; walking oldest first keeps the first version naming a CVE.
    for block in reversed(list(changelog)):
        body = "\n".join(block.changes())
        for cve in sorted(set(CVE_RE.findall(body))):
            if cve not in first:
                first[cve] = ChangelogFix(
                    source=source,
                    cve=cve,
                    version=_block_version(block, display),
                    distribution=str(block.distributions or ""),
                )
    return [first[c] for c in sorted(first)]


def _block_version(block: ChangeBlock, display: str) -> str:
    """The entry's version; python-debian checks it only when it is first read."""
    try:
        return str(block.version)
    except ValueError as exc:
        raise FeedFormatError(
            f"not a valid Debian changelog: {exc} in the entry of {block.package}",
            Location(display),
        ) from exc


def _changelog_from_deb(data: bytes, display: str) -> bytes | None:
    """The changelog inside a .deb, read with kiln's checked .deb reader (limits, traversal)."""
    try:
        found = read_changelog(data, name=display, allow_devices=True)
    except DebFormatError as exc:
        raise FeedFormatError(f"not a readable .deb: {exc.message}", Location(display)) from exc
    return None if found is None else found.text.encode()


class DebianChangelogFeed(Feed):
    """CVE fixes named in Debian changelogs (files, or inside cached .debs)."""

    name: ClassVar[str] = "debian-changelog"
    # Each input covers the source packages it has: keep what other inputs taught us.
    mode: ClassVar[ImportMode] = "upsert"

    def records(self, source: FeedInput) -> Iterator[FeedRecord | FeedWarning]:
        for member in source.members():
            display = source.display(member)
            with source.open(member if source.kind in ("dir", "zip") else None) as fh:
                head = fh.read(8)
                is_deb = head == _AR_MAGIC
                wanted = is_deb or _CHANGELOG_RE.search(member) or source.kind in ("file", "bytes")
                if not wanted:
                    # kiln's download cache names blobs by sha256: indexes sit beside .debs.
                    if not _BLOB_RE.search(member):
                        yield FeedWarning(
                            "skipped: neither a changelog nor a .deb", Location(display)
                        )
                    continue
                data = head + fh.read()
            if is_deb:
                text = _changelog_from_deb(data, display)
                if text is None:
                    yield FeedWarning("no changelog.Debian.gz inside", Location(display))
                    continue
            else:
                text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            yield from fixes_from_changelog(text, display)
