"""Catalog families: compact tables (``catalog/*.yaml``) that generate regular image specs.

A family is one YAML table (runtimes, servers, tools) read through ``kiln.yamldoc``
and validated with positions. Each entry becomes, for each release it names
(``debian-13`` and, by default, ``debian-12``), one ordinary ``ImageSpec`` with a
runtime variant and a ``-dev`` variant (Debian's essential set plus apt, as the
hand-written specs' dev variant). Everything else is generated from the entry and
its family: the version-package, the nonroot user, the compatibility notes, and the
tests (the entrypoint answers, a server's readiness probe on its port, a runtime's
hello-world, the ``-dev`` image's package manager reaching the archive).

Generation is pure and reproducible: the same table gives the same specs, byte for
byte (``render_spec``). Locks are not checked in: the catalog build resolves each
generated spec against the archive and keeps the lock in its state directory. Which
packages exist in a release is decided by the caller (``plan_catalog`` takes one
predicate per release), so an entry naming a package a release lacks is dropped for
that release, with the reason, before anything builds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kiln.errors import InputError, Location
from kiln.spec.model import (
    Arch,
    Arg,
    ImageSpec,
    ImageTest,
    PackageName,
    PathSpec,
    Port,
    Regex,
    StopSignal,
    UserRef,
)
from kiln.yamldoc import locate, parse_yaml_model, read_limited

MAX_FAMILY_BYTES = 1024 * 1024
Release = Literal["debian-13", "debian-12"]
RELEASES: tuple[Release, ...] = ("debian-13", "debian-12")
CODENAMES: dict[str, str] = {"debian-13": "trixie", "debian-12": "bookworm"}
#: What every generated image carries besides its own packages (as the hand-written specs).
BASE_PACKAGES = ("base-files", "netbase", "tzdata", "ca-certificates")
_ESSENTIAL_COMMON = (
    "apt", "base-files", "base-passwd", "bash", "bsdutils", "coreutils", "dash", "debconf",
    "debian-archive-keyring", "debianutils", "diffutils", "dpkg", "findutils", "grep", "gzip",
    "hostname", "init-system-helpers", "libc-bin", "login", "mawk", "mount", "ncurses-base",
    "ncurses-bin", "passwd", "perl-base", "sed", "sysvinit-utils", "tar", "tzdata",
    "util-linux",
)  # fmt: skip
#: The ``-dev`` variant's packages per release: the release's ``debian:*-slim`` set (its
#: Essential packages, apt and what apt verifies signatures with).
DEV_PACKAGES: dict[str, tuple[str, ...]] = {
    "debian-13": tuple(sorted((*_ESSENTIAL_COMMON, "login.defs", "sqv"))),
    "debian-12": tuple(sorted((*_ESSENTIAL_COMMON, "gpgv"))),
}
#: The shared base layer of every generated runtime image (``layering: shared``): the
#: packages every runtime lock of a release held when measured (the 37 Debian 13 and 9
#: Debian 12 generated specs locked on 2026-12-07: BASE_PACKAGES plus libc6 and the
#: libgcc it pulls). Images locked to the same versions of them share that layer byte for
#: byte; a package missing from some image only leaves that image's base unshared.
SHARED_BASE: dict[str, tuple[str, ...]] = {
    "debian-13": tuple(sorted((*BASE_PACKAGES, "libc6", "libgcc-s1", "gcc-14-base"))),
    "debian-12": tuple(sorted((*BASE_PACKAGES, "libc6", "libgcc-s1", "gcc-12-base"))),
}
_DEV_LIBS_COMMON = (
    "libacl1", "libattr1", "libaudit-common", "libaudit1", "libblkid1", "libbz2-1.0",
    "libcap-ng0", "libcap2", "libcrypt1", "libdebconfclient0", "libgmp10", "liblz4-1",
    "liblzma5", "libmd0", "libmount1", "libpam-modules", "libpam-modules-bin",
    "libpam-runtime", "libpam0g", "libpcre2-8-0", "libseccomp2", "libselinux1",
    "libsemanage-common", "libsemanage2", "libsepol2", "libsmartcols1", "libstdc++6",
    "libsystemd0", "libtinfo6", "libudev1", "libuuid1", "libxxhash0", "libzstd1", "openssl",
    "zlib1g",
)  # fmt: skip
#: The ``-dev`` images' shared base layer: their essential set, the runtime base and what
#: every dev lock of the release held besides (measured as SHARED_BASE).
DEV_SHARED_BASE: dict[str, tuple[str, ...]] = {
    "debian-13": tuple(sorted({
        *DEV_PACKAGES["debian-13"], *SHARED_BASE["debian-13"], *_DEV_LIBS_COMMON,
        "libapt-pkg7.0", "libbsd0", "libdb5.3t64", "libhogweed6t64", "liblastlog2-2",
        "libnettle8t64", "libsqlite3-0", "libssl3t64", "openssl-provider-legacy",
    })),
    "debian-12": tuple(sorted({
        *DEV_PACKAGES["debian-12"], *SHARED_BASE["debian-12"], *_DEV_LIBS_COMMON,
        "adduser", "libapt-pkg6.0", "libdb5.3", "libffi8", "libfile-find-rule-perl",
        "libgcrypt20", "libgdbm-compat4", "libgdbm6", "libgnutls30", "libgpg-error0",
        "libhogweed6", "libidn2-0", "libnettle8", "libnumber-compare-perl", "libp11-kit0",
        "libperl5.36", "libssl3", "libtasn1-6", "libtext-glob-perl", "libunistring2", "perl",
        "perl-modules-5.36", "usrmerge", "util-linux-extra",
    })),
}  # fmt: skip
_ENTRY_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")


class FamilyError(InputError):
    """A family table is not valid YAML, does not fit the family model, or is inconsistent."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class VersionCheck(_Frozen):
    """How the entrypoint answers: ``binary ARGS`` exits 0 and prints what matches."""

    args: tuple[Arg, ...] = ("--version",)
    stdout: Regex | None = None
    stderr: Regex | None = None
    exit_code: int = Field(default=0, alias="exit-code")
    command: tuple[Arg, ...] | None = Field(
        default=None, description="the whole argv, when it is not the binary with args"
    )

    @model_validator(mode="after")
    def _expects(self) -> VersionCheck:
        if self.stdout is None and self.stderr is None:
            raise ValueError("a version check needs the stdout or stderr it expects")
        return self


