"""The ordered image steps: what maintainer scripts would have done, done by kiln.

Each step is a small pure function ``(Plan, AssemblyInput) -> Plan`` (apko's
``pkg/build`` shape). ``STEPS`` is the order ``assemble`` applies them in. References:
passwd(5), group(5), update-ca-certificates(8), nsswitch.conf(5), os-release(5), and
dpkg's database layout (``/var/lib/dpkg/status``, ``info/<pkg>.list``; distroless's
``status.d`` convention for images without dpkg).
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from debian.deb822 import Deb822

from kiln.assemble.certhash import fingerprint as _fingerprint
from kiln.assemble.certhash import subject_hash
from kiln.assemble.elfread import read_elf
from kiln.assemble.fs import (
    KILN,
    MAINTSCRIPTS_OWNER,
    USRMERGE,
    Entry,
    Plan,
    dir_entry,
    file_entry,
    normalise_path,
    parents,
    symlink_entry,
)
from kiln.assemble.javacerts import java_cacerts
from kiln.assemble.ldso import ld_so_cache
from kiln.assemble.model import NONROOT_GID, NONROOT_UID, AssemblyInput, Group, PackageInput, User
from kiln.assemble.npm import npm_packages
from kiln.assemble.plan import USRMERGE_ALIASES, usrmerge_path
from kiln.assemble.wheels import install_wheel
from kiln.errors import InputError, PolicyError

Step = Callable[[Plan, AssemblyInput], Plan]

# ---------------------------------------------------------------------------- accounts

NOLOGIN = "/usr/sbin/nologin"
#: apt's download sandbox user (uid 42 in Debian's images, group nogroup).
APT_USER = User("_apt", 42, 65534, "/nonexistent", NOLOGIN, "")


def _root_shell(plan: Plan, inp: AssemblyInput) -> str:
    if inp.variant == "runtime":
        return NOLOGIN
    for shell in ("bash", "sh"):
        if plan.resolve(f"usr/bin/{shell}") is not None:
            return f"/bin/{shell}"
    return NOLOGIN


def _check_clash(kind: str, name: str, ident: int, known: list[tuple[str, int]]) -> None:
    for known_name, known_id in known:
        if known_name == name or known_id == ident:
            raise InputError(
                f"accounts: {kind} {name!r} ({ident}) clashes with {kind} {known_name!r} "
                f"({known_id})"
            )


def _account_field(value: str) -> bool:
    """Whether ``value`` fits in one passwd(5)/group(5) field: no ':', no line break."""
    return ":" not in value and value.isprintable()


def _accounts(plan: Plan, inp: AssemblyInput) -> tuple[list[User], list[Group]]:
    users = [
        User("root", 0, 0, "/root", _root_shell(plan, inp), "root"),
        User("nobody", 65534, 65534, "/nonexistent", NOLOGIN, "nobody"),
        User("nonroot", NONROOT_UID, NONROOT_GID, "/home/nonroot", NOLOGIN, "nonroot"),
    ]
    groups = [Group("root", 0), Group("nogroup", 65534), Group("nonroot", NONROOT_GID)]
    if plan.resolve("usr/bin/apt-get") is not None and not any(
        u.name == APT_USER.name or u.uid == APT_USER.uid for u in inp.users
    ):
        users.append(APT_USER)  # what apt's postinst would have made (adduser --system)
    for user in inp.users:
        _check_clash("user", user.name, user.uid, [(u.name, u.uid) for u in users])
        users.append(user)
    for grp in inp.groups:
        _check_clash("group", grp.name, grp.gid, [(g.name, g.gid) for g in groups])
        groups.append(grp)
    gids = {g.gid for g in groups}
    for g in groups:  # the spec model checks these with positions; this guards other callers
        if not all(_account_field(f) and "," not in f for f in (g.name, *g.members)):
            raise InputError(f"accounts: group {g.name!r} has a ':', ',' or control character")
    for u in users:
        if not all(_account_field(f) for f in (u.name, u.gecos, u.home, u.shell)):
            raise InputError(
                f"accounts: user {u.name!r} has a ':' or newline (or other control character) "
                "in a field"
            )
        if u.gid not in gids:
            raise InputError(f"accounts: user {u.name!r} has primary gid {u.gid}, no such group")
    return sorted(users, key=lambda u: u.uid), sorted(groups, key=lambda g: g.gid)


def accounts(plan: Plan, inp: AssemblyInput) -> Plan:
    """/etc/passwd and /etc/group (root, nobody, nonroot 65532 + spec accounts), homes.

    Images with apt also get apt's ``_apt`` sandbox user, as apt's postinst makes it.

    No password hashes anywhere: passwd carries ``x``; the dev variant gets an
    ``/etc/shadow`` with every account locked (``*``) for tools that expect it.
    """
    users, groups = _accounts(plan, inp)
    if inp.variant == "dev" and plan.get("etc/passwd") is not None:
        return _add_accounts(plan, inp, users, groups)
    passwd = "".join(
        f"{u.name}:x:{u.uid}:{u.gid}:{u.gecos}:{u.home}:{u.shell}\n" for u in users
    ).encode()
    group = "".join(f"{g.name}:x:{g.gid}:{','.join(g.members)}\n" for g in groups).encode()
    new = [file_entry("etc/passwd", passwd), file_entry("etc/group", group)]
    if inp.variant == "dev":
        days = inp.source_date_epoch // 86400
        shadow = "".join(f"{u.name}:*:{days}:0:99999:7:::\n" for u in users).encode()
        new.append(file_entry("etc/shadow", shadow, mode=0o600))
    return plan.with_entries(*new, *_homes(users))


def _homes(users: list[User]) -> list[Entry]:
    """Each account's home directory (0700, its own), except /nonexistent and /."""
    homes = []
    for u in users:
        if u.home in ("/nonexistent", "/"):
            continue
        home = normalise_path(u.home, where=f"accounts: home of {u.name}")
        homes.append(dir_entry(home, mode=0o700, uid=u.uid, gid=u.gid))
    return homes


