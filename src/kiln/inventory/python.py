"""Installed Python distributions: ``*.dist-info/METADATA`` and ``*.egg-info``.

Both are core metadata files (https://packaging.python.org/en/latest/specifications/core-metadata/),
RFC 822 headers; ``Name`` and ``Version`` identify the distribution. Names are
normalized per PEP 503 (https://peps.python.org/pep-0503/#normalized-names) so that
packages from a rootfs, syft's and trivy's SBOMs and OSV records compare equal.
``declared_by_core_metadata`` reads what an SBOM adds: the licence (``License-Expression``,
PEP 639; else ``License``; else ``License ::`` classifiers) and the author or maintainer.
"""

from __future__ import annotations

from email.message import Message

from kiln.inventory.model import Declared, InstalledPackage, normalize_pypi_name, pypi_purl

_MAX_LICENSE_FIELD = 200  # a longer License field is the licence's text, not its name


def _headers(data: bytes) -> Message:
    # imported here: the email package costs ~15 ms, and most rootfs scans find no
    # Python distributions
    from email.parser import HeaderParser  # noqa: PLC0415

    return HeaderParser().parsestr(data.decode("utf-8", "replace"), headersonly=True)


def parse_core_metadata(data: bytes, location: str, warnings: list[str]) -> InstalledPackage | None:
    """The distribution a METADATA / PKG-INFO file describes, or None with a warning."""
    headers = _headers(data)
    name = (headers.get("Name") or "").strip()
    version = (headers.get("Version") or "").strip()
    if not name or not version:
        warnings.append(f"{location}: core metadata without Name and Version, skipped")
        return None
    normalized = normalize_pypi_name(name)
    return InstalledPackage(
        "pypi", normalized, version, None, None, None, pypi_purl(name, version), (location,)
    )


def declared_by_core_metadata(data: bytes) -> Declared:
    """The licence statements and the author a core metadata file declares."""
    headers = _headers(data)
    licenses: list[str] = []
    expression = " ".join((headers.get("License-Expression") or "").split())
    license_field = (headers.get("License") or "").strip()
    if expression:
        licenses.append(expression)
    elif license_field and "\n" not in license_field and len(license_field) <= _MAX_LICENSE_FIELD:
        licenses.append(license_field)
    classifiers = [str(c).strip() for c in headers.get_all("Classifier") or []]
    licenses += [c for c in classifiers if c.startswith("License ::")]
    return Declared(
        licenses=tuple(licenses),
        author=_person(headers, "Author") or _person(headers, "Maintainer"),
    )


def _person(headers: Message, role: str) -> str | None:
    """``Name <email>`` from ``<role>`` and ``<role>-email`` (which may hold both)."""
    name = " ".join((headers.get(role) or "").split())
    email = " ".join((headers.get(f"{role}-email") or "").split())
    if email and "<" in email:
        return email.split(",")[0].strip()  # already "Name <address>"
    if name and email:
        return f"{name} <{email.split(',')[0].strip()}>"
    return name or email.split(",")[0].strip() or None
