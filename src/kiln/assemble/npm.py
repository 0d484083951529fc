"""Install npm registry packages globally, as ``npm install -g`` lays them out.

The layout is npm's global one with prefix ``/usr/local``
(https://docs.npmjs.com/cli/v10/configuring-npm/folders): the package in
``/usr/local/lib/node_modules/<name>`` and each ``bin`` entry of its ``package.json``
linked from ``/usr/local/bin/<bin>`` (``../lib/node_modules/<name>/<file>``), the link
targets made executable. That is also where the official node image has npm, npx and
corepack; corepack's own ``bin`` entries (yarn, yarnpkg, pnpm, pnpx) are the shims
``corepack enable`` would write. Everything is owned by root with normalised modes
(directories 0755, files 0644 or 0755 when the tarball marked them executable);
mtimes come from SOURCE_DATE_EPOCH when layers are written.

npm itself gets a builtin config file (``<npm>/npmrc``, read before any other) setting
``prefix=/usr/local``: npm would otherwise derive its global prefix from the node
binary's location (``/usr/bin/node`` -> ``/usr``), unlike the official image.
"""

from __future__ import annotations

import json
import posixpath

from kiln.assemble.fs import Entry, Plan, dir_entry, file_entry, normalise_path, symlink_entry
from kiln.assemble.model import AssemblyInput, NpmPackageInput
from kiln.errors import InputError

NODE_MODULES = "usr/local/lib/node_modules"
BIN_DIR = "usr/local/bin"
NPM_BUILTIN_CONFIG = b"prefix=/usr/local\n"


def _manifest(pkg: NpmPackageInput) -> dict[str, object]:
    for member in pkg.members:
        if member.path == "package.json" and isinstance(member.content, bytes):
            try:
                data = json.loads(member.content)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"npm package {pkg.name}: package.json: {exc}") from exc
            if isinstance(data, dict):
                return data
    raise InputError(f"npm package {pkg.name}@{pkg.version} has no package.json object")


def package_bins(pkg: NpmPackageInput) -> list[tuple[str, str]]:
    """(bin name, file inside the package) from package.json's ``bin``, sorted.

    A string ``bin`` is named after the package (its unscoped part), as npm does.
    """
    raw = _manifest(pkg).get("bin")
    where = f"npm package {pkg.name}@{pkg.version}: package.json bin"
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = {pkg.name.rsplit("/", 1)[-1]: raw}
    if not isinstance(raw, dict):
        raise InputError(f"{where} is neither a string nor an object")
    bins = []
    for name, target in raw.items():
        if not isinstance(target, str) or not isinstance(name, str):
            raise InputError(f"{where}: entry {name!r} is not a string")
        base = posixpath.basename(name)  # npm strips any directory from bin names
        if not base or base in (".", "..") or "\x00" in base:
            raise InputError(f"{where}: {name!r} is not a usable program name")
        bins.append((base, normalise_path(target, where=f"{where} {name!r}")))
    return sorted(bins)


def _member_entry(pkg: NpmPackageInput, root: str, index: int, owner: str) -> Entry | None:
    member = pkg.members[index]
    where = f"npm package {pkg.name}@{pkg.version}: member {member.path!r}"
    rel = normalise_path(member.path, where=where)
    if not rel:
        return None
    path = f"{root}/{rel}"
    match member.kind:
        case "dir":
            return dir_entry(path, package=owner)
        case "file":
            content = member.content if isinstance(member.content, bytes) else b""
            mode = 0o755 if member.mode & 0o111 else 0o644
            return file_entry(path, content, mode=mode, package=owner)
        case "symlink" if member.link_target:
            return symlink_entry(path, member.link_target, package=owner)
        case _:
            raise InputError(f"{where} is a {member.kind}; only files, directories, symlinks")


def npm_packages(plan: Plan, inp: AssemblyInput) -> Plan:
    """Each locked npm package under /usr/local/lib/node_modules, with /usr/local/bin links."""
    new: list[Entry] = []
    bins_owner: dict[str, str] = {}
    for pkg in sorted(inp.npm, key=lambda p: p.name):
        owner = f"npm:{pkg.name}"
        root = f"{NODE_MODULES}/{pkg.name}"
        if plan.get(root) is not None:
            raise InputError(f"npm package {pkg.name}: /{root} is already in the image")
        entries = {root: dir_entry(root, package=owner)}
        for index in range(len(pkg.members)):
            entry = _member_entry(pkg, root, index, owner)
            if entry is not None:
                entries[entry.path] = entry
        if pkg.name == "npm" and f"{root}/npmrc" not in entries:
            entries[f"{root}/npmrc"] = file_entry(
                f"{root}/npmrc", NPM_BUILTIN_CONFIG, package=owner
            )
        for name, target in package_bins(pkg):
            where = f"npm package {pkg.name}@{pkg.version}: bin {name!r}"
            file = entries.get(f"{root}/{target}")
            if file is None or file.kind != "file":
                raise InputError(f"{where} names {target!r}, which is not a file of the package")
            if name in bins_owner:
                raise InputError(f"{where} is also a program of npm package {bins_owner[name]}")
            existing = plan.get(f"{BIN_DIR}/{name}")
            if existing is not None:
                raise InputError(
                    f"{where}: /{BIN_DIR}/{name} is already shipped by {existing.package}"
                )
            bins_owner[name] = pkg.name
            entries[file.path] = file_entry(file.path, file.read(), mode=0o755, package=owner)
            link = posixpath.relpath(f"{root}/{target}", BIN_DIR)
            entries[f"{BIN_DIR}/{name}"] = symlink_entry(f"{BIN_DIR}/{name}", link, package=owner)
        new.extend(entries[p] for p in sorted(entries))
    return plan.with_entries(*new)
