"""The inputs of image assembly, as kiln's own frozen values.

The lead maps an image spec plus a lock (and the .deb reader's members) onto these, so
assembly depends on neither the spec model nor the reader. One ``AssemblyInput`` is one
architecture of one variant of one image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from kiln.errors import InputError

EntryKind = Literal["file", "dir", "symlink", "hardlink"]
Variant = Literal["runtime", "dev"]
Content = bytes | Callable[[], bytes]
"""File content: the bytes themselves, or a callable that re-reads them (e.g. from the cache)."""

#: The user every runtime variant runs as (distroless/Chainguard convention).
NONROOT_UID = 65532
NONROOT_GID = 65532

# Debian architecture -> OCI platform (architecture, variant).
OCI_PLATFORMS: dict[str, tuple[str, str | None]] = {
    "amd64": ("amd64", None),
    "arm64": ("arm64", "v8"),
    "armhf": ("arm", "v7"),
    "i386": ("386", None),
    "ppc64el": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
}


def read_content(content: Content | None) -> bytes:
    """The bytes of a content reference (empty for none)."""
    if content is None:
        return b""
    if isinstance(content, bytes):
        return content
    return content()


@dataclass(frozen=True)
class DataMember:
    """One member of a package's ``data.tar``, as the safe .deb reader reports it.

    ``kind`` is a plain string on purpose: assembly re-checks it and refuses anything but
    file, dir, symlink and hardlink (device nodes, fifos) with a message naming the package.
    """

    path: str  # as in the archive: "./usr/bin/x", "usr/bin/x" or "./usr/lib/"
    kind: str
    mode: int  # permission bits including setuid/setgid/sticky (0o7777)
    uid: int = 0
    gid: int = 0
    size: int = 0
    content: Content | None = None
    link_target: str | None = None  # symlink target as written, or hardlink's member name


@dataclass(frozen=True)
class PackageInput:
    """One locked, verified package: its control stanza, md5sums and data members."""

    name: str
    version: str
    architecture: str
    control: str  # the control file text (deb822 stanza) from control.tar
    members: tuple[DataMember, ...]
    md5sums: bytes = b""  # control.tar's md5sums, verbatim
    conffiles: tuple[str, ...] = ()  # absolute paths from control.tar's conffiles
    replaces: str = ""  # the Replaces field (also read from ``control`` when empty)
    multi_arch: str = "no"
    #: control.tar members dpkg keeps in ``info/`` (maintainer scripts, triggers, shlibs, ...)
    control_files: tuple[tuple[str, bytes], ...] = ()

    @property
    def dpkg_name(self) -> str:
        """The name dpkg knows it by (``libc6:amd64`` for Multi-Arch: same): its ``info/``
        files and ``dpkg --configure`` argument."""
        return f"{self.name}:{self.architecture}" if self.multi_arch == "same" else self.name


@dataclass(frozen=True)
class Diversion:
    """A ``dpkg-divert`` a maintainer script would have made (they never run here)."""

    path: str  # the diverted path, e.g. /usr/bin/foo
    divert_to: str  # where other packages' copies go, e.g. /usr/bin/foo.distrib
    package: str  # the package that owns ``path`` after the diversion


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str = "/nonexistent"
    shell: str = "/sbin/nologin"
    gecos: str = ""


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class PathSpec:
    """A path the spec asks for: a directory, a symlink or a file, with mode and owner."""

    path: str
    kind: Literal["dir", "symlink", "file"]
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    target: str | None = None  # symlinks
    content: bytes = b""  # files
    replace: bool = False  # may replace a path a package ships


@dataclass(frozen=True)
class Probe:
    """A TCP client ``kiln test`` runs against a service test once it listens.

    It connects to ``port`` on the sandbox's own loopback, sends ``send`` and reads the
    answer until the regular expression ``expect`` is found in it (or the peer closes).
    """

    port: int
    expect: str
    send: str = ""

    def to_json(self) -> dict[str, object]:
        return {"port": self.port, "send": self.send, "expect": self.expect}

    @classmethod
    def from_json(cls, data: object, where: str) -> Probe:
        if not isinstance(data, dict):
            raise InputError(f"{where}: malformed test: probe must be an object")
        port, send, expect = data.get("port"), data.get("send", ""), data.get("expect")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise InputError(f"{where}: malformed test: probe port {port!r} is not 1-65535")
        if not isinstance(send, str) or not isinstance(expect, str) or not expect:
            raise InputError(f"{where}: malformed test: probe send/expect must be text")
        return cls(port=port, expect=expect, send=send)


@dataclass(frozen=True)
class ImageTest:
    """A test run inside the image by ``kiln test`` (stored in the image at build time).

    With a ``probe``, ``command`` is a service: it is started, probed over loopback and
    stopped; the probe's answer decides the test.
    """

    name: str
    command: tuple[str, ...]
    exit_code: int = 0
    stdout_pattern: str | None = None  # a regular expression searched in stdout
    stderr_pattern: str | None = None  # a regular expression searched in stderr
    timeout: float = 60.0
    network: bool = False
    user: str | None = None  # "uid:gid"; default: the image's user
    env: tuple[tuple[str, str], ...] = ()
    probe: Probe | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "name": self.name,
            "command": list(self.command),
            "exit_code": self.exit_code,
            "stdout_pattern": self.stdout_pattern,
            "stderr_pattern": self.stderr_pattern,
            "timeout": self.timeout,
            "network": self.network,
            "user": self.user,
            "env": dict(self.env),
        }
        if self.probe is not None:  # only then: images without service tests keep their bytes
            data["probe"] = self.probe.to_json()
        return data

    @classmethod
    def from_json(cls, data: object, where: str) -> ImageTest:
        """Parse a test stored in an image; raise ``InputError`` naming ``where``."""
        if not isinstance(data, dict):
            raise InputError(f"{where}: a test must be an object, not {type(data).__name__}")
        command = data.get("command")
        env = data.get("env") or {}
        if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise InputError(f"{where}: malformed test: command must be a list of strings")
        if not command:
            raise InputError(f"{where}: malformed test: command is empty")
        if not isinstance(env, dict):
            raise InputError(f"{where}: malformed test: env must be an object")
        try:
            pattern = data.get("stdout_pattern")
            err_pattern = data.get("stderr_pattern")
            user = data.get("user")
            probe = data.get("probe")
            return cls(
                name=str(data["name"]),
                command=tuple(command),
                exit_code=int(data.get("exit_code", 0)),
                stdout_pattern=None if pattern is None else str(pattern),
                stderr_pattern=None if err_pattern is None else str(err_pattern),
                timeout=float(data.get("timeout", 60.0)),
                network=bool(data.get("network", False)),
                user=None if user is None else str(user),
                env=tuple(sorted((str(k), str(v)) for k, v in env.items())),
                probe=None if probe is None else Probe.from_json(probe, where),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: malformed test: {exc}") from exc


@dataclass(frozen=True)
class WheelInstall:
    """A wheel shipped inside the image (by a package) to install at assembly time."""

    wheel: str  # absolute glob of the .whl inside the image; must match exactly one file
    interpreter: str  # shebang of the generated console scripts; must exist in the image
    prefix: str = "/usr/local"


@dataclass(frozen=True)
class NpmPackageInput:
    """A locked, verified npm registry tarball, installed globally under /usr/local.

    ``members`` are relative to the package's directory (the tarball's ``package/``
    prefix stripped), as ``kiln.upstream.read_npm_tarball`` reads them.
    """

    name: str
    version: str
    integrity: str  # the lock's sha512 Subresource Integrity value
    members: tuple[DataMember, ...]


@dataclass(frozen=True)
class AptSource:
    """One deb822 stanza of the apt sources a -dev image carries (sources.list(5))."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...] = ("main",)


