"""The source recipe: which Debian source package kiln rebuilds, and how (``recipes/*.yaml``).

A recipe names a Debian source package and the exact version to start from, the patches
kiln adds (each with a DEP-3 header, https://dep-team.pages.debian.net/deps/dep3/), the
build profiles it enables (``nocheck`` only with a justification, see
https://wiki.debian.org/BuildProfileSpec), hardening above Debian's defaults and the
tests run on the built packages. The rebuilt version is ``<debian-version>+kiln<N>``.

Frozen pydantic models with ``extra="forbid"``: a recipe is a trust boundary, and a
misspelt field must fail loudly. ``kiln.recipes.load`` reports errors as file:line:col.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kiln.debian.version import parse_version

_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_BUILD_OPTION = re.compile(r"[a-z][a-z0-9_.+-]*(?:=[A-Za-z0-9_.,+-]+)?")
_PATCH_PATH = re.compile(r"^patches/[A-Za-z0-9._+-]+(?:/[A-Za-z0-9._+-]+)*\.(?:patch|diff)$")
# Build profiles defined by https://wiki.debian.org/BuildProfileSpec#Registered_profile_names
KNOWN_PROFILES = frozenset(
    {"nocheck", "nodoc", "noudeb", "nogir", "noinsttest", "nojava", "noperl", "nopython",
     "noguile", "noocaml", "nowasm", "nowindows", "nogolang", "nolua", "noruby", "nosql",
     "stage1", "stage2", "cross"}
)  # fmt: skip


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Patch(_Frozen):
    """A patch file under ``recipes/patches/`` added on top of Debian's own patches."""

    path: str = Field(description="relative to the recipes directory, e.g. patches/jq/x.patch")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not _PATCH_PATH.match(value) or ".." in value.split("/"):
            raise ValueError(
                f"{value!r} is not a patch path like patches/<package>/<name>.patch "
                "(relative to the recipes directory, no '..')"
            )
        return value


class Profile(_Frozen):
    """A build profile (DEB_BUILD_PROFILES) and why it is enabled."""

    name: str
    justification: str = Field(min_length=10, description="why this profile is needed")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value not in KNOWN_PROFILES and not re.fullmatch(
            r"pkg\.[a-z0-9.+-]+\.[a-z0-9-]+", value
        ):
            raise ValueError(
                f"{value!r} is not a registered build profile "
                "(BuildProfileSpec: nocheck, nodoc, ... or pkg.<source>.<name>)"
            )
        return value


class Hardening(_Frozen):
    """Compiler and linker hardening above Debian's defaults (dpkg-buildflags(1))."""

    fortify_source: Literal[2, 3] = Field(default=3, alias="fortify-source")
    bindnow: bool = Field(default=True, description="-Wl,-z,now (full RELRO)")
    extra_cflags: tuple[str, ...] = Field(default=(), alias="extra-cflags")
    extra_ldflags: tuple[str, ...] = Field(default=(), alias="extra-ldflags")

    @field_validator("extra_cflags", "extra_ldflags")
    @classmethod
    def _flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for flag in value:
            if not re.fullmatch(r"-[A-Za-z][A-Za-z0-9_=,.+-]*", flag):
                raise ValueError(f"{flag!r} is not a single compiler/linker flag")
        return value

    def buildflags_conf(self) -> str:
        """The ``/etc/dpkg/buildflags.conf`` lines (dpkg-buildflags(1) FILE FORMAT)."""
        # _FORTIFY_SOURCE is a preprocessor define: it goes where dpkg puts its own
        # (CPPFLAGS), after it and undefining it first. In CFLAGS it came before
        # CPPFLAGS' -D_FORTIFY_SOURCE=2 on every autoconf compile line ($CC $CFLAGS
        # $CPPFLAGS): each compile warned '"_FORTIFY_SOURCE" redefined', every -Werror
        # configure check answered no (libarchive's visibility check), and level 2 won.
        lines = [
            "# written by kiln: hardening above Debian's defaults",
            f"APPEND CPPFLAGS -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE={self.fortify_source}",
        ]
        for flag in ("CFLAGS", "CXXFLAGS"):
            for extra in self.extra_cflags:
                lines.append(f"APPEND {flag} {extra}")
        if self.bindnow:
            lines.append("APPEND LDFLAGS -Wl,-z,now")
        for extra in self.extra_ldflags:
            lines.append(f"APPEND LDFLAGS {extra}")
        return "\n".join(lines) + "\n"


