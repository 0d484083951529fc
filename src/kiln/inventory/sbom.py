"""Installed packages from an SBOM: SPDX 2.3 JSON or CycloneDX JSON.

Specs: https://spdx.github.io/spdx-spec/v2.3/ and https://cyclonedx.org/docs/1.6/json/.
Each package is identified by its package URL. The Debian source package comes from,
in order: the purl ``upstream=`` qualifier (syft, kiln), trivy's
``aquasecurity:trivy:Src{Name,Epoch,Version,Release}`` properties, syft's
``syft:metadata:source{,Version}`` properties, or SPDX ``sourceInfo``
("built package from: <name> <version>"). Trivy writes the epoch of a Debian version
as an ``epoch=`` qualifier; it is folded back into the version. The distro comes
from the operating-system component/package, else a purl ``distro=`` qualifier.
A package whose purl cannot be parsed is skipped with a warning naming it. An
in-toto Statement whose predicate is one of these SBOMs is unwrapped.

Limits (``read_sbom_file``): a file up to ``STREAM_ABOVE_BYTES`` is parsed whole with
``kiln.jsonlimits`` (exact line:column errors); a larger one is streamed with ijson, one
package record at a time, so memory grows with the packages kept (~1 KB each), not with
the document; at most ``MAX_SBOM_BYTES`` and ``MAX_SBOM_PACKAGES`` package records, and
nesting is checked first (``stream_nesting_exceeds``) in both cases.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

import ijson  # type: ignore[import-untyped]
from packageurl import PackageURL

from kiln.debian.version import parse_version
from kiln.errors import InputError, Location
from kiln.inventory.model import (
    InstalledPackage,
    OsRelease,
    deb_purl,
    normalize_pypi_name,
    npm_purl,
    parse_kiln_fixes,
    pypi_purl,
)
from kiln.jsonlimits import MAX_DEPTH, parse_json, stream_nesting_exceeds

_SPDX_SOURCE_INFO = re.compile(r"built package from:?\s*(?P<name>\S+)(?:\s+(?P<version>\S+))?")
_DEB_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]*$")
_MAX_DEPTH = 32
STREAM_ABOVE_BYTES = 32 * 1024 * 1024
MAX_SBOM_BYTES = 4 * 1024 * 1024 * 1024  # 4 GiB: ~10 million CycloneDX components
MAX_SBOM_PACKAGES = 2_000_000  # package records (components, SPDX packages) in one SBOM
_FORMAT_KEYS = frozenset(
    f"{base}{key}" for base in ("", "predicate.") for key in ("spdxVersion", "bomFormat")
)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One package record of an SBOM before the distro is known."""

    label: str  # how warnings name it: bom-ref / SPDXID and name
    location: str
    purl: str
    version: str | None  # the component's own version field
    props: dict[str, str]
    source_info: str | None


def parse_sbom(
    document: Any, location: str, warnings: list[str]
) -> tuple[OsRelease | None, list[InstalledPackage]]:
    """OsRelease and packages of a parsed SBOM JSON document."""
    if not isinstance(document, dict):
        raise InputError("not an SBOM: the JSON document is not an object", Location(location))
    if "predicate" in document and "_type" in document:  # in-toto Statement around an SBOM
        document = document["predicate"]
        if not isinstance(document, dict):
            raise InputError("in-toto predicate is not an object", Location(location))
    spdx = _kind(document.get("spdxVersion"), document.get("bomFormat"), location)
    records = document.get("packages" if spdx else "components", [])
    if not isinstance(records, list):
        if spdx:
            raise InputError("packages is not a list", Location(location, field="packages"))
        warnings.append(f"{location}: components is not a list of components, skipped")
        records = []
    return _packages(spdx, records, location, warnings)


def read_sbom_file(
    path: Path, location: str, warnings: list[str]
) -> tuple[OsRelease | None, list[InstalledPackage]]:
    """``parse_sbom`` of a file: parsed whole when small, streamed when large."""
    size = path.stat().st_size
    if size > MAX_SBOM_BYTES:
        raise InputError(
            f"{size} bytes is over the {MAX_SBOM_BYTES} byte limit for an SBOM",
            Location(location),
        )
    if size <= STREAM_ABOVE_BYTES:
        document = parse_json(
            path.read_bytes(),
            where=location,
            max_bytes=STREAM_ABOVE_BYTES,
            what="the file",
            file=True,
        )
        return parse_sbom(document, location, warnings)
    with path.open("rb") as handle:
        if stream_nesting_exceeds(handle, MAX_DEPTH):
            raise InputError(
                f"the file nests arrays/objects deeper than {MAX_DEPTH} levels",
                Location(location),
            )
        handle.seek(0)
        spdx, base = _stream_kind(handle, location)
        handle.seek(0)
        records = ijson.items(
            handle, f"{base}{'packages' if spdx else 'components'}.item", use_float=True
        )
        return _packages(spdx, _streamed(records, handle, location), location, warnings)