@dataclass(frozen=True)
class ImageFacts:
    """What kiln records about the build in /usr/lib/kiln/image.json."""

    name: str
    version: str = ""
    lock_digest: str = ""
    description: str = ""


@dataclass(frozen=True)
class AssemblyInput:
    """Everything needed to assemble one architecture of one image variant."""

    facts: ImageFacts
    arch: str  # Debian architecture: amd64, arm64
    variant: Variant
    packages: tuple[PackageInput, ...]
    source_date_epoch: int
    users: tuple[User, ...] = ()
    groups: tuple[Group, ...] = ()
    paths: tuple[PathSpec, ...] = ()
    diversions: tuple[Diversion, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    workdir: str = ""
    user: str | None = None  # default: 65532:65532 for runtime, 0:0 for dev
    labels: tuple[tuple[str, str], ...] = ()
    exposed_ports: tuple[str, ...] = ()  # "8080/tcp": the config's ExposedPorts
    stop_signal: str | None = None  # "SIGQUIT": the config's StopSignal
    tests: tuple[ImageTest, ...] = ()
    #: Paths exempt from the runtime check for shells and package managers (explicit opt-out).
    allow_paths: tuple[str, ...] = field(default=())
    #: Wheels to install from the image's own files (e.g. Debian's pip wheel).
    wheels: tuple[WheelInstall, ...] = ()
    #: dpkg path-exclude globs: matching files are dropped (and kept out by dpkg.cfg.d).
    path_excludes: tuple[str, ...] = ()
    #: The Debian archive apt reads in images that carry apt and the archive keyring.
    apt_sources: tuple[AptSource, ...] = ()
    #: npm registry packages installed into /usr/local/lib/node_modules (+ bin links).
    npm: tuple[NpmPackageInput, ...] = ()

    @property
    def run_as(self) -> str:
        if self.user is not None:
            return self.user
        return f"{NONROOT_UID}:{NONROOT_GID}" if self.variant == "runtime" else "0:0"