def _account_lines(plan: Plan, path: str) -> list[list[str]]:
    text = (plan.read(path) or b"").decode("utf-8", "replace")
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _not_yet_there(kind: str, wanted: list[tuple[str, int]], plan: Plan, path: str) -> list[str]:
    """The names of ``wanted`` accounts ``path`` lacks; one it has must have the same id."""
    known = {f[0]: int(f[2]) for f in _account_lines(plan, path) if len(f) > 2 and f[2].isdigit()}
    by_id = {ident: name for name, ident in known.items()}
    missing = []
    for name, ident in wanted:
        if known.get(name, ident) != ident or by_id.get(ident, name) != name:
            other = name if name in known else by_id[ident]
            raise InputError(
                f"accounts: {kind} {name!r} ({ident}) clashes with Debian's {kind} {other!r} "
                f"({known[other]}) in the -dev image"
            )
        if name not in known:
            missing.append(name)
    return missing


def _append(plan: Plan, path: str, lines: list[str]) -> Entry | None:
    entry = plan.get(path)
    if entry is None or entry.kind != "file" or not lines:
        return None
    text = plan.read(path) or b""
    if text and not text.endswith(b"\n"):
        text += b"\n"
    data = text + "".join(line + "\n" for line in lines).encode()
    return file_entry(path, data, mode=entry.mode, uid=entry.uid, gid=entry.gid)


def _add_accounts(plan: Plan, inp: AssemblyInput, users: list[User], groups: list[Group]) -> Plan:
    """-dev after its maintainer scripts ran: Debian's accounts stay, kiln's are added.

    base-passwd made Debian's system users and groups (staff, utmp, shadow ... that
    packages installed later rely on); an account of kiln or the spec that Debian has
    under the same name must have the same id.
    """
    added_users = set(_not_yet_there("user", [(u.name, u.uid) for u in users], plan, "etc/passwd"))
    added_groups = set(
        _not_yet_there("group", [(g.name, g.gid) for g in groups], plan, "etc/group")
    )
    new_users = [u for u in users if u.name in added_users]
    new_groups = [g for g in groups if g.name in added_groups]
    days = inp.source_date_epoch // 86400
    changed = [
        _append(
            plan,
            "etc/passwd",
            [f"{u.name}:x:{u.uid}:{u.gid}:{u.gecos}:{u.home}:{u.shell}" for u in new_users],
        ),
        _append(plan, "etc/shadow", [f"{u.name}:*:{days}:0:99999:7:::" for u in new_users]),
        _append(
            plan, "etc/group", [f"{g.name}:x:{g.gid}:{','.join(g.members)}" for g in new_groups]
        ),
        _append(plan, "etc/gshadow", [f"{g.name}:*::{','.join(g.members)}" for g in new_groups]),
    ]
    new = [e for e in changed if e is not None]
    if plan.get("etc/shadow") is None:
        lines = [f"{f[0]}:*:{days}:0:99999:7:::" for f in _account_lines(plan, "etc/passwd")]
        new.append(file_entry("etc/shadow", "".join(x + "\n" for x in lines).encode(), mode=0o600))
    return plan.with_entries(*new, *_homes(new_users))


# ------------------------------------------------------------------------- CA bundle

