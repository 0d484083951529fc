"""The image spec: what an image contains and how it runs (``images/<name>.yaml``).

Frozen pydantic models with ``extra="forbid"``: a spec is a trust boundary, and a
misspelt field must fail loudly rather than be ignored. ``kiln schema`` prints the
JSON Schema generated from these models.

Every field that reaches a file kiln writes (``/etc/passwd``, ``/etc/group``,
``/etc/shadow``, the image config's env, working directory and annotations, the layer's
paths) is checked here, where an error still has a file position: a newline or ``:`` in
a login shell would add a passwd line (an account injection), a NUL cannot be passed to
execve, a path below one of the spec's own symlinks would be written through it.
"""

from __future__ import annotations

import posixpath
import re
import signal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_IMAGE_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
# useradd(8)'s default NAME_REGEX, at most 32 characters (the utmp limit)
_ACCOUNT_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_NUMERIC_ID = re.compile(r"^[0-9]{1,10}$")
# C0 and C1 controls, DEL and the Unicode line/paragraph separators
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_ID = 2**31 - 1
#: Accounts every image has (assembly writes them); a spec's accounts must not clash.
BUILTIN_USERS = {"root": 0, "nobody": 65534, "nonroot": 65532}
BUILTIN_GROUPS = {"root": 0, "nogroup": 65534, "nonroot": 65532}
Arch = Literal["amd64", "arm64"]
SUPPORTED_ARCHS: tuple[Arch, ...] = ("amd64", "arm64")
NONROOT_UID = 65532


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _no_controls(value: str, what: str) -> str:
    bad = _CONTROL.search(value)
    if bad:
        raise ValueError(
            f"{what} {value!r} contains the control character U+{ord(bad.group()):04X}"
        )
    return value


def _no_nul(value: str, what: str) -> str:
    if "\x00" in value:
        raise ValueError(f"{what} {value!r} contains a NUL character")
    return value


def _clean_path(value: str, what: str) -> str:
    """An absolute, normalised path: ``/etc/foo``, not ``etc/foo``, ``/etc//foo/`` or ``..``."""
    _no_controls(value, what)
    if not value.startswith("/"):
        raise ValueError(f"{what} {value!r} must be absolute")
    if ".." in value.split("/"):
        raise ValueError(f"{what} {value!r} must not contain '..'")
    normal = posixpath.normpath(value)
    if value != normal or value.startswith("//"):
        raise ValueError(f"{what} {value!r} is not normalised (write {'/' + normal.lstrip('/')!r})")
    return value


def _account_path(value: str, what: str) -> str:
    """A home or shell as passwd(5) holds it: a clean path with no ':' or whitespace."""
    _clean_path(value, what)
    if ":" in value or any(c.isspace() for c in value):
        raise ValueError(f"{what} {value!r} must not contain ':' or whitespace (passwd fields)")
    return value


def _account_name(value: str) -> str:
    if not _ACCOUNT_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid account name (lowercase letters, digits, _ and -, "
            "starting with a letter or _, at most 32 characters)"
        )
    return value


def _user_ref(value: str) -> str:
    """A user to run as: an account name or a numeric uid."""
    if _NUMERIC_ID.match(value):
        if int(value) > MAX_ID:
            raise ValueError(f"uid {value} is larger than {MAX_ID}")
        return value
    return _account_name(value)


def _env_name(name: str) -> str:
    if not name:
        raise ValueError("an environment variable name must not be empty")
    if "=" in name:
        raise ValueError(f"environment variable name {name!r} must not contain '='")
    return _no_controls(name, "environment variable name")


def _annotation_key(key: str) -> str:
    if not key or any(c.isspace() for c in key):
        raise ValueError(f"annotation key {key!r} must be non-empty, without whitespace")
    return _no_controls(key, "annotation key")


_PORT = re.compile(r"^(?P<number>[0-9]{1,5})(?:/(?P<proto>tcp|udp|sctp))?$")
# signal names as the container runtime (Linux, signal(7)) knows them
_SIGNALS = frozenset(s.name for s in signal.Signals)