class RecipeTest(_Frozen):
    """A command run on the built packages (installed into a sandbox with the build root)."""

    name: str = Field(min_length=1)
    run: tuple[str, ...] = Field(min_length=1)
    expect_stdout: str | None = Field(default=None, alias="expect-stdout")


class Recipe(_Frozen):
    """A source recipe (``recipes/<source>.yaml``)."""

    source: Annotated[str, Field(max_length=128)] = Field(description="Debian source package")
    version: str = Field(description="the Debian version to start from (newest in the suites)")
    distro: Literal["debian-13", "debian-12"] = "debian-13"
    revision: int = Field(default=1, ge=1, description="N in <debian-version>+kiln<N>")
    patches: tuple[Patch, ...] = ()
    profiles: tuple[Profile, ...] = ()
    hardening: Hardening = Hardening()
    build_options: tuple[str, ...] = Field(
        default=(),
        alias="build-options",
        description="extra DEB_BUILD_OPTIONS words, e.g. check where a package's own test "
        "suite is opt-in (libarchive's debian/rules runs it only with 'check')",
    )
    tests: tuple[RecipeTest, ...] = ()
    maintainer: str = Field(
        default="kiln <kiln@localhost>", description="author of kiln's changelog entry"
    )
    changes: tuple[str, ...] = Field(
        default=(), description="extra lines for the changelog entry (CVE lines are automatic)"
    )

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not _SOURCE_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid Debian source package name")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        try:
            parse_version(value)
        except (ValueError, Exception) as exc:
            raise ValueError(f"{value!r} is not a Debian version: {exc}") from exc
        if "+kiln" in value:
            raise ValueError(
                f"{value!r} is already a kiln version; give the Debian version to start from"
            )
        return value

    @field_validator("build_options")
    @classmethod
    def _build_options(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for word in value:
            if not _BUILD_OPTION.fullmatch(word):
                raise ValueError(f"{word!r} is not a DEB_BUILD_OPTIONS word (name or name=value)")
            name = word.split("=", 1)[0]
            if name in ("parallel", "nocheck"):
                raise ValueError(
                    f"{word!r}: kiln sets parallel= itself, and nocheck is the nocheck "
                    "profile (with its justification)"
                )
        if len(set(value)) != len(value):
            raise ValueError("a build option is listed more than once")
        return value

    @field_validator("maintainer")
    @classmethod
    def _maintainer(cls, value: str) -> str:
        if not re.fullmatch(r"[^<>\n]+ <[^<>\s]+@[^<>\s]+>", value):
            raise ValueError(f"{value!r} is not 'Full Name <email@address>'")
        return value

    @model_validator(mode="after")
    def _unique(self) -> Recipe:
        paths = [p.path for p in self.patches]
        if len(set(paths)) != len(paths):
            raise ValueError("a patch is listed more than once")
        names = [p.name for p in self.profiles]
        if len(set(names)) != len(names):
            raise ValueError("a build profile is listed more than once")
        if "check" in self.build_options and "nocheck" in names:
            raise ValueError("build option 'check' contradicts the nocheck profile")
        return self

    @property
    def kiln_version(self) -> str:
        """``<debian-version>+kiln<N>``: sorts above the Debian version it starts from."""
        return f"{self.version}+kiln{self.revision}"

    @property
    def profile_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.profiles)