def _kind(spdx_version: object, bom_format: object, location: str) -> bool:
    """True for SPDX 2.x, False for CycloneDX; anything else is not an SBOM kiln reads."""
    if isinstance(spdx_version, str):
        if not spdx_version.startswith("SPDX-2."):
            raise InputError(
                f"unsupported {spdx_version} (kiln reads SPDX 2.x JSON)",
                Location(location, field="spdxVersion"),
            )
        return True
    if bom_format == "CycloneDX":
        return False
    raise InputError(
        "not an SBOM: neither SPDX (spdxVersion) nor CycloneDX (bomFormat)", Location(location)
    )


def _stream_kind(handle: BinaryIO, location: str) -> tuple[bool, str]:
    """The SBOM's kind and where its records are (top level or an in-toto predicate).

    Reads events only until the format key (producers write it first; at worst the
    whole file is read once more).
    """
    try:
        for prefix, event, value in ijson.parse(handle, use_float=True):
            if prefix in _FORMAT_KEYS and event in ("string", "number", "boolean", "null"):
                base, _, key = prefix.rpartition(".")
                spdx = _kind(
                    value if key == "spdxVersion" else None,
                    value if key == "bomFormat" else None,
                    location,
                )
                return spdx, f"{base}." if base else ""
    except ijson.JSONError as exc:
        raise _malformed(handle, location, exc) from exc
    return _kind(None, None, location), ""


def _streamed(records: Iterable[Any], handle: BinaryIO, location: str) -> Iterator[Any]:
    try:
        for number, record in enumerate(records):
            if number >= MAX_SBOM_PACKAGES:
                raise InputError(
                    f"more than {MAX_SBOM_PACKAGES} package records; kiln reads at most that many",
                    Location(location),
                )
            yield record
    except ijson.JSONError as exc:
        raise _malformed(handle, location, exc) from exc


def _malformed(handle: BinaryIO, location: str, exc: Exception) -> InputError:
    return InputError(f"the file is not JSON near byte {handle.tell()}: {exc}", Location(location))


def _packages(
    spdx: bool, records: Iterable[Any], location: str, warnings: list[str]
) -> tuple[OsRelease | None, list[InstalledPackage]]:
    collector = _Collector()
    if spdx:
        distro = _spdx(records, location, collector, warnings)
    else:
        distro = _cyclonedx(records, location, collector, warnings)
    distro = distro or collector.purl_distro
    warnings += collector.purl_warnings
    warnings += collector.package_warnings
    if collector.unsupported:
        counts = ", ".join(f"{kind}: {n}" for kind, n in sorted(collector.unsupported.items()))
        warnings.append(f"{location}: packages of ecosystems kiln does not scan ignored ({counts})")
    packages = collector.found
    for number, found in enumerate(packages):  # in place: each pending record freed as built
        if isinstance(found, _PendingDeb):
            packages[number] = _finish(found, distro)
    return distro, cast(list[InstalledPackage], packages)


class _Collector:
    """Takes each package record as it is read and keeps only what its package needs.

    The purl is parsed at once (no list of parsed purls); a Debian package waits as a
    ``_PendingDeb`` for the distro (an operating-system record may come last). Warnings
    keep the order of a two-pass read: purl problems, then package problems.
    """

    def __init__(self) -> None:
        self.found: list[InstalledPackage | _PendingDeb] = []
        self.purl_distro: OsRelease | None = None  # from the first deb purl that names one
        self.purl_warnings: list[str] = []
        self.package_warnings: list[str] = []
        self.unsupported: Counter[str] = Counter()

    def append(self, entry: _Entry) -> None:
        parsed = _parse_purl(entry, self.purl_warnings)
        if parsed is None:
            return
        purl = parsed[1]
        if self.purl_distro is None:
            self.purl_distro = _distro_from_purls([parsed])
        if purl.type in _IMAGE_PURL_TYPES:
            return  # the image the SBOM describes (kiln's, syft's root), not a package in it
        package = _package(entry, purl, self.package_warnings)
        if package is None and purl.type not in ("deb", "pypi", "npm"):
            self.unsupported[purl.type] += 1
        elif package is not None:
            self.found.append(package)