def _port(value: str) -> str:
    found = _PORT.match(value)
    if found is None or not 1 <= int(found["number"]) <= 65535:
        raise ValueError(f"{value!r} is not a port: PORT[/tcp|udp|sctp], PORT 1-65535")
    return f"{int(found['number'])}/{found['proto'] or 'tcp'}"


def _stop_signal(value: str) -> str:
    name = "SIG" + value.upper().removeprefix("SIG")
    if name not in _SIGNALS or name.startswith(("SIG_", "SIGRT")):
        raise ValueError(f"{value!r} is not a signal name (e.g. SIGTERM, SIGQUIT)")
    return name


AccountName = Annotated[str, AfterValidator(_account_name)]
#: A port the image's server listens on, as the config's ExposedPorts key (``8080/tcp``).
Port = Annotated[str, AfterValidator(_port)]
#: The signal that stops the image's process gracefully (the config's StopSignal).
StopSignal = Annotated[str, AfterValidator(_stop_signal)]
UserRef = Annotated[str, AfterValidator(_user_ref)]
#: An argument of a command (execve(2) cannot pass a NUL).
Arg = Annotated[str, AfterValidator(lambda v: _no_nul(v, "argument"))]
EnvName = Annotated[str, Field(max_length=1024), AfterValidator(_env_name)]
EnvValue = Annotated[str, AfterValidator(lambda v: _no_nul(v, "environment value"))]
AnnotationKey = Annotated[str, Field(max_length=1024), AfterValidator(_annotation_key)]
AnnotationValue = Annotated[str, AfterValidator(lambda v: _no_nul(v, "annotation value"))]
Id = Annotated[int, Field(ge=0, le=MAX_ID)]


def _ancestors(path: str) -> list[str]:
    """``/a`` and ``/a/b`` for ``/a/b/c`` (a normalised absolute path)."""
    parts = path.split("/")[1:]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


_Loc = tuple[str | int, ...]


def _unique_accounts(
    accounts: list[tuple[str, int]], builtin: dict[str, int], where: _Loc, id_field: str
) -> None:
    names = dict(builtin)
    ids = {ident: name for name, ident in builtin.items()}
    for index, (name, ident) in enumerate(accounts):
        if name in names:
            raise _fail_at(
                (*where, index, "name"),
                f"{name!r} is already an account ({id_field} {names[name]})",
                name,
            )
        if ident in ids:
            raise _fail_at(
                (*where, index, id_field), f"{id_field} {ident} is already {ids[ident]!r}'s", ident
            )
        names[name] = ident
        ids[ident] = name


def _path_table(paths: tuple[PathSpec, ...], where: _Loc) -> dict[str, tuple[_Loc, PathSpec]]:
    """The paths of one list by path, refusing one listed twice."""
    table: dict[str, tuple[_Loc, PathSpec]] = {}
    for index, spec in enumerate(paths):
        loc = (*where, index, "path")
        if spec.path in table:
            raise _fail_at(loc, f"path {spec.path} is listed more than once", spec.path)
        table[spec.path] = (loc, spec)
    return table


def _check_below(table: dict[str, tuple[_Loc, PathSpec]]) -> None:
    """Refuse a path below another that the spec makes a symlink or a file."""
    for path, (loc, _) in table.items():
        for parent in _ancestors(path):
            above = table.get(parent)
            if above is not None and above[1].type != "directory":
                raise _fail_at(
                    loc,
                    f"path {path} lies below {parent}, which the spec makes a {above[1].type}: "
                    "it would be written through it",
                    path,
                )


def _fail_at(loc: _Loc, message: str, value: object) -> ValidationError:
    """A validation error at ``loc`` (so yamldoc shows that field's line), from a model check."""
    error = PydanticCustomError("spec", "{reason}", {"reason": message})
    return ValidationError.from_exception_data(
        "ImageSpec", [InitErrorDetails(type=error, loc=loc, input=value)]
    )