CA_DIR = "usr/share/ca-certificates"
CA_LOCAL_DIR = "usr/local/share/ca-certificates"
CA_CONF = "etc/ca-certificates.conf"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
_CA_CONF_HEADER = """\
# This file lists certificates that you wish to use or to ignore to be
# installed in /etc/ssl/certs.
# update-ca-certificates(8) will update /etc/ssl/certs by reading this file.
#
# This is autogenerated by dpkg-reconfigure ca-certificates.
# Certificates should be installed under /usr/share/ca-certificates
# and files with extension '.crt' is recognized as available certs.
#
# line begins with # is comment.
# line begins with ! is certificate filename to be deselected.
#
"""


def _crt_files(plan: Plan, root: str) -> list[str]:
    """``find -L ROOT -type f -name '*.crt' | sort`` over the plan (C collation)."""
    found = []
    for entry in plan.under(root):
        if not entry.path.endswith(".crt"):
            continue
        real = plan.resolve(entry.path)
        if real and plan.entries[real].kind in ("file", "hardlink"):
            found.append(entry.path)
    return sorted(found, key=lambda p: p.encode())


def _pem_name(crt_path: str) -> str:
    base = posixpath.basename(crt_path)
    base = base.removesuffix(".crt")
    for old, new in ((" ", "_"), ("(", "="), (")", "="), (",", "_")):
        base = base.replace(old, new)
    return base + ".pem"


def _hash_links(pems: dict[str, bytes]) -> list[Entry]:
    """What ``openssl rehash /etc/ssl/certs`` adds: ``<subject hash>.<n>`` -> ``<name>.pem``.

    Files are visited in sorted order; a certificate identical to one already linked is
    skipped, as rehash does.
    """
    links = []
    seen: set[bytes] = set()
    counts: dict[str, int] = {}
    for name in sorted(pems, key=lambda n: n.encode()):
        digest = subject_hash(pems[name])
        fingerprint = _fingerprint(pems[name])
        if digest is None or fingerprint is None or fingerprint in seen:
            continue
        seen.add(fingerprint)
        n = counts.get(digest, 0)
        counts[digest] = n + 1
        links.append(symlink_entry(f"etc/ssl/certs/{digest}.{n}", name))
    return links


def ca_certificates(plan: Plan, inp: AssemblyInput) -> Plan:
    """Build /etc/ssl/certs/ca-certificates.crt as ``update-ca-certificates`` would.

    The package's postinst would first write /etc/ca-certificates.conf listing every
    certificate (trust new certificates: yes); a conf shipped in the plan (e.g. by a spec
    path) is honoured instead: ``!`` lines deselect, ``#`` lines are comments, order is
    the conf's. Local certificates in /usr/local/share/ca-certificates follow, sorted.
    Each certificate gets a trailing newline if it lacks one (``sed '$a\\'``). OpenSSL's
    default paths (/usr/lib/ssl/cert.pem, /usr/lib/ssl/certs), which the ``openssl``
    package would provide, are linked to the bundle when absent.
    """
    del inp
    available = _crt_files(plan, CA_DIR)
    if not available:
        return plan
    new = []
    conf_bytes = plan.read(CA_CONF)
    if conf_bytes is None:
        listed = "".join(p[len(CA_DIR) + 1 :] + "\n" for p in available)
        conf_bytes = (_CA_CONF_HEADER + listed).encode()
        new.append(file_entry(CA_CONF, conf_bytes))
    chosen: list[str] = []
    for raw in conf_bytes.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        path = f"{CA_DIR}/{line}"
        real = plan.resolve(path)
        if real is None or plan.entries[real].kind not in ("file", "hardlink"):
            continue  # update-ca-certificates warns and skips
        chosen.append(path)
    chosen.extend(_crt_files(plan, CA_LOCAL_DIR))
    bundle = bytearray()
    pems: dict[str, bytes] = {}
    for path in chosen:
        data = plan.read(path) or b""
        bundle += data
        if data and not data.endswith(b"\n"):
            bundle += b"\n"
        name = _pem_name(path)
        new.append(symlink_entry(f"etc/ssl/certs/{name}", "/" + path))
        pems[name] = data
    new.append(file_entry(CA_BUNDLE, bytes(bundle)))
    new.extend(_hash_links(pems))
    if plan.resolve("usr/lib/ssl/cert.pem") is None:
        new.append(symlink_entry("usr/lib/ssl/cert.pem", "/" + CA_BUNDLE))
    if "usr/lib/ssl/certs" not in plan:
        new.append(symlink_entry("usr/lib/ssl/certs", "/etc/ssl/certs"))
    return plan.with_entries(*new)


# ---------------------------------------------------- nsswitch, localtime, tmp, os-release

DEFAULT_NSSWITCH = b"""\
passwd:         files
group:          files
shadow:         files
gshadow:        files

hosts:          files dns
networks:       files

protocols:      db files
services:       db files
ethers:         db files
rpc:            db files
"""