class _PendingDeb(NamedTuple):
    """A Debian package read from an SBOM, before the distro (part of its purl) is known."""

    name: str
    version: str
    source_name: str
    source_version: str
    arch: str | None
    location: str
    kiln_fixes: tuple[str, ...] = ()


def _finish(deb: _PendingDeb, distro: OsRelease | None) -> InstalledPackage:
    return InstalledPackage(
        "deb",
        deb.name,
        deb.version,
        deb.source_name,
        deb.source_version,
        deb.arch,
        deb_purl(deb.name, deb.version, deb.arch, distro, deb.source_name, deb.source_version),
        (deb.location,),
        deb.kiln_fixes,
    )


#: purl types naming a container image: an SBOM's subject, never a package installed in it
_IMAGE_PURL_TYPES = frozenset({"oci", "docker"})


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _spdx(
    packages: Iterable[Any], location: str, entries: _Collector, warnings: list[str]
) -> OsRelease | None:
    distro: OsRelease | None = None
    for number, package in enumerate(packages):
        if not isinstance(package, dict):
            warnings.append(f"{location}: packages[{number}] is not an object, skipped")
            continue
        label = f"{package.get('SPDXID', f'packages[{number}]')} ({package.get('name')})"
        if package.get("primaryPackagePurpose") == "OPERATING-SYSTEM":
            name = _str(package.get("name"))
            if name and distro is None:
                distro = OsRelease.from_parts(name, _str(package.get("versionInfo")))
            continue
        refs = package.get("externalRefs") or []
        purls = [
            r.get("referenceLocator")
            for r in refs
            if isinstance(r, dict) and r.get("referenceType") == "purl"
        ]
        if not purls:
            continue  # files, the scanned directory, ...: not a package kiln can match
        purl = purls[0]
        if not isinstance(purl, str):
            warnings.append(f"{location}: {label}: purl is not a string, skipped")
            continue
        entries.append(
            _Entry(
                label,
                f"{location}#{package.get('SPDXID', number)}",
                purl,
                _str(package.get("versionInfo")),
                _spdx_kiln_props(_str(package.get("comment"))),
                _str(package.get("sourceInfo")),
            )
        )
    return distro


def _cyclonedx(
    top: Iterable[Any], location: str, entries: _Collector, warnings: list[str]
) -> OsRelease | None:
    distro: OsRelease | None = None
    stack: list[tuple[Any, int, str]] = [(top, 0, "components")]
    while stack:
        components, depth, path = stack.pop()
        if (depth and not isinstance(components, list)) or depth > _MAX_DEPTH:
            warnings.append(f"{location}: {path} is not a list of components, skipped")
            continue
        for number, component in enumerate(components):
            where = f"{path}[{number}]"
            if not isinstance(component, dict):
                warnings.append(f"{location}: {where} is not an object, skipped")
                continue
            if "components" in component:
                stack.append((component["components"], depth + 1, f"{where}.components"))
            props = _properties(component.get("properties"))
            if component.get("type") == "operating-system":
                name = _str(component.get("name"))
                if name and distro is None:
                    distro = OsRelease.from_parts(
                        props.get("syft:distro:id", name),
                        props.get("syft:distro:versionID") or _str(component.get("version")),
                        props.get("syft:distro:versionCodename"),
                        props.get("syft:distro:prettyName") or _str(component.get("description")),
                    )
                continue
            purl = component.get("purl")
            if purl is None:
                continue
            ref = component.get("bom-ref", where)
            label = f"{ref} ({component.get('name')})"
            if not isinstance(purl, str):
                warnings.append(f"{location}: {label}: purl is not a string, skipped")
                continue
            entries.append(
                _Entry(
                    label,
                    f"{location}#{ref}",
                    purl,
                    _str(component.get("version")),
                    props,
                    None,
                )
            )
    return distro


#: the CycloneDX property kiln's SBOMs give a rebuilt package's ``Kiln-Fixes`` field
KILN_FIXES_PROPERTY = "kiln:fixes"
#: ``Kiln-Fixes: ids`` inside the SPDX package comment kiln writes for a rebuilt package
_SPDX_KILN_FIXES = re.compile(r"^rebuilt from source by kiln \(.*?\bKiln-Fixes: ([^;)]*)")


