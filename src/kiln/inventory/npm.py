"""Installed npm packages: ``node_modules/**/package.json`` and ``package-lock.json``.

Every ``package.json`` with a string ``name`` and ``version`` is one installed package,
as syft's and trivy's installed-package catalogers count them (``node_modules/**``
and the application's own manifest alike). Lock files follow
https://docs.npmjs.com/cli/v10/configuring-npm/package-lock-json: version 1 nests
``dependencies``; versions 2 and 3 list ``packages`` keyed by install path. The
project itself (the ``""`` key), workspace links and dev dependencies are not
installed packages of an image and are left out (trivy's default too).
"""

from __future__ import annotations

from typing import Any

from kiln.errors import InputError
from kiln.inventory.model import InstalledPackage, npm_purl
from kiln.jsonlimits import parse_json

MAX_JSON_BYTES = 64 * 1024 * 1024  # a package.json or package-lock.json in an image


def load_json(data: bytes, location: str, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse JSON within ``kiln.jsonlimits``' bounds; ``InputError`` at file:line:col."""
    return parse_json(data, where=location, max_bytes=max_bytes, what="the file", file=True)


def _package(name: object, version: object, location: str) -> InstalledPackage | None:
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return None
    if ":" in version or "/" in version:
        return None  # git, file: and tarball URL pins are not registry versions
    return InstalledPackage(
        "npm", name, version, None, None, None, npm_purl(name, version), (location,)
    )


def parse_package_json(data: bytes, location: str, warnings: list[str]) -> InstalledPackage | None:
    """The package an installed ``package.json`` describes (None if it names none)."""
    try:
        document = load_json(data, location)
    except InputError as exc:
        warnings.append(f"{exc}, skipped")  # one bad file must not hide the whole image
        return None
    if not isinstance(document, dict):
        warnings.append(f"{location}: not a JSON object, skipped")
        return None
    return _package(document.get("name"), document.get("version"), location)


def parse_package_lock(data: bytes, location: str, warnings: list[str]) -> list[InstalledPackage]:
    """Packages a ``package-lock.json`` (lockfileVersion 1, 2 or 3) installs."""
    try:
        document = load_json(data, location)
    except InputError as exc:
        warnings.append(f"{exc}, skipped")
        return []
    if not isinstance(document, dict):
        warnings.append(f"{location}: not a JSON object, skipped")
        return []
    version = document.get("lockfileVersion", 1)
    packages = document.get("packages")
    if version in (2, 3) and isinstance(packages, dict):
        return _from_packages(packages, location)
    if version in (1, 2) and isinstance(document.get("dependencies"), dict):
        found: list[InstalledPackage] = []
        _from_dependencies(document["dependencies"], location, found, depth=0)
        return found
    warnings.append(f"{location}: unsupported lockfileVersion {version!r}, skipped")
    return []


def _from_packages(packages: dict[str, Any], location: str) -> list[InstalledPackage]:
    found: list[InstalledPackage] = []
    for path, entry in packages.items():
        if not path or not isinstance(entry, dict) or "node_modules/" not in path:
            continue
        if entry.get("link") or entry.get("dev"):
            continue
        name = entry.get("name") or path.rsplit("node_modules/", 1)[1]
        package = _package(name, entry.get("version"), location)
        if package is not None:
            found.append(package)
    return found


def _from_dependencies(
    dependencies: dict[str, Any], location: str, found: list[InstalledPackage], depth: int
) -> None:
    if depth > 64:  # real trees are a handful deep; this bounds hostile nesting
        return
    for name, entry in dependencies.items():
        if not isinstance(entry, dict) or entry.get("dev"):
            continue
        package = _package(name, entry.get("version"), location)
        if package is not None:
            found.append(package)
        nested = entry.get("dependencies")
        if isinstance(nested, dict):
            _from_dependencies(nested, location, found, depth + 1)