def nsswitch(plan: Plan, inp: AssemblyInput) -> Plan:
    """/etc/nsswitch.conf: kept if shipped, else base-files' template, else files+dns."""
    del inp
    if plan.resolve("etc/nsswitch.conf") is not None:
        return plan
    template = plan.read("usr/share/base-files/nsswitch.conf")
    return plan.with_entries(file_entry("etc/nsswitch.conf", template or DEFAULT_NSSWITCH))


def localtime(plan: Plan, inp: AssemblyInput) -> Plan:
    """/etc/localtime -> the zoneinfo UTC file and /etc/timezone, when tzdata is present."""
    del inp
    for zone in ("Etc/UTC", "UTC"):
        if plan.resolve(f"usr/share/zoneinfo/{zone}") is not None:
            return plan.with_entries(
                symlink_entry("etc/localtime", f"/usr/share/zoneinfo/{zone}"),
                file_entry("etc/timezone", b"Etc/UTC\n"),
            )
    return plan


def tmp(plan: Plan, inp: AssemblyInput) -> Plan:
    """The ``tmp`` directory, world-writable with the sticky bit (1777)."""
    del inp
    return plan.with_entries(dir_entry("tmp", mode=0o1777))


def os_release(plan: Plan, inp: AssemblyInput) -> Plan:
    """Keep base-files' /etc/os-release identity; link it if only /usr/lib's copy exists."""
    del inp
    if plan.resolve("etc/os-release") is None and plan.resolve("usr/lib/os-release"):
        return plan.with_entries(symlink_entry("etc/os-release", "../usr/lib/os-release"))
    return plan


# -------------------------------------------------------------------------- spec paths


def spec_paths(plan: Plan, inp: AssemblyInput) -> Plan:
    """Directories, symlinks and files the spec declares (e.g. ``python3 -> python3.13``).

    Held to the rules packages are (kiln.debian.deb): nothing below a symlink or file of
    the image (it would be written through the link), no path spelt two ways (``/bin/x``
    is ``/usr/bin/x``), nothing left below a path turned into a file or link, and a path
    a package ships or kiln writes itself (``/etc/passwd``) only replaced with
    ``replace: true``. A later path of the same spelling (a variant's) replaces the
    runtime's.
    """
    made: dict[str, tuple[str, Entry]] = {}  # plan path -> (spelling, entry) of this step
    for spec in inp.paths:
        where = f"paths: {spec.path}"
        path = usrmerge_path(normalise_path(spec.path, where=where))
        if not path:
            raise InputError(f"{where}: cannot replace the image root")
        overlay = made.get(path)
        if overlay is not None and overlay[0] != spec.path:
            raise InputError(f"{where}: the same path as {overlay[0]} (merged /usr)")
        _check_spec_parents(plan, made, path, where)
        existing = overlay[1] if overlay is not None else plan.get(path)
        if (
            existing is not None
            and spec.kind == "symlink"
            and existing.kind == "symlink"
            and _same_link(plan, path, existing, spec.target)
        ):
            continue  # the package already made this link (e.g. in -dev variants)
        both_dirs = existing is not None and spec.kind == "dir" and existing.kind == "dir"
        if existing is not None and overlay is None and not spec.replace and not both_dirs:
            owner = (
                "kiln writes it itself"
                if existing.package in _DEBIAN_OWNED_EXEMPT
                else f"package {existing.package} already ships /{path}"
            )
            raise InputError(
                f"{where}: {owner}", hint="set replace: true on the path to override it"
            )
        if spec.kind != "dir":
            below = next((p for p in (*made, *plan.entries) if p.startswith(path + "/")), None)
            if below is not None:
                raise InputError(f"{where}: /{below} lies below it, which a {spec.kind} would hide")
        match spec.kind:
            case "dir":
                entry = dir_entry(path, mode=spec.mode, uid=spec.uid, gid=spec.gid)
            case "symlink":
                if not spec.target:
                    raise InputError(f"{where}: a symlink needs a target")
                entry = symlink_entry(path, spec.target)
            case "file":
                entry = file_entry(path, spec.content, mode=spec.mode, uid=spec.uid, gid=spec.gid)
        made[path] = (spec.path, entry)
    return plan.with_entries(*(entry for _, entry in made.values()))


def _same_link(plan: Plan, path: str, existing: Entry, target: str | None) -> bool:
    """Whether an existing link is the one a spec asks for, or leads to the same file.

    In -dev images a link update-alternatives made (``/usr/bin/java`` ->
    ``/etc/alternatives/java`` -> the JVM's) stays when the spec's leads to the same
    place: replacing it would break ``update-alternatives --config``.
    """
    if not target or existing.link_target == target:
        return existing.link_target == target
    if existing.package != MAINTSCRIPTS_OWNER:
        return False
    wanted = target.lstrip("/") if target.startswith("/") else f"{posixpath.dirname(path)}/{target}"
    real = plan.resolve(path)
    return real is not None and plan.resolve(wanted) == real