def _valid_package_name(name: str) -> str:
    if not _PACKAGE_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid Debian package name (Debian Policy §5.6.7)")
    return name


def _check_package_names(names: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"listed more than once: {', '.join(dupes)}")
    return names


PackageName = Annotated[str, Field(max_length=128), AfterValidator(_valid_package_name)]


def _valid_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from exc
    return value


#: A regular expression, checked to compile when the document is read.
Regex = Annotated[str, AfterValidator(_valid_regex)]

# npm package names (https://docs.npmjs.com/cli/v10/configuring-npm/package-json#name) and
# exact semver versions: a spec pins what the lock records with the registry's integrity.
_NPM_NAME = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


def split_npm_ref(ref: str) -> tuple[str, str]:
    """``name@version`` (``@scope/name@version`` too) -> (name, version)."""
    name, at, version = ref.rpartition("@")
    if not at or not name:
        raise ValueError(f"{ref!r} is not name@version (e.g. npm@10.9.2)")
    return name, version


def _valid_npm_ref(ref: str) -> str:
    name, version = split_npm_ref(ref)
    if len(name) > 214 or not _NPM_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid npm package name")
    if not _SEMVER.match(version):
        raise ValueError(f"{ref!r}: {version!r} is not an exact version (like 10.9.2)")
    return ref


def _check_npm_refs(refs: tuple[str, ...]) -> tuple[str, ...]:
    names = [split_npm_ref(r)[0] for r in refs]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"npm package listed more than once: {', '.join(dupes)}")
    return refs


NpmRef = Annotated[str, Field(max_length=256), AfterValidator(_valid_npm_ref)]
Mode = Annotated[int, Field(ge=0, le=0o7777)]


def _parse_mode(value: object) -> object:
    """Modes are written as octal strings ("0755") or YAML ints read as octal digits."""
    if isinstance(value, str):
        if not re.fullmatch(r"0?[0-7]{3,4}", value):
            raise ValueError(f"mode {value!r} is not an octal mode like '0755'")
        return int(value, 8)
    return value


class User(_Frozen):
    """A user account written to ``/etc/passwd`` (no password: accounts are locked)."""

    name: AccountName
    uid: Id
    gid: Id | None = Field(default=None, description="defaults to uid")
    home: str | None = Field(default=None, description="defaults to /home/<name>")
    shell: str = "/usr/sbin/nologin"

    @field_validator("home")
    @classmethod
    def _home(cls, value: str | None) -> str | None:
        return None if value is None else _account_path(value, "home")

    @field_validator("shell")
    @classmethod
    def _shell(cls, value: str) -> str:
        return _account_path(value, "shell")