class HelloCheck(_Frozen):
    """A runtime's hello-world program (argv, no shell) and its expected output: on
    stdout by default, or on stderr (``stderr:``; Go's ``test/helloworld.go`` uses the
    ``print`` builtin, which writes to stderr)."""

    command: tuple[Arg, ...] = Field(min_length=1)
    stdout: Regex | None = None
    stderr: Regex | None = None
    variant: Literal["runtime", "dev"] | None = Field(
        default=None, description="only in this variant (what a maintainer script sets up)"
    )

    @model_validator(mode="after")
    def _default(self) -> HelloCheck:
        if self.stdout is None and self.stderr is None:
            object.__setattr__(self, "stdout", "^hello, world$")
        return self


class ServerProbe(_Frozen):
    """A server started in the foreground, as the image's user, answering on ``port``."""

    command: tuple[Arg, ...] | None = Field(
        default=None, description="argv of the server (default: entrypoint + cmd)"
    )
    port: int = Field(ge=1024, le=65535, description="unprivileged: servers run as nonroot")
    send: str = Field(default="", description="text (the probe passes it as an argument)")
    expect: Regex = Field(min_length=1)
    timeout: float = Field(default=30.0, gt=0, le=600)
    variant: Literal["runtime", "dev"] | None = Field(
        default=None, description="only in this variant (e.g. a server that needs a shell)"
    )
    user: UserRef | None = None

    @field_validator("send")
    @classmethod
    def _text(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError(
                "send contains a NUL byte: the probe sends text (a binary protocol such as "
                "DNS or MQTT cannot be probed; give the entry a no-probe reason instead)"
            )
        return value


class Override(_Frozen):
    """What differs in one release (other package names, paths, checks)."""

    packages: tuple[PackageName, ...] | None = None
    binary: str | None = None
    entrypoint: tuple[Arg, ...] | None = None
    cmd: tuple[Arg, ...] | None = None
    version: VersionCheck | None = None
    hello: HelloCheck | None = None
    probe: ServerProbe | None = None
    replaces: tuple[str, ...] | None = None
    paths: tuple[PathSpec, ...] | None = None
    path_exclude: tuple[str, ...] | None = Field(
        default=None,
        alias="path-exclude",
        description="dpkg path-exclude globs for this release (e.g. a package's links to "
        "optional tools it only suggests, which would dangle)",
    )


class FamilyEntry(_Frozen):
    """One image name of a family (it becomes a runtime and a ``-dev`` image per release)."""

    name: str
    description: str = ""
    packages: tuple[PackageName, ...] = Field(min_length=1)
    exclude: tuple[PackageName, ...] = ()
    binary: str = Field(description="the program the image is for (absolute path)")
    entrypoint: tuple[Arg, ...] | None = Field(default=None, description="default: [binary]")
    cmd: tuple[Arg, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    user: Literal["nonroot", "root"] = "nonroot"
    ports: tuple[Port, ...] = ()
    stop_signal: StopSignal | None = Field(default=None, alias="stop-signal")
    paths: tuple[PathSpec, ...] = ()
    version: VersionCheck | None = None
    hello: HelloCheck | None = None
    probe: ServerProbe | None = None
    no_probe: str | None = Field(
        default=None, alias="no-probe", description="why a server has no readiness probe"
    )
    tests: tuple[ImageTest, ...] = Field(
        default=(), description="the entry's own tests, added to the generated ones"
    )
    replaces: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    shell: str | None = Field(
        default=None,
        min_length=10,
        max_length=300,
        description="why the runtime image keeps a shell (the program is a shell script, "
        "e.g. erl or R): the spec's shell field and a note; list the shell's package (dash "
        "for /bin/sh, bash for a #!/bin/bash launcher) in packages",
    )
    releases: tuple[Release, ...] = Field(default=RELEASES, min_length=1)
    archs: tuple[Arch, ...] = Field(
        default=("amd64",),
        min_length=1,
        description="the platforms its specs build (`kiln catalog build` builds amd64; "
        "`--arm64` builds and tests the entries listing arm64 on both)",
    )
    overrides: dict[Release, Override] = Field(default_factory=dict)

    @field_validator("archs")
    @classmethod
    def _archs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("an architecture is listed more than once")
        if "amd64" not in value:
            raise ValueError("amd64 must be listed: the catalog builds and tests every image on it")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _ENTRY_NAME.match(value) or len(value) > 64:
            raise ValueError(f"{value!r} is not a valid image name (lowercase, digits, . _ -)")
        return value

    @field_validator("binary")
    @classmethod
    def _binary(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/") or not value.isprintable():
            raise ValueError(f"binary {value!r} must be an absolute path without '..'")
        return value

    def override_for(self, release: str) -> Override:
        """What differs in ``release`` (an empty override when nothing does)."""
        return next((o for r, o in self.overrides.items() if r == release), Override())

    @model_validator(mode="after")
    def _consistent(self) -> FamilyEntry:
        for release in self.overrides:
            if release not in self.releases:
                raise ValueError(f"overrides names {release}, which releases does not list")
        return self


class Family(_Frozen):
    """A family table: its kind decides which tests and notes its entries get."""

    family: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")
    kind: Literal["runtime", "server", "tool"]
    description: str = ""
    dev_install: PackageName = Field(
        default="hello",
        alias="dev-install",
        description="package the -dev images fetch and unpack with apt (the network test)",
    )
    entries: tuple[FamilyEntry, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Family:
        seen: set[str] = set()
        for entry in self.entries:
            if entry.name in seen:
                raise ValueError(f"entry {entry.name!r} is listed more than once")
            seen.add(entry.name)
            probed = entry.probe is not None or any(o.probe for o in entry.overrides.values())
            if self.kind == "server" and not probed and not entry.no_probe:
                raise ValueError(f"server entry {entry.name!r} has no probe (or a no-probe reason)")
        return self


@dataclass(frozen=True)
class LoadedFamily:
    """A parsed family table with its path, to locate an entry's fields in errors."""

    path: Path
    family: Family
    _tree: Any

    def locate(self, field_path: tuple[str | int, ...]) -> Location:
        """The file position of a field path like ``("entries", 3, "packages")``."""
        return locate(self._tree, self.path, field_path)

    def entry_location(self, name: str) -> Location:
        """Where the entry called ``name`` is in the table."""
        for index, entry in enumerate(self.family.entries):
            if entry.name == name:
                return self.locate(("entries", index, "name"))
        return Location(str(self.path))


def load_family(path: Path) -> LoadedFamily:
    """Parse and validate a family table; raise ``FamilyError`` naming the position."""
    data = read_limited(path, what="family table", limit=MAX_FAMILY_BYTES, error=FamilyError)
    family, tree = parse_yaml_model(
        data, path, Family, what="family table", error=FamilyError,
        hint="see docs/catalog.md for the family table's fields",
    )  # fmt: skip
    return LoadedFamily(path, family, tree)


def load_families(directory: Path, *, reserved: Iterable[str] = ()) -> list[LoadedFamily]:
    """Every ``*.yaml`` table in ``directory``, sorted; names unique across the catalog.

    ``reserved``: names already taken (the hand-written ``images/*.yaml``); an entry
    with one of them is refused, naming where it is.
    """
    if not directory.is_dir():
        raise FamilyError(f"the family directory {directory} does not exist")
    families = [load_family(p) for p in sorted(directory.glob("*.yaml"))]
    if not families:
        raise FamilyError(f"{directory} holds no family table (*.yaml)")
    taken: dict[str, str] = dict.fromkeys(reserved, "a hand-written spec (images/)")
    names: set[str] = set()
    for loaded in families:
        if loaded.family.family in names:
            raise FamilyError(
                f"family {loaded.family.family!r} is defined twice", loaded.locate(("family",))
            )
        names.add(loaded.family.family)
        for entry in loaded.family.entries:
            for name in (entry.name, f"{entry.name}-debian12"):
                if name in taken:
                    raise FamilyError(
                        f"entry {entry.name!r} of family {loaded.family.family!r}: "
                        f"the name {name!r} is already {taken[name]}",
                        loaded.entry_location(entry.name),
                    )
            taken[entry.name] = f"an entry of family {loaded.family.family!r}"
    return families


# ------------------------------------------------------------------ generation


def image_name(entry: str, release: str) -> str:
    """The spec name of an entry in a release: ``curl`` (Debian 13), ``curl-debian12``."""
    return entry if release == "debian-13" else f"{entry}-{release.replace('-', '')}"


def _dedupe(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def compatibility_notes(family: Family, entry: FamilyEntry, release: str, binary: str) -> list[str]:
    """What differs from the official images, from the entry and its family."""
    name = image_name(entry.name, release)
    codename = CODENAMES[release]
    notes = []
    if entry.user == "nonroot":
        notes.append(
            f"{name} runs as nonroot (65532); official images mostly start as root: files "
            "it writes need a volume or directory writable by 65532"
        )
    if entry.shell:
        listed = entry.override_for(release).packages or entry.packages
        kept = [s for s in ("dash", "bash", "busybox") if s in listed]
        notes.append(
            f"{name} keeps a shell ({', '.join(kept) or 'the packages listed'}) "
            f"because {entry.shell}; "
            f"it has no package manager: RUN steps that install belong in a stage "
            f"FROM {name}-dev (Debian's essential set and apt, runs as root)"
        )
    else:
        notes.append(
            f"{name} has no shell and no package manager: RUN steps belong in a stage "
            f"FROM {name}-dev (Debian's essential set and apt, runs as root)"
        )
    if binary.startswith("/usr/local/"):
        notes.append(f"the program is {binary}")
    else:
        notes.append(
            f"the program is Debian's {binary} (official images often build into "
            "/usr/local/bin): scripts with absolute paths may need changing"
        )
    notes.append(
        f"Debian {release.split('-')[1]} ({codename}) packages: versions follow the "
        "release's security updates, not upstream's newest"
    )
    if family.kind == "server" and entry.ports:
        notes.append(
            f"listens on {', '.join(entry.ports)} (unprivileged ports: the image runs as nonroot)"
        )
    if family.kind == "server" and entry.no_probe:
        notes.append(f"kiln's tests do not probe this server: {entry.no_probe}")
    notes.extend(entry.notes)
    return notes


def _tests(
    family: Family, entry: FamilyEntry, override: Override, binary: str, *, network: bool
) -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = []
    version = override.version or entry.version
    if version is not None:
        argv = list(version.command or (binary, *version.args))
        test: dict[str, Any] = {"name": f"{' '.join(argv[:3])} answers", "command": argv}
        if version.stdout is not None:
            test["stdout"] = version.stdout
        if version.stderr is not None:
            test["stderr"] = version.stderr
        if version.exit_code:
            test["exit-code"] = version.exit_code
        tests.append(test)
    hello = override.hello or entry.hello
    if hello is not None:
        said: dict[str, Any] = {
            k: v for k, v in (("stdout", hello.stdout), ("stderr", hello.stderr)) if v
        }
        if hello.variant:
            said["variants"] = [hello.variant]
        tests.append({"name": "runs hello-world", "command": list(hello.command), **said})
    probe = override.probe or entry.probe
    if probe is not None:
        entrypoint = override.entrypoint or entry.entrypoint or (binary,)
        argv = list(probe.command or (*entrypoint, *(override.cmd or entry.cmd)))
        test = {
            "name": f"starts and answers on port {probe.port}",
            "command": argv,
            "timeout": probe.timeout,
            "probe": {"port": probe.port, "send": probe.send, "expect": probe.expect},
        }
        if probe.variant is not None:
            test["variants"] = [probe.variant]
        test["user"] = probe.user or "nonroot"
        tests.append(test)
    tests += [t.model_dump(by_alias=True, exclude_defaults=True) for t in entry.tests]
    first = (override.packages or entry.packages)[0]
    tests.append(
        {
            "name": "dpkg database lists the image's package",
            "command": ["/usr/bin/dpkg-query", "-W", "-f", "${Package}\\n", first],
            "stdout": f"^{re.escape(first)}$",
            "variants": ["dev"],
        }
    )
    if network:
        pkg = family.dev_install
        script = (
            "set -e; o='-o Dir::State::Lists=/tmp/lists -o Dir::Cache=/tmp/cache "
            "-o Dir::Log=/tmp -o APT::Sandbox::User=root -o Debug::NoLocking=1'; "
            "mkdir -p /tmp/lists/partial /tmp/cache/archives/partial; "
            f"apt-get $o -qq update; apt-get $o -s install {pkg} | grep -q '^Inst {pkg} '; "
            f"cd /tmp && apt-get $o -qq download {pkg} && dpkg-deb -x /tmp/{pkg}_*.deb /tmp/x "
            f"&& echo fetched {pkg}"
        )
        tests.append(
            {
                "name": f"apt-get resolves, fetches and unpacks {pkg} [network]",
                "command": ["/bin/sh", "-c", script],
                "stdout": f"fetched {pkg}$",
                "network": True,
                "timeout": 300,
                "variants": ["dev"],
            }
        )
    return tests


@dataclass(frozen=True)
class GeneratedImage:
    """One generated spec: the entry and release it came from, and the spec itself."""

    family: str
    entry: str
    release: str
    name: str  # the spec's name (curl, curl-debian12)
    spec: dict[str, Any]  # the spec document (validated by ImageSpec)
    replaces: tuple[str, ...]

    def labels(self) -> tuple[str, str]:
        """The two images it builds: ``NAME`` and ``NAME-dev``."""
        return self.name, f"{self.name}-dev"


def generate(
    loaded: LoadedFamily, entry: FamilyEntry, release: str, *, network_tests: bool = True
) -> GeneratedImage:
    """The spec of ``entry`` for ``release`` (validated; ``FamilyError`` at the entry)."""
    family = loaded.family
    override = entry.override_for(release)
    binary = override.binary or entry.binary
    packages = override.packages or entry.packages
    name = image_name(entry.name, release)
    exclude = list(entry.exclude)
    if "openssl" not in packages and "openssl" not in exclude:
        exclude.append("openssl")  # only update-ca-certificates runs it; kiln builds the bundle
    entrypoint = list(override.entrypoint or entry.entrypoint or (binary,))
    cmd = list(override.cmd if override.cmd is not None else entry.cmd)
    replaces = override.replaces if override.replaces is not None else entry.replaces
    spec: dict[str, Any] = {
        "name": name,
        "description": entry.description
        or f"{entry.name} on Debian {release.split('-')[1]} ({CODENAMES[release]})",
        "distro": release,
        "version-package": packages[0],
        "packages": _dedupe((*BASE_PACKAGES, *packages)),
        "exclude": sorted(exclude),
        "accounts": {"run-as": entry.user},
        "entrypoint": entrypoint,
        "cmd": cmd,
        "env": {
            "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
            **entry.env,
        },
        "archs": list(entry.archs),
        "layering": "shared",
        "base-packages": list(SHARED_BASE[release]),
        "variants": {
            "dev": {
                "packages": list(DEV_PACKAGES[release]),
                "base-packages": list(DEV_SHARED_BASE[release]),
                "run-as": "root",
                # the file a container runtime mounts the host's resolver over
                "paths": [{"path": "/etc/resolv.conf", "type": "file", "content": ""}],
                "entrypoint": [],
                "cmd": [*entrypoint, *cmd] if family.kind != "tool" else ["/bin/bash"],
            }
        },
        "tests": _tests(family, entry, override, binary, network=network_tests),
        "compatibility": {
            "replaces": list(replaces),
            "notes": compatibility_notes(family, entry, release, binary),
        },
        "annotations": {
            "dev.kiln.catalog.family": family.family,
            "dev.kiln.catalog.entry": entry.name,
        },
    }
    if entry.shell:
        spec["shell"] = entry.shell
    if override.path_exclude:
        spec["path-exclude"] = list(override.path_exclude)
    if entry.ports:
        spec["ports"] = list(entry.ports)
    if entry.stop_signal:
        spec["stop-signal"] = entry.stop_signal
    paths = override.paths if override.paths is not None else entry.paths
    if paths:
        spec["paths"] = [p.model_dump(by_alias=True, exclude_defaults=True) for p in paths]
    if set(spec["exclude"]) & set(spec["packages"]):
        spec["exclude"] = sorted(set(spec["exclude"]) - set(spec["packages"]))
    try:
        ImageSpec.model_validate(spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FamilyError(
            f"entry {entry.name!r} ({release}) generates an invalid spec: "
            f"{'.'.join(map(str, first['loc']))}: {first['msg']}",
            loaded.entry_location(entry.name),
        ) from exc
    return GeneratedImage(family.family, entry.name, release, name, spec, tuple(replaces))


def render_spec(image: GeneratedImage) -> bytes:
    """The spec as YAML (stable key order, so one table always renders the same bytes)."""
    header = (
        f"# Generated by kiln catalog generate from the {image.family!r} family, entry "
        f"{image.entry!r} ({image.release}).\n# Edit catalog/{image.family}.yaml, not this file.\n"
    )
    body = yaml.safe_dump(image.spec, sort_keys=False, allow_unicode=True, width=100)
    return (header + body).encode()


@dataclass(frozen=True)
class Skipped:
    """An entry not generated for a release, and why (missing packages, a bad spec)."""

    family: str
    entry: str
    release: str
    reason: str
    location: str


@dataclass(frozen=True)
class CatalogPlan:
    """What the catalog builds (generated specs) and what it skipped, with reasons."""

    images: tuple[GeneratedImage, ...]
    skipped: tuple[Skipped, ...]

    def count_images(self) -> int:
        """Images = specs x variants (runtime and -dev)."""
        return 2 * len(self.images)


PackageExists = Callable[[str], bool]


def plan_catalog(
    families: Iterable[LoadedFamily],
    exists: Mapping[str, PackageExists] | None = None,
    *,
    network_tests: bool = True,
    only_family: str | None = None,
) -> CatalogPlan:
    """Generate every entry for every release it names; skip (with the reason) an entry
    whose packages a release lacks, according to ``exists[release]`` (``None``: assume
    all exist). A spec that does not validate is skipped with its error, not fatal."""
    families = list(families)
    images: list[GeneratedImage] = []
    skipped: list[Skipped] = []
    for loaded in families:
        if only_family is not None and loaded.family.family != only_family:
            continue
        for entry in loaded.family.entries:
            where = loaded.entry_location(entry.name)
            for release in entry.releases:
                override = entry.override_for(release)
                wanted = (*(override.packages or entry.packages), *DEV_PACKAGES[release])
                check = exists.get(release) if exists is not None else None
                missing = [p for p in _dedupe(wanted) if check is not None and not check(p)]
                if missing:
                    skipped.append(
                        Skipped(
                            loaded.family.family,
                            entry.name,
                            release,
                            f"entry {entry.name!r}: {release} ({CODENAMES[release]}) has no "
                            f"package {', '.join(missing)}",
                            str(where),
                        )
                    )
                    continue
                try:
                    images.append(generate(loaded, entry, release, network_tests=network_tests))
                except FamilyError as exc:
                    skipped.append(
                        Skipped(loaded.family.family, entry.name, release, exc.message, str(where))
                    )
    if only_family is not None and not images and not skipped:
        known = ", ".join(sorted(f.family.family for f in families))
        raise InputError(f"no family called {only_family!r} (the catalog has {known})")
    return CatalogPlan(tuple(images), tuple(skipped))