def _check_spec_parents(
    plan: Plan, made: dict[str, tuple[str, Entry]], path: str, where: str
) -> None:
    """Refuse a spec path below a symlink or file of the image: it would be written through."""
    for parent in parents(path):
        entry = made[parent][1] if parent in made else plan.get(parent)
        if entry is not None and entry.kind != "dir":
            shown = f"a symlink to {entry.link_target}" if entry.kind == "symlink" else entry.kind
            raise InputError(
                f"{where}: /{parent} is {shown} in the image, so this path would be written "
                "through it",
                hint="name the path the link leads to",
            )


# ----------------------------------------------------------------- dpkg path-exclude

PATH_EXCLUDE_CFG = "etc/dpkg/dpkg.cfg.d/kiln-path-exclude"
_DEBIAN_OWNED_EXEMPT = frozenset({KILN, USRMERGE})


def _excluded(path: str, patterns: tuple[str, ...]) -> bool:
    # dpkg matches with fnmatch(3) without FNM_PATHNAME: '*' crosses '/', as here
    return any(fnmatchcase("/" + path, p) for p in patterns)


def path_exclude(plan: Plan, inp: AssemblyInput) -> Plan:
    """Leave out the packages' files matching dpkg ``path-exclude`` globs (dpkg(1)).

    Only files that packages ship are dropped (not kiln's own); a matching directory
    goes only when nothing is left below it, as dpkg keeps directories that other
    files need. Where dpkg is installed, ``/etc/dpkg/dpkg.cfg.d/kiln-path-exclude``
    carries the globs so later ``apt-get install``/``upgrade`` cannot bring them back
    (e.g. PEP 668's ``EXTERNALLY-MANAGED`` marker in python -dev).
    """
    patterns = tuple(
        "/" + usrmerge_path(normalise_path(p, where=f"path-exclude {p}")) for p in inp.path_excludes
    )
    if not patterns:
        return plan
    owned = {
        path: entry
        for path, entry in plan.entries.items()
        if entry.package not in _DEBIAN_OWNED_EXEMPT and _excluded(path, patterns)
    }
    drop = {path for path, entry in owned.items() if entry.kind != "dir"}
    for path in sorted((p for p, e in owned.items() if e.kind == "dir"), key=len, reverse=True):
        if all(child.path in drop for child in plan.under(path)):
            drop.add(path)
    plan = plan.without(drop)
    if plan.resolve("usr/bin/dpkg") is None:
        return plan
    lines = "".join(f"path-exclude={p}\n" for p in inp.path_excludes)
    text = (
        "# Written by kiln: files this image leaves out of the packages it installs.\n"
        "# dpkg(1) --path-exclude keeps later installs from bringing them back.\n" + lines
    )
    return plan.with_entries(file_entry(PATH_EXCLUDE_CFG, text.encode()))


# ----------------------------------------------------------------------------- wheels


def wheels(plan: Plan, inp: AssemblyInput) -> Plan:
    """Install the wheels the spec names from the image's own files (``kiln.assemble.wheels``)."""
    for index, spec in enumerate(inp.wheels):
        plan = install_wheel(plan, spec, where=f"wheels[{index}] {spec.wheel}")
    return plan


# ------------------------------------------------------------------------ apt sources

APT_SOURCES = "etc/apt/sources.list.d/debian.sources"
ARCHIVE_KEYRINGS = (
    "usr/share/keyrings/debian-archive-keyring.pgp",
    "usr/share/keyrings/debian-archive-keyring.gpg",
)


def apt_sources(plan: Plan, inp: AssemblyInput) -> Plan:
    """/etc/apt/sources.list.d/debian.sources (deb822, sources.list(5)), as Debian's images.

    Written when the image carries apt and debian-archive-keyring (``Signed-By`` names
    the keyring) and the build knows the archive (kiln's mirror configuration); an
    image without the keyring could not verify the archive, so it gets none. A sources
    file shipped in the plan (e.g. by a spec path) is kept.
    """
    if not inp.apt_sources or plan.resolve("usr/bin/apt-get") is None:
        return plan
    if plan.resolve(APT_SOURCES) is not None or plan.resolve("etc/apt/sources.list"):
        return plan
    keyring = next((k for k in ARCHIVE_KEYRINGS if plan.resolve(k) is not None), None)
    if keyring is None:
        return plan
    stanzas = []
    for source in inp.apt_sources:
        for value in (source.uri, *source.suites, *source.components):
            if not value or any(c.isspace() or not c.isprintable() for c in value):
                raise InputError(f"apt sources: {value!r} is not a single printable word")
        stanza = Deb822()
        stanza["Types"] = "deb"
        stanza["URIs"] = source.uri
        stanza["Suites"] = " ".join(source.suites)
        stanza["Components"] = " ".join(source.components)
        stanza["Signed-By"] = "/" + keyring
        stanzas.append(str(stanza.dump()).rstrip("\n") + "\n")
    return plan.with_entries(file_entry(APT_SOURCES, "\n".join(stanzas).encode()))


