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

import re
from typing import Any

from kiln.errors import InputError
from kiln.inventory.model import Declared, InstalledPackage, npm_purl
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


def declared_by_package_json(data: bytes, location: str) -> Declared:
    """The licence and author an installed ``package.json`` declares.

    ``license`` is an SPDX expression (https://docs.npmjs.com/cli/v10/configuring-npm/package-json#license);
    old packages write ``{"type": ...}`` or a ``licenses`` list. ``author`` is
    ``"Name <email> (url)"`` or ``{"name", "email"}``; else the first maintainer or
    contributor.
    """
    try:
        document = load_json(data, location)
    except InputError:
        return Declared()
    if not isinstance(document, dict):
        return Declared()
    licenses: list[str] = []
    declared = document.get("license")
    if isinstance(declared, dict):
        declared = declared.get("type")
    if isinstance(declared, str) and declared.strip():
        licenses.append(" ".join(declared.split()))
    listed = document.get("licenses")
    if not licenses and isinstance(listed, list):
        names = [_text(e.get("type") if isinstance(e, dict) else e) for e in listed]
        if any(names):
            licenses.append(" OR ".join(n for n in names if n))
    author = _who(document.get("author"))
    for role in ("maintainers", "contributors"):
        people = document.get(role)
        if author is None and isinstance(people, list) and people:
            author = _who(people[0])
    owner = _repository_owner(document.get("repository"))
    return Declared(tuple(licenses), author=author, owner=owner)


# "owner/repo", "github:owner/repo", "https://host/owner/repo.git", "git@host:owner/repo.git"
_REPOSITORY = re.compile(
    r"^(?:[a-z+]+://(?:[^@/]+@)?[^/]+/|[a-z]+:(?!//)|[^@/:]+@[^:/]+:)?"
    r"(?P<owner>[A-Za-z0-9][A-Za-z0-9_.-]*)/[A-Za-z0-9_.-]+?(?:\.git)?/?(?:#.*)?$"
)


def _repository_owner(value: object) -> str | None:
    """The account owning the source repository a package.json names, if it names one."""
    if isinstance(value, dict):
        value = value.get("url")
    text = _text(value)
    found = _REPOSITORY.match(text) if text else None
    return found["owner"] if found else None


def _text(value: object) -> str | None:
    return " ".join(value.split()) if isinstance(value, str) and value.strip() else None


def _who(value: object) -> str | None:
    """``Name <email>`` of an npm person (a string, maybe with ``(url)``, or an object)."""
    if isinstance(value, dict):
        name, email = _text(value.get("name")), _text(value.get("email"))
        if name and email:
            return f"{name} <{email}>"
        return name or email
    text = _text(value)
    if text is None:
        return None
    return text.split(" (", 1)[0].strip() if text.endswith(")") else text
