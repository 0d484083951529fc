"""The distro release of a root filesystem, from ``os-release``.

Implements the file format of https://www.freedesktop.org/software/systemd/man/os-release.html:
``KEY=value`` lines, values optionally quoted with shell quoting rules. ``/etc/os-release``
wins, ``/usr/lib/os-release`` is the fallback; symlinks are resolved inside the root.
Without either, ``/etc/debian_version`` (``12.11`` or ``trixie/sid``) still names a
Debian release, as trivy also assumes.
"""

from __future__ import annotations

import shlex

from kiln.inventory.model import OsRelease
from kiln.inventory.tree import DEBIAN_VERSION, OS_RELEASE_PATHS, FileTree


def parse_os_release(text: str, location: str, warnings: list[str]) -> dict[str, str]:
    """The variables of an os-release file; malformed lines are warned about and skipped."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.isidentifier():
            warnings.append(f"{location}:{number}: not a KEY=value line, ignored")
            continue
        try:
            words = shlex.split(value, comments=False, posix=True)
        except ValueError:
            warnings.append(f"{location}:{number}: unbalanced quotes in {key}, ignored")
            continue
        values[key] = " ".join(words)
    return values


def distro_from_tree(tree: FileTree, warnings: list[str]) -> OsRelease | None:
    """The distro of a root filesystem, or None (with a warning) if it has no os-release."""
    for path in OS_RELEASE_PATHS:
        data = tree.read(path)
        if data is None:
            continue
        values = parse_os_release(data.decode("utf-8", "replace"), f"/{path}", warnings)
        distro_id = values.get("ID")
        if not distro_id:
            warnings.append(f"/{path}: no ID field, distro unknown")
            return None
        return OsRelease.from_parts(
            distro_id,
            values.get("VERSION_ID"),
            values.get("VERSION_CODENAME"),
            values.get("PRETTY_NAME"),
        )
    version = tree.read(DEBIAN_VERSION)
    if version is not None:  # trivy's fallback too: "12.11", or "trixie/sid" on testing
        text = version.decode("utf-8", "replace").strip()
        warnings.append(f"no os-release: distro taken from /{DEBIAN_VERSION} ({text!r})")
        if text[:1].isdigit():
            return OsRelease.from_parts("debian", text)
        return OsRelease.from_parts("debian", None, text.split("/", 1)[0] or None)
    warnings.append("no /etc/os-release or /usr/lib/os-release: distro unknown")
    return None