# ------------------------------------------------------------------------ merged /usr

#: The top-level links every image has (DEP 17); lib64 too on amd64.
MERGED_USR_ALWAYS = ("bin", "sbin", "lib")
_BIN_DIRS = ("usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin", "usr/libexec")


def _merged_aliases(plan: Plan, arch: str) -> list[str]:
    wanted = list(MERGED_USR_ALWAYS)
    for alias in USRMERGE_ALIASES:
        if alias in wanted:
            continue
        if f"usr/{alias}" in plan or alias in plan or (alias == "lib64" and arch == "amd64"):
            wanted.append(alias)
    return wanted


def elf_interpreter(data: bytes) -> str | None:
    """The PT_INTERP path of an ELF file (None for non-ELF or static files)."""
    facts = read_elf(io.BytesIO(data), dynamic=False)
    return facts[0] if facts is not None else None


def merged_usr(plan: Plan, inp: AssemblyInput) -> Plan:
    """Every image is merged-/usr: /bin, /sbin, /lib (/lib64 on amd64) link into /usr.

    Missing links are created; a real directory or file in their place (from a spec
    path or a step) fails the build, naming its owner. Then every dynamically linked
    program in the bin directories must find its ELF interpreter (``/lib64/ld-linux-
    x86-64.so.2``, ``/lib/ld-linux-aarch64.so.1``) inside the image.
    """
    new = []
    for alias in _merged_aliases(plan, inp.arch):
        entry = plan.get(alias)
        if entry is None:
            new.append(symlink_entry(alias, f"usr/{alias}", package=USRMERGE))
            continue
        target = posixpath.normpath(entry.link_target or "").lstrip("/")
        if entry.kind != "symlink" or target != f"usr/{alias}":
            shape = f"a symlink to {entry.link_target!r}" if entry.kind == "symlink" else entry.kind
            raise PolicyError(
                f"merged /usr: /{alias} is {shape} (from {entry.package}), "
                f"not a symlink to usr/{alias}",
                hint="install into /usr instead; every kiln image has a merged /usr (DEP 17)",
            )
    plan = plan.with_entries(*new)
    missing = []
    for directory in _BIN_DIRS:
        for entry in plan.children(directory):
            if entry.kind not in ("file", "hardlink") or not entry.mode & 0o111:
                continue
            interp = elf_interpreter(plan.read(entry.path) or b"")
            if interp is not None and plan.resolve(interp.lstrip("/")) is None:
                missing.append(f"/{entry.path} ({entry.package}) needs {interp}")
    if missing:
        raise PolicyError(
            "merged /usr: programs whose ELF interpreter is not in the image",
            details=sorted(missing),
            hint="add the C library package (libc6) or drop the programs",
        )
    return plan


# ------------------------------------------------------------------------ dpkg database

DPKG = "var/lib/dpkg"


def _conffile_md5(plan: Plan, path: str) -> str:
    data = plan.read(usrmerge_path(path.lstrip("/")))
    if data is None:
        return "newconffile"
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def status_stanza(
    pkg: PackageInput, plan: Plan | None = None, *, status: str = "install ok installed"
) -> str:
    """The package's control stanza as dpkg records it: Status after Package.

    With a plan (dev variants) the ``Conffiles`` field is added with each file's md5.
    """
    control = Deb822(pkg.control)
    if "Package" not in control:
        raise InputError(f"package {pkg.name}: control stanza has no Package field")
    out = Deb822()
    out["Package"] = control["Package"]
    out["Status"] = status
    for key, value in control.items():
        if key not in ("Package", "Status"):
            out[key] = value
    if plan is not None and pkg.conffiles:
        lines = [f" {c} {_conffile_md5(plan, c)}" for c in pkg.conffiles]
        out["Conffiles"] = "\n" + "\n".join(lines)
    text = str(out.dump())
    return text if text.endswith("\n") else text + "\n"


def _dpkg_list(pkg: PackageInput) -> bytes:
    """info/<pkg>.list: every member path as dpkg records it (``/.`` for the root)."""
    lines = []
    for m in pkg.members:
        path = normalise_path(m.path, where=f"package {pkg.name}")
        lines.append("/" + path if path else "/.")
    return "".join(line + "\n" for line in lines).encode()


#: control.tar members dpkg keeps in ``info/`` besides list, md5sums and conffiles
_INFO_MEMBER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_SCRIPTS = frozenset({"preinst", "postinst", "prerm", "postrm", "config"})


