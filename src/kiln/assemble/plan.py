"""Build the filesystem plan from the locked packages' data members.

What dpkg would unpack, minus everything dpkg would refuse and minus maintainer scripts:

* every member path is normalised and checked (no ``..``, no absolute escape, no NUL);
* only regular files, directories, symlinks and hard links are accepted: device nodes and
  fifos are refused with the package named;
* merged ``/usr`` (DEP 17, Debian 12+ layout): members under ``bin``, ``sbin``, ``lib*``
  move to ``usr/…`` and the top-level names become symlinks into ``usr``;
* two packages shipping the same path is an error naming both, unless both are
  directories, or one ``Replaces`` the other (Debian Policy §7.6), or a diversion
  (``dpkg-divert``, declared in the input since maintainer scripts never run) moves one.

Symlink targets are kept as written (they resolve inside the container); anything that
follows links uses ``Plan.resolve``, which never leaves the root.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from debian.deb822 import Deb822, PkgRelation

from kiln.assemble.fs import USRMERGE, Entry, Plan, normalise_path, symlink_entry
from kiln.assemble.model import Diversion, PackageInput
from kiln.debian.version import satisfies
from kiln.errors import InputError

#: Top-level directories that merged /usr turns into symlinks to ``usr/<name>``.
USRMERGE_ALIASES = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "libo32")
_ALWAYS_ALIASED = {"bin", "sbin", "lib"}
_ACCEPTED_KINDS = {"file", "dir", "symlink", "hardlink"}


def usrmerge_path(path: str) -> str:
    """Where a member path lives on a merged-/usr system (``bin/sh`` -> ``usr/bin/sh``)."""
    head = path.split("/", 1)[0]
    return f"usr/{path}" if head in USRMERGE_ALIASES else path


def _relocate_link(orig_path: str, new_path: str, target: str) -> str:
    """Rewrite a relative symlink target so it points at the same place after a move."""
    if target.startswith("/") or orig_path == new_path:
        return target
    absolute = posixpath.normpath(posixpath.join(posixpath.dirname(orig_path), target))
    if absolute.startswith(".."):
        return target  # climbs above the root: kept as written, resolved in the container
    moved = usrmerge_path(absolute)
    return posixpath.relpath(moved, posixpath.dirname(new_path) or ".")


def replaces_field(pkg: PackageInput) -> str:
    if pkg.replaces:
        return pkg.replaces
    return str(Deb822(pkg.control).get("Replaces", ""))


def package_replaces(pkg: PackageInput, other: PackageInput) -> bool:
    """Whether ``pkg``'s Replaces field covers ``other`` (name, arch and version)."""
    text = replaces_field(pkg)
    if not text.strip():
        return False
    for alternatives in PkgRelation.parse_relations(text):
        for rel in alternatives:
            if rel.get("name") != other.name:
                continue
            version = rel.get("version")
            op, wanted = version if version else (None, None)
            if satisfies(other.version, op, wanted):
                return True
    return False


def _diversion_for(path: str, owner: str, diversions: Iterable[Diversion]) -> str | None:
    for d in diversions:
        diverted = normalise_path(d.path, where=f"diversion of {d.path} by {d.package}")
        if diverted == path and d.package != owner:
            return usrmerge_path(
                normalise_path(d.divert_to, where=f"diversion of {d.path} by {d.package}")
            )
    return None


def _member_entries(pkg: PackageInput, diversions: tuple[Diversion, ...]) -> list[Entry]:
    out: list[Entry] = []
    for index, m in enumerate(pkg.members):
        where = f"package {pkg.name} {pkg.version}: data member #{index} {m.path!r}"
        if m.kind not in _ACCEPTED_KINDS:
            raise InputError(
                f"{where} is a {m.kind}; images carry no device nodes, fifos or sockets",
                hint="the runtime creates /dev; a package shipping device nodes is not usable",
            )
        if m.path.startswith("/"):
            raise InputError(f"{where} has an absolute name; .deb members are relative")
        orig = normalise_path(m.path, where=where)
        if orig == "":
            continue  # the root directory itself
        if orig in USRMERGE_ALIASES and m.kind == "symlink":
            # base-files (trixie) ships the merged-/usr links itself; kiln adds its own.
            if posixpath.normpath(m.link_target or "").lstrip("/") == f"usr/{orig}":
                continue
            raise InputError(f"{where} is a symlink to {m.link_target!r}, not usr/{orig}")
        path = usrmerge_path(orig)
        path = _diversion_for(path, pkg.name, diversions) or path
        mode = m.mode & 0o7777
        match m.kind:
            case "file":
                out.append(
                    Entry(path, "file", mode, m.uid, m.gid, m.size, m.content, None, pkg.name)
                )
            case "dir":
                out.append(Entry(path, "dir", mode, m.uid, m.gid, package=pkg.name))
            case "symlink":
                if not m.link_target:
                    raise InputError(f"{where} is a symlink without a target")
                if "\x00" in m.link_target:
                    raise InputError(f"{where}: symlink target contains a NUL byte")
                target = _relocate_link(orig, path, m.link_target)
                out.append(symlink_entry(path, target, package=pkg.name))
            case "hardlink":
                if not m.link_target:
                    raise InputError(f"{where} is a hard link without a target")
                target = usrmerge_path(normalise_path(m.link_target, where=where))
                out.append(
                    Entry(path, "hardlink", mode, m.uid, m.gid, m.size, m.content, target, pkg.name)
                )
    return out


def _same_dir(a: Entry, b: Entry) -> bool:
    return a.kind == "dir" and b.kind == "dir"


def plan_from_packages(
    packages: Iterable[PackageInput],
    *,
    arch: str,
    diversions: tuple[Diversion, ...] = (),
) -> Plan:
    """Lay the packages' members out as one plan (pure; content is not read)."""
    ordered = sorted(packages, key=lambda p: p.name)
    names = [p.name for p in ordered]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"package(s) listed twice in the assembly input: {', '.join(dupes)}")
    by_name = {p.name: p for p in ordered}
    entries: dict[str, Entry] = {}
    for pkg in ordered:
        for entry in _member_entries(pkg, diversions):
            existing = entries.get(entry.path)
            if existing is None:
                entries[entry.path] = entry
                continue
            if _same_dir(existing, entry):
                continue
            if existing.package == entry.package:
                raise InputError(f"package {pkg.name} ships /{entry.path} twice")
            other = by_name[existing.package]
            if package_replaces(pkg, other):
                entries[entry.path] = entry
            elif package_replaces(other, pkg):
                continue
            else:
                raise InputError(
                    f"packages {other.name} and {pkg.name} both ship /{entry.path} "
                    f"({existing.kind} vs {entry.kind})",
                    hint="Debian resolves this with Replaces or a diversion; "
                    "exclude one package or declare the diversion",
                )
    plan = Plan.empty().with_entries(*sorted(entries.values(), key=lambda e: e.path))
    for entry in list(plan.entries.values()):
        if entry.kind == "hardlink":
            target = plan.get(entry.link_target or "")
            if target is None or target.kind != "file" or target.package != entry.package:
                raise InputError(
                    f"package {entry.package}: hard link /{entry.path} points to "
                    f"/{entry.link_target}, which is not a regular file of that package"
                )
    aliases = []
    for alias in USRMERGE_ALIASES:
        if (
            alias in _ALWAYS_ALIASED
            or f"usr/{alias}" in plan
            or (alias == "lib64" and arch == "amd64")
        ):
            aliases.append(symlink_entry(alias, f"usr/{alias}", package=USRMERGE))
    return plan.with_entries(*aliases)