def _spdx_kiln_props(comment: str | None) -> dict[str, str]:
    """The ``kiln:fixes`` of a package from the comment kiln's SPDX writer gives it."""
    if comment is None:
        return {}
    match = _SPDX_KILN_FIXES.match(comment)
    return {KILN_FIXES_PROPERTY: match[1]} if match else {}


def _properties(raw: object) -> dict[str, str]:
    found: dict[str, str] = {}
    if isinstance(raw, list):
        for prop in raw:
            if isinstance(prop, dict):
                name, value = prop.get("name"), prop.get("value")
                if isinstance(name, str) and isinstance(value, str):
                    found.setdefault(name, value)
    return found


def _parse_purl(entry: _Entry, warnings: list[str]) -> tuple[_Entry, PackageURL] | None:
    try:
        purl = PackageURL.from_string(entry.purl)
    except ValueError as exc:
        warnings.append(
            f"{entry.location}: {entry.label}: invalid purl {entry.purl!r} ({exc}), skipped"
        )
        return None
    return entry, purl


def _distro_from_purls(parsed: list[tuple[_Entry, PackageURL]]) -> OsRelease | None:
    for _, purl in parsed:
        qualifiers = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
        value = qualifiers.get("distro")
        if purl.type == "deb" and isinstance(value, str) and value.isalpha():  # distro=bookworm
            return OsRelease.from_parts(purl.namespace or "debian", None, value)
        if purl.type == "deb" and isinstance(value, str) and "-" in value:
            distro_id, _, version = value.rpartition("-")
            if version and not version[0].isdigit():
                return OsRelease.from_parts(distro_id, None, version)
            return OsRelease.from_parts(distro_id, version)
        if purl.type == "deb" and purl.namespace:
            return OsRelease.from_parts(purl.namespace, None)
    return None


def _package(
    entry: _Entry, purl: PackageURL, warnings: list[str]
) -> InstalledPackage | _PendingDeb | None:
    qualifiers: dict[str, str] = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
    version = purl.version or entry.version
    where = f"{entry.location}: {entry.label}"
    if purl.type not in ("deb", "pypi", "npm"):
        return None
    if not version:
        warnings.append(f"{where}: purl {entry.purl!r} has no version, skipped")
        return None
    if purl.type == "pypi":
        name = normalize_pypi_name(purl.name)
        return InstalledPackage(
            "pypi", name, version, None, None, None, pypi_purl(name, version), (entry.location,)
        )
    if purl.type == "npm":
        name = f"{purl.namespace}/{purl.name}" if purl.namespace else purl.name
        return InstalledPackage(
            "npm", name, version, None, None, None, npm_purl(name, version), (entry.location,)
        )
    epoch = qualifiers.get("epoch")
    if epoch and ":" not in version:
        version = f"{epoch}:{version}"
    name = purl.name
    if not _DEB_NAME.match(name):
        warnings.append(f"{where}: {name!r} is not a Debian package name, skipped")
        return None
    try:
        parse_version(version)
    except InputError:
        warnings.append(f"{where}: {version!r} is not a Debian version, skipped")
        return None
    source_name, source_version = _deb_source(entry, qualifiers)
    source_name = source_name or name
    source_version = source_version or version
    fixes = parse_kiln_fixes(entry.props.get(KILN_FIXES_PROPERTY, ""), where, warnings)
    return _PendingDeb(
        name, version, source_name, source_version, qualifiers.get("arch"), entry.location, fixes
    )


def _deb_source(entry: _Entry, qualifiers: dict[str, str]) -> tuple[str | None, str | None]:
    upstream = qualifiers.get("upstream")
    if upstream:
        source, _, source_version = upstream.partition("@")
        return source or None, source_version or None
    props = entry.props
    if "aquasecurity:trivy:SrcName" in props:
        version = props.get("aquasecurity:trivy:SrcVersion")
        if version:
            release = props.get("aquasecurity:trivy:SrcRelease")
            epoch = props.get("aquasecurity:trivy:SrcEpoch")
            version = f"{epoch}:{version}" if epoch and epoch != "0" else version
            version = f"{version}-{release}" if release else version
        return props["aquasecurity:trivy:SrcName"], version or None
    if "syft:metadata:source" in props:
        return props["syft:metadata:source"], props.get("syft:metadata:sourceVersion")
    if entry.source_info:
        match = _SPDX_SOURCE_INFO.search(entry.source_info)
        if match:
            return match["name"], match["version"]
    return None, None