def _info_members(pkg: PackageInput) -> list[Entry]:
    out = []
    for name, data in pkg.control_files:
        if not name or not set(name) <= _INFO_MEMBER_CHARS:
            raise InputError(f"package {pkg.name}: control member {name!r} is not a plain name")
        mode = 0o755 if name in _SCRIPTS else 0o644
        out.append(file_entry(f"{DPKG}/info/{pkg.dpkg_name}.{name}", data, mode=mode))
    return out


def dpkg_metadata(plan: Plan, inp: AssemblyInput) -> Plan:
    """dpkg's view of the installed set, so scanners (and apt in -dev) see every package.

    runtime: ``status.d/<pkg>`` and ``status.d/<pkg>.md5sums`` (distroless layout, read by
    Syft, Trivy and Grype). dev: the full ``status`` database and ``info/`` files dpkg
    and apt need; where the maintainer scripts were replayed
    (``kiln.assemble.maintscripts``) dpkg itself wrote the database and it is kept.
    """
    new = []
    packages = sorted(inp.packages, key=lambda p: p.name)
    if inp.variant == "runtime":
        for pkg in packages:
            new.append(file_entry(f"{DPKG}/status.d/{pkg.name}", status_stanza(pkg).encode()))
            if pkg.md5sums:
                new.append(file_entry(f"{DPKG}/status.d/{pkg.name}.md5sums", pkg.md5sums))
        return plan.with_entries(*new)
    if plan.get(f"{DPKG}/status") is not None:
        return plan
    return dpkg_database(plan, inp)


def dpkg_database(plan: Plan, inp: AssemblyInput, *, status: str = "install ok installed") -> Plan:
    """dpkg's full database (status, info/, diversions, ...) with every package in ``status``.

    Every control member but ``control`` itself lands in ``info/`` (maintainer scripts,
    triggers, shlibs, templates), as dpkg keeps them.
    """
    new = []
    packages = sorted(inp.packages, key=lambda p: p.name)
    status_text = "\n".join(status_stanza(pkg, plan, status=status) for pkg in packages)
    new.append(file_entry(f"{DPKG}/status", status_text.encode()))
    for name in ("available", "statoverride"):
        new.append(file_entry(f"{DPKG}/{name}", b""))
    diversions = "".join(f"{d.path}\n{d.divert_to}\n{d.package}\n" for d in inp.diversions)
    new.append(file_entry(f"{DPKG}/diversions", diversions.encode()))
    for name in ("updates", "triggers", "alternatives", "parts", "info"):
        new.append(dir_entry(f"{DPKG}/{name}"))
    new.append(file_entry(f"{DPKG}/triggers/Unincorp", b""))
    # info/format 1: ``<pkg>:<arch>.list`` names for Multi-Arch: same packages
    new.append(file_entry(f"{DPKG}/info/format", b"1\n"))
    new.append(file_entry(f"{DPKG}/arch", f"{inp.arch}\n".encode()))
    for pkg in packages:
        base = f"{DPKG}/info/{pkg.dpkg_name}"
        new.append(file_entry(f"{base}.list", _dpkg_list(pkg)))
        if pkg.md5sums:
            new.append(file_entry(f"{base}.md5sums", pkg.md5sums))
        if pkg.conffiles:
            new.append(
                file_entry(f"{base}.conffiles", "".join(c + "\n" for c in pkg.conffiles).encode())
            )
        new.extend(_info_members(pkg))
    return plan.with_entries(*new)


# ------------------------------------------------------------------------- image facts

IMAGE_JSON = "usr/lib/kiln/image.json"


def image_facts(inp: AssemblyInput) -> dict[str, object]:
    f = inp.facts
    return {
        "name": f.name,
        "version": f.version,
        "description": f.description,
        "lock_digest": f.lock_digest,
        "variant": inp.variant,
        "arch": inp.arch,
        "source_date_epoch": inp.source_date_epoch,
        "user": inp.run_as,
        "packages": [
            {"name": p.name, "version": p.version, "architecture": p.architecture}
            for p in sorted(inp.packages, key=lambda p: p.name)
        ],
        "tests": [t.to_json() for t in inp.tests],
    }


def image_json(plan: Plan, inp: AssemblyInput) -> Plan:
    """/usr/lib/kiln/image.json: name, version, lock digest, variant, arch and the tests."""
    data = json.dumps(image_facts(inp), indent=2, sort_keys=True) + "\n"
    return plan.with_entries(file_entry(IMAGE_JSON, data.encode()))


# ------------------------------------------------------------------------ alternatives

#: a shared library's file name (``libblas.so.3``, ``libfoo.so``)
_SHARED_LIBRARY = re.compile(r"\.so(\.[0-9]+)*$")


