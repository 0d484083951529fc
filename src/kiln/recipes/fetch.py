"""Download a source package's files from the pool, each checked against the signed index.

Every file named in the ``Sources`` stanza (``Checksums-Sha256``) is fetched into kiln's
content-addressed cache only after its size and sha256 matched, then linked under its
own name into a directory ready for ``dpkg-source -x``. Some mirrors keep the tarballs
but lack the ``.dsc``: when every other file is present and verified, the ``.dsc`` is
synthesised from the index entry (the fields dpkg-source(1) reads, with the checksums
of the signed index). When tarballs are missing, the error names them and the mirror.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from debian.deb822 import Dsc

from kiln.debian.cache import Cache
from kiln.debian.client import NOT_FOUND, fetch_promised
from kiln.debian.source_index import SourceFile, SourcePackage, SourceUniverse
from kiln.errors import RemoteContentError
from kiln.net import Fetcher, HttpStatusError

# Fields of a Sources stanza that are also .dsc fields (deb-src-control(5)); the others
# (Directory, Priority, Section, Package-List's order, Files of the index) are index-only
# or recomputed.
_DSC_FIELDS = (
    "Format",
    "Source",
    "Binary",
    "Architecture",
    "Version",
    "Maintainer",
    "Uploaders",
    "Homepage",
    "Description",
    "Standards-Version",
    "Vcs-Browser",
    "Vcs-Arch",
    "Vcs-Bzr",
    "Vcs-Cvs",
    "Vcs-Darcs",
    "Vcs-Git",
    "Vcs-Hg",
    "Vcs-Mtn",
    "Vcs-Svn",
    "Testsuite",
    "Testsuite-Triggers",
    "Build-Depends",
    "Build-Depends-Arch",
    "Build-Depends-Indep",
    "Build-Conflicts",
    "Build-Conflicts-Arch",
    "Build-Conflicts-Indep",
    "Package-List",
)


@dataclass(frozen=True)
class FetchedSource:
    """A source package's verified files laid out in ``directory``."""

    package: SourcePackage
    directory: Path
    dsc: Path
    dsc_synthesised: bool
    mirror: str  # the pool directory URL(s) the files were read from

    @property
    def digests(self) -> Mapping[str, str]:
        """File name -> sha256, as the signed index promised (for provenance)."""
        return {f.name: f.sha256 for f in self.package.files}


def fetch_source(
    package: SourcePackage,
    dest: Path,
    *,
    universe: SourceUniverse,
    cache: Cache,
    fetcher: Fetcher,
) -> FetchedSource:
    """Download ``package`` into ``dest`` (created); verify every file; maybe synthesise .dsc."""
    mirrors = universe.locations(package)
    mirror = " and ".join(mirrors)
    dest.mkdir(parents=True, exist_ok=True)
    missing: list[str] = []
    dsc_entry = package.dsc
    dsc_missing = False
    for item in package.files:
        blob = _fetch_any(item, package, mirrors=mirrors, cache=cache, fetcher=fetcher)
        if blob is None:
            if item is dsc_entry:
                dsc_missing = True
            else:
                missing.append(item.name)
        else:
            _place(blob, dest / item.name)
    if missing:
        raise RemoteContentError(
            f"source package {package.name} {package.version} is incomplete on the mirror: "
            f"{', '.join(missing)} missing from {mirror}",
            hint="the mirror lacks files its signed Sources index lists; use another mirror "
            "(kiln config mirrors.debian) or wait for it to sync",
        )
    if dsc_entry is None or dsc_missing:
        name = dsc_entry.name if dsc_entry else _dsc_name(package)
        path = dest / name
        md5 = {f.name: _md5(dest / f.name) for f in package.upstream_files}
        path.write_text(synthesise_dsc(package, md5=md5), encoding="utf-8")
        return FetchedSource(package, dest, path, True, mirror)
    return FetchedSource(package, dest, dest / dsc_entry.name, False, mirror)


def _fetch_any(
    item: SourceFile,
    package: SourcePackage,
    *,
    mirrors: tuple[str, ...],
    cache: Cache,
    fetcher: Fetcher,
) -> Path | None:
    """The verified file from the first mirror that has it; ``None`` if none has it."""
    for mirror in mirrors:
        try:
            return _fetch_file(item, package, mirror=mirror, cache=cache, fetcher=fetcher)
        except HttpStatusError as exc:
            if exc.status not in NOT_FOUND:
                raise
    return None


def _fetch_file(
    item: SourceFile, package: SourcePackage, *, mirror: str, cache: Cache, fetcher: Fetcher
) -> Path:
    found = cache.find_blob(item.sha256, size=item.size)
    if found is not None:
        return found
    url = f"{mirror}/{item.name}"
    source = f"{url} ({package.name} {package.version})"
    body = fetch_promised(fetcher, url, size=item.size, source=source)
    return cache.put_blob(body, sha256=item.sha256, size=item.size, source=source)


def _place(blob: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(blob, target)
    except OSError:
        shutil.copyfile(blob, target)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _dsc_name(package: SourcePackage) -> str:
    version = package.version.split(":", 1)[-1]
    return f"{package.name}_{version}.dsc"


def synthesise_dsc(package: SourcePackage, *, md5: Mapping[str, str] | None = None) -> str:
    """An unsigned ``.dsc`` for ``package`` built from its signed index entry.

    The index stanza carries the .dsc's fields (renaming ``Package`` to ``Source``);
    the checksum fields list the tarballs with the sizes and digests of the signed
    index (the .dsc itself dropped), which ``dpkg-source -x`` checks when it unpacks.
    dpkg-source also requires the MD5 ``Files`` field: when the index has none, it is
    computed (``md5``) from the files already verified against the signed sha256.
    """
    index = Dsc(package.stanza)
    dsc = Dsc()
    dsc["Format"] = package.format
    dsc["Source"] = package.name
    for name in _DSC_FIELDS:
        if name not in ("Format", "Source") and name in index:
            dsc[name] = index[name]
    for name in ("Checksums-Sha256", "Checksums-Sha1", "Files"):
        if name in index:
            dsc[name] = [e for e in index[name] if not str(e.get("name", "")).endswith(".dsc")]  # type: ignore[assignment]
    if "Files" not in dsc and md5 is not None:
        dsc["Files"] = [  # type: ignore[assignment]
            {"md5sum": md5[f.name], "size": str(f.size), "name": f.name}
            for f in package.upstream_files
        ]
    return str(dsc.dump())