class Group(_Frozen):
    """A group written to ``/etc/group``."""

    name: AccountName
    gid: Id
    members: tuple[AccountName, ...] = ()

    @field_validator("members")
    @classmethod
    def _members(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            dupes = sorted({m for m in value if value.count(m) > 1})
            raise ValueError(f"member listed more than once: {', '.join(dupes)}")
        return value


class Accounts(_Frozen):
    """Accounts beyond ``root`` and ``nonroot`` (65532), and whom the image runs as."""

    users: tuple[User, ...] = ()
    groups: tuple[Group, ...] = ()
    run_as: UserRef = Field(default="nonroot", alias="run-as")


class PathSpec(_Frozen):
    """A directory, symlink or small file that a maintainer script would have made."""

    path: str = Field(description="absolute and normalised, e.g. /etc/foo (not /etc//foo/)")
    type: Literal["directory", "symlink", "file"]
    target: str | None = Field(default=None, description="symlink target")
    content: str | None = Field(default=None, description="file content (UTF-8)")
    mode: Mode | None = None
    uid: Id = 0
    gid: Id = 0
    replace: bool = Field(
        default=False,
        description="replace a file a package ships (e.g. a conffile such as nginx.conf)",
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: object) -> object:
        return _parse_mode(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        _clean_path(value, "path")
        if value == "/":
            raise ValueError("path '/' is the image root, which cannot be replaced")
        return value

    @field_validator("target")
    @classmethod
    def _target(cls, value: str | None) -> str | None:
        return None if value is None else _no_controls(value, "symlink target")

    @model_validator(mode="after")
    def _shape(self) -> PathSpec:
        if self.type == "symlink" and not self.target:
            raise ValueError(f"symlink {self.path} needs a target")
        if self.type != "symlink" and self.target is not None:
            raise ValueError(f"only symlinks take a target ({self.path} is a {self.type})")
        if self.type != "file" and self.content is not None:
            raise ValueError(f"only files take content ({self.path} is a {self.type})")
        return self


def _absolute_path(value: str, what: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{what} {value!r} must be absolute")
    if any(part == ".." for part in value.split("/")):
        raise ValueError(f"{what} {value!r} must not contain '..'")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"{what} {value!r} must not contain whitespace or control characters")
    return value


def _valid_path_exclude(pattern: str) -> str:
    """A dpkg ``path-exclude`` glob (dpkg(1)): absolute, below a fixed top-level directory."""
    _absolute_path(pattern, "path-exclude pattern")
    top = pattern.lstrip("/").split("/", 1)[0]
    if not top or any(c in top for c in "*?[]\\"):
        raise ValueError(
            f"path-exclude pattern {pattern!r} must start with a fixed directory (like /usr/)"
        )
    return pattern


PathExclude = Annotated[str, Field(max_length=512), AfterValidator(_valid_path_exclude)]


class Wheel(_Frozen):
    """A Python wheel that an image package ships, installed into the image at assembly.

    What ``pip install <wheel>`` would do, without running anything in the image: the
    wheel's files go to ``<prefix>/lib/python<X.Y>/site-packages`` (X.Y from the
    interpreter's name), its console scripts to ``<prefix>/bin`` with ``interpreter`` as
    their shebang. Wheel format: https://packaging.python.org/en/latest/specifications/binary-distribution-format/
    """

    wheel: str = Field(
        description="absolute path (a glob) of the .whl in the image, matching exactly one file"
    )
    interpreter: str = Field(
        description="the Python the console scripts run with (their shebang), e.g. "
        "/usr/local/bin/python3.13; must exist in the image"
    )
    prefix: str = Field(default="/usr/local", description="installation prefix")

    @field_validator("wheel")
    @classmethod
    def _wheel(cls, value: str) -> str:
        _absolute_path(value, "wheel")
        if not value.endswith(".whl"):
            raise ValueError(f"wheel {value!r} must name a .whl file")
        return value

    @field_validator("interpreter", "prefix")
    @classmethod
    def _paths(cls, value: str) -> str:
        if any(c in value for c in "*?["):
            raise ValueError(f"{value!r} must be a plain path, not a glob")
        return _absolute_path(value, "path")


class Probe(_Frozen):
    """How ``kiln test`` talks to a test's command run as a service (TCP on loopback)."""

    port: int = Field(ge=1, le=65535, description="TCP port the service listens on (127.0.0.1)")
    send: str = Field(default="", description="text sent once connected (e.g. an HTTP request)")
    expect: Regex = Field(min_length=1, description="regular expression the answer must match")


class ImageTest(_Frozen):
    """A command run inside the built image; it passes on the expected exit and output.

    With a ``probe``, the command is a service (a server in the foreground): kiln starts
    it, connects to the probe's port on the sandbox's own loopback, sends and checks the
    answer, then stops it. The answer decides the test; the exit code is not checked.
    """

    name: str = Field(min_length=1)
    command: tuple[Arg, ...] = Field(min_length=1, description="argv, no shell")
    exit_code: int = Field(default=0, alias="exit-code")
    stdout: Regex | None = Field(default=None, description="regular expression stdout must match")
    stderr: Regex | None = Field(default=None, description="regular expression stderr must match")
    timeout: float = Field(default=60.0, gt=0, le=3600)
    network: bool = Field(default=False, description="give the test loopback networking")
    user: UserRef | None = Field(default=None, description="defaults to the image's user")
    variants: tuple[Literal["runtime", "dev"], ...] = ("runtime", "dev")
    archs: tuple[Arch, ...] = Field(
        default=(), description="only these architectures' images carry the test (default: all)"
    )
    probe: Probe | None = None

    @model_validator(mode="after")
    def _service(self) -> ImageTest:
        if self.probe is not None and self.exit_code != 0:
            raise ValueError(
                f"test {self.name!r}: a service test (probe) is judged by its answer; "
                "exit-code does not apply"
            )
        return self

    @field_validator("command", mode="before")
    @classmethod
    def _argv(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError(  # noqa: TRY004 (pydantic reports ValueError as a field error)
                "command must be a list of arguments (tests run without a shell)"
            )
        return value


class Variant(_Frozen):
    """What a variant adds to or changes from the runtime image."""

    packages: tuple[PackageName, ...] = ()
    exclude: tuple[PackageName, ...] = ()
    run_as: UserRef | None = Field(default=None, alias="run-as")
    entrypoint: tuple[Arg, ...] | None = None
    cmd: tuple[Arg, ...] | None = None
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    ports: tuple[Port, ...] | None = Field(default=None, description="replaces the spec's ports")
    stop_signal: StopSignal | None = Field(
        default=None, alias="stop-signal", description="replaces the spec's stop-signal"
    )
    paths: tuple[PathSpec, ...] = ()
    npm: tuple[NpmRef, ...] = Field(
        default=(),
        description="npm registry packages (name@version) installed under /usr/local",
    )
    wheels: tuple[Wheel, ...] = Field(default=(), description="added to the spec's wheels")
    path_exclude: tuple[PathExclude, ...] = Field(
        default=(), alias="path-exclude", description="added to the spec's path-exclude"
    )
    base_packages: tuple[PackageName, ...] | None = Field(
        default=None,
        alias="base-packages",
        description="with layering: shared, this variant's base layer (default: the spec's)",
    )

    _names = field_validator("packages", "exclude")(_check_package_names)
    _npm = field_validator("npm")(_check_npm_refs)

    @field_validator("base_packages")
    @classmethod
    def _base(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else _check_package_names(value)


class Compatibility(_Frozen):
    """How the image stands in for the official images users build on today.

    ``kiln migrate`` rewrites a Dockerfile's ``FROM`` lines using ``replaces``; ``notes``
    say what differs from those images (user, shell, paths, ports) and are printed by
    ``kiln spec notes`` and listed in the README.
    """

    replaces: tuple[str, ...] = Field(
        default=(),
        description=(
            "official image references this image replaces, as repository[:tag-pattern] "
            "(fnmatch pattern, e.g. 'python:3.13*'); a pattern without a tag matches any tag"
        ),
    )
    notes: tuple[str, ...] = Field(default=(), description="what differs from those images")

    @field_validator("replaces")
    @classmethod
    def _refs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ref in value:
            if not ref or any(c.isspace() for c in ref) or "@" in ref:
                raise ValueError(f"{ref!r} is not a repository[:tag-pattern] reference")
        return value


class ImageSpec(_Frozen):
    """One catalog image: the packages, accounts, paths and runtime settings it has."""

    name: str
    description: str = ""
    distro: Literal["debian-13", "debian-12"] = "debian-13"
    version_package: str | None = Field(
        default=None,
        alias="version-package",
        description="package whose upstream version tags the image (e.g. python3.13-minimal)",
    )
    packages: tuple[PackageName, ...] = Field(min_length=1)
    exclude: tuple[PackageName, ...] = ()
    accounts: Accounts = Accounts()
    entrypoint: tuple[Arg, ...] = ()
    cmd: tuple[Arg, ...] = ()
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    ports: tuple[Port, ...] = Field(
        default=(), description="ports the server listens on (PORT[/tcp|udp|sctp]): ExposedPorts"
    )
    stop_signal: StopSignal | None = Field(
        default=None,
        alias="stop-signal",
        description="signal that stops the process gracefully (e.g. SIGQUIT for nginx)",
    )
    workdir: str = Field(default="/", description="absolute and normalised")
    paths: tuple[PathSpec, ...] = ()
    variants: dict[Literal["dev"], Variant] = Field(default_factory=dict)
    archs: tuple[Arch, ...] = Field(default=SUPPORTED_ARCHS, min_length=1)
    tests: tuple[ImageTest, ...] = ()
    annotations: dict[AnnotationKey, AnnotationValue] = Field(default_factory=dict)
    layering: Literal["single", "shared"] = Field(
        default="single",
        description=(
            "single: one layer; shared: a base layer holding the files of base-packages "
            "(byte-identical across images locked to the same versions of them) and a "
            "layer with the rest"
        ),
    )
    base_packages: tuple[PackageName, ...] = Field(
        default=(),
        alias="base-packages",
        description="the packages of the shared base layer (layering: shared)",
    )
    shell: str | None = Field(
        default=None,
        min_length=10,
        max_length=300,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description=(
            "why the runtime variant keeps a shell: its program is a shell script (erl and "
            "elixir start through /bin/sh, R through /bin/bash). /bin/sh, dash and bash "
            "are let through the no-shell rule when the spec lists their packages; package "
            "managers still fail the build. The reason goes into the image's annotations"
        ),
    )
    compatibility: Compatibility = Compatibility()
    repositories: tuple[Literal["kiln"], ...] = Field(
        default=(),
        description=(
            "also resolve against kiln's own signed repository ($KILN_REPO): a package kiln "
            "rebuilt is chosen when it is not older than Debian's newest"
        ),
    )
    npm: tuple[NpmRef, ...] = Field(
        default=(),
        description=(
            "npm registry packages (name@version, e.g. npm@10.9.2) installed into "
            "/usr/local/lib/node_modules with /usr/local/bin links; locked with the "
            "registry's sha512 integrity"
        ),
    )
    wheels: tuple[Wheel, ...] = Field(
        default=(),
        description="Python wheels shipped by the image's packages, installed at assembly "
        "(e.g. pip from Debian's python3-pip-whl into /usr/local)",
    )
    path_exclude: tuple[PathExclude, ...] = Field(
        default=(),
        alias="path-exclude",
        description="dpkg path-exclude globs (dpkg(1) --path-exclude): the matching files "
        "are left out of the image and, where dpkg is installed, a dpkg.cfg.d file keeps "
        "later apt-get installs from bringing them back",
    )

    _names = field_validator("packages", "exclude", "base_packages")(_check_package_names)
    _npm = field_validator("npm")(_check_npm_refs)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _IMAGE_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid image name (lowercase, digits, . _ -)")
        return value

    @field_validator("archs")
    @classmethod
    def _archs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("an architecture is listed more than once")
        return value

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, value: str) -> str:
        return _clean_path(value, "workdir")

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        return _no_nul(value, "description")

    @model_validator(mode="after")
    def _consistent(self) -> ImageSpec:
        self._check_accounts()
        self._check_paths()
        known_users = {"root", "nonroot"} | {u.name for u in self.accounts.users}
        run_as: list[tuple[_Loc, str]] = [(("accounts", "run-as"), self.accounts.run_as)]
        run_as += [
            (("variants", k, "run-as"), v.run_as) for k, v in self.variants.items() if v.run_as
        ]
        run_as += [(("tests", i, "user"), t.user) for i, t in enumerate(self.tests) if t.user]
        for loc, user in run_as:
            if user not in known_users and not _NUMERIC_ID.match(user):
                raise _fail_at(loc, f"user {user!r} is not defined in accounts.users", user)
        both = set(self.packages) & set(self.exclude)
        if both:
            raise ValueError(f"packages both listed and excluded: {', '.join(sorted(both))}")
        if self.version_package and self.version_package not in self.packages:
            raise ValueError(f"version-package {self.version_package!r} is not in packages")
        self._check_layering()
        return self

    def _check_layering(self) -> None:
        """base-packages only with layering: shared, and shared layering needs them."""
        overlays = [k for k, v in self.variants.items() if v.base_packages is not None]
        if self.layering == "single":
            if self.base_packages:
                raise _fail_at(("base-packages",), "base-packages needs layering: shared", "")
            if overlays:
                raise _fail_at(
                    ("variants", overlays[0], "base-packages"),
                    "base-packages needs layering: shared",
                    "",
                )
        elif not self.base_packages:
            raise _fail_at(("layering",), "layering: shared needs base-packages", "shared")

    def base_packages_for(self, variant: str) -> frozenset[str]:
        """The packages of a variant's shared base layer (empty: one layer)."""
        if self.layering == "single":
            return frozenset()
        overlay = self.variant(variant).base_packages
        return frozenset(self.base_packages if overlay is None else overlay)

    def _check_accounts(self) -> None:
        """No two accounts with one name or id, none clashing with root, nobody, nonroot."""
        users = [(u.name, u.uid) for u in self.accounts.users]
        groups = [(g.name, g.gid) for g in self.accounts.groups]
        _unique_accounts(users, BUILTIN_USERS, ("accounts", "users"), "uid")
        _unique_accounts(groups, BUILTIN_GROUPS, ("accounts", "groups"), "gid")

    def _check_paths(self) -> None:
        """Each variant's paths: no duplicates, none below a symlink or file of the spec.

        A variant's path replaces the runtime's path of the same name (an overlay); a
        path below a symlink the spec makes would be written through that link.
        """
        runtime = _path_table(self.paths, ("paths",))
        _check_below(runtime)
        for key, variant in self.variants.items():
            _check_below({**runtime, **_path_table(variant.paths, ("variants", key, "paths"))})

    def variant_names(self) -> tuple[str, ...]:
        """The variants this spec builds: always ``runtime``, plus the declared ones."""
        return ("runtime", *sorted(self.variants))

    def label(self, variant: str) -> str:
        """What a variant's image and layout are called: ``python``, ``python-dev``."""
        return self.name if variant == "runtime" else f"{self.name}-{variant}"

    def variant(self, name: str) -> Variant:
        """The overlay for a variant; ``runtime`` is the spec itself (an empty overlay)."""
        for key, value in self.variants.items():
            if key == name:
                return value
        if name == "runtime":
            return Variant()
        raise KeyError(name)

    def packages_for(self, variant: str) -> tuple[str, ...]:
        """Requested packages of a variant: the runtime's plus the variant's own."""
        return tuple(dict.fromkeys((*self.packages, *self.variant(variant).packages)))

    def npm_for(self, variant: str) -> tuple[tuple[str, str], ...]:
        """A variant's npm packages as (name, version): the runtime's, then the variant's.

        A variant naming a package the runtime also names replaces its version.
        """
        refs = dict(split_npm_ref(r) for r in self.npm)
        if variant != "runtime":
            refs.update(split_npm_ref(r) for r in self.variant(variant).npm)
        return tuple(sorted(refs.items()))

    def wheels_for(self, variant: str) -> tuple[Wheel, ...]:
        """A variant's wheels: the runtime's, then the variant's own."""
        if variant == "runtime":
            return self.wheels
        return (*self.wheels, *self.variant(variant).wheels)

    def path_exclude_for(self, variant: str) -> tuple[str, ...]:
        """A variant's dpkg path-exclude globs: the runtime's, then the variant's own."""
        if variant == "runtime":
            return self.path_exclude
        return tuple(dict.fromkeys((*self.path_exclude, *self.variant(variant).path_exclude)))

    def exclude_for(self, variant: str) -> tuple[str, ...]:
        """Exclusions of a variant.

        Other variants do not inherit the runtime's: ``-dev`` keeps a complete, consistent
        dpkg database so that ``apt-get install`` works on top of it.
        """
        if variant == "runtime":
            return self.exclude
        return tuple(sorted(self.variant(variant).exclude))