@dataclass(frozen=True)
class _Alternative:
    link: str  # normalised path, e.g. usr/lib/x86_64-linux-gnu/libblas.so.3
    name: str
    path: str  # normalised target
    priority: int
    package: str


@dataclass(frozen=True)
class _Registration:
    """One ``update-alternatives --install`` command: its master and its slaves."""

    master: _Alternative
    slaves: tuple[_Alternative, ...]


def _registered_alternatives(pkg: PackageInput) -> list[_Registration]:
    """The ``update-alternatives --install LINK NAME PATH PRIORITY`` (and ``--slave``)
    commands of a package's postinst, read, not run, one registration per command (an
    optimised BLAS registers libblas.so.3 and liblapack.so.3, each its own master): only
    literal arguments (a word with ``$`` or a backquote is a value the script computes,
    and that command is skipped, as is one whose master path is not a plain one)."""
    script = dict(pkg.control_files).get("postinst", b"")
    text = script.decode("utf-8", "replace").replace("\\\n", " ")
    found: list[_Registration] = []
    for line in text.splitlines():
        if "update-alternatives" not in line or "--install" not in line:
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if any("$" in w or "`" in w for w in words) or "--install" not in words:
            continue
        at = words.index("--install")
        args = words[at + 1 : at + 5]
        if len(args) < 4 or not args[3].lstrip("-").isdigit():
            continue
        link, name, path, priority = args[0], args[1], args[2], int(args[3])
        groups = [(link, name, path)]
        rest = words[at + 5 :]
        while len(rest) >= 4 and rest[0] == "--slave":
            groups.append((rest[1], rest[2], rest[3]))
            rest = rest[4:]
        parsed: list[_Alternative] = []
        for each_link, each_name, each_path in groups:
            if not each_link.startswith("/") or not each_path.startswith("/"):
                continue
            try:
                norm_link = usrmerge_path(normalise_path(each_link, where=pkg.name))
                norm_path = usrmerge_path(normalise_path(each_path, where=pkg.name))
            except InputError:
                continue
            parsed.append(_Alternative(norm_link, each_name, norm_path, priority, pkg.name))
        if parsed and parsed[0].name == name:  # the master itself was read
            found.append(_Registration(parsed[0], tuple(parsed[1:])))
    return found


def library_alternatives(plan: Plan, inp: AssemblyInput) -> Plan:
    """Runtime images: the links ``update-alternatives`` makes for *shared libraries*.

    A runtime image runs no maintainer script, so Debian's alternatives are not there;
    for programs (awk, editor, pager) that is the point, but a library registered as an
    alternative (``libblas.so.3`` from libblas3 or an optimised BLAS, ``liblapack.so.3``)
    is a ``DT_NEEDED`` of programs that then cannot load (R's ``libR.so``). For each
    alternative name whose master link is a shared library, the installed candidate
    with the highest priority (then the package name, for a stable choice) whose target
    is in the image gets Debian's two links, ``LINK -> /etc/alternatives/NAME -> PATH``,
    and its slaves whose targets exist. A link that already exists is left alone. -dev
    images replay the scripts (``kiln.assemble.maintscripts``): dpkg does it there.
    """
    if inp.variant != "runtime":
        return plan
    by_name: dict[str, list[_Registration]] = {}
    for pkg in inp.packages:
        for registration in _registered_alternatives(pkg):
            by_name.setdefault(registration.master.name, []).append(registration)
    added: list[Entry] = []
    for _, candidates in sorted(by_name.items()):
        present = [c for c in candidates if plan.get(c.master.path) is not None]
        if not present:
            continue
        best = max(present, key=lambda c: (c.master.priority, c.master.package))
        if not _SHARED_LIBRARY.search(best.master.link):
            continue
        for each in (best.master, *best.slaves):
            if plan.get(each.link) is not None or plan.get(each.path) is None:
                continue
            hop = f"etc/alternatives/{each.name}"
            added.append(symlink_entry(each.link, f"/etc/alternatives/{each.name}"))
            added.append(symlink_entry(hop, "/" + each.path))
    if not added:
        return plan
    directories = {p for e in added for p in parents(e.path) if plan.get(p) is None}
    return plan.with_entries(*(dir_entry(d) for d in sorted(directories)), *added)


# ------------------------------------------------------------------------------- order

STEPS: tuple[Step, ...] = (
    path_exclude,
    accounts,
    ca_certificates,
    java_cacerts,
    nsswitch,
    localtime,
    tmp,
    os_release,
    npm_packages,
    spec_paths,
    wheels,
    apt_sources,
    library_alternatives,
    merged_usr,
    ld_so_cache,
    dpkg_metadata,
    image_json,
)


def apply_steps(plan: Plan, inp: AssemblyInput, steps: tuple[Step, ...] = STEPS) -> Plan:
    for step in steps:
        plan = step(plan, inp)
    return plan
