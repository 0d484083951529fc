"""Installed Python distributions: ``*.dist-info/METADATA`` and ``*.egg-info``.

Both are core metadata files (https://packaging.python.org/en/latest/specifications/core-metadata/),
RFC 822 headers; ``Name`` and ``Version`` identify the distribution. Names are
normalized per PEP 503 (https://peps.python.org/pep-0503/#normalized-names) so that
packages from a rootfs, syft's and trivy's SBOMs and OSV records compare equal.
"""

from __future__ import annotations

from kiln.inventory.model import InstalledPackage, normalize_pypi_name, pypi_purl


def parse_core_metadata(data: bytes, location: str, warnings: list[str]) -> InstalledPackage | None:
    """The distribution a METADATA / PKG-INFO file describes, or None with a warning."""
    # imported here: the email package costs ~15 ms, and most rootfs scans find no
    # Python distributions
    from email.parser import HeaderParser  # noqa: PLC0415

    headers = HeaderParser().parsestr(data.decode("utf-8", "replace"), headersonly=True)
    name = (headers.get("Name") or "").strip()
    version = (headers.get("Version") or "").strip()
    if not name or not version:
        warnings.append(f"{location}: core metadata without Name and Version, skipped")
        return None
    normalized = normalize_pypi_name(name)
    return InstalledPackage(
        "pypi", normalized, version, None, None, None, pypi_purl(name, version), (location,)
    )
