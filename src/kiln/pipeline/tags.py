"""Image tags from Debian versions: the layout's ref name and the tags ``kiln publish`` moves.

A Debian upstream version (``20.19.2+dfsg``, ``2.3~rc1``) may hold characters an OCI
tag may not (``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``, distribution-spec "pulling
manifests"). The tag spells ``+`` as ``_`` (as eclipse-temurin's ``21.0.5_11`` tags
and Helm's OCI charts do) and ``~`` as ``-`` (a pre-release); the exact version stays
in the ``org.opencontainers.image.version`` annotation and in ``image.json``.
"""

from __future__ import annotations

import re

from kiln.errors import InputError, Location

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_SPELLING = str.maketrans({"+": "_", "~": "-"})
_MAJOR_MINOR = re.compile(r"^(?P<major>\d+)\.(?P<minor>\d+)(?:\.\d+)?")


def image_tag(version: str, variant: str, *, where: Location) -> str:
    """The tag naming one variant built at upstream ``version`` (``latest`` without one).

    ``where`` names the spec and its ``version-package`` field: a version that cannot
    be spelt as a tag is refused there, before anything is built or pushed.
    """
    base = version.translate(_SPELLING) if version else "latest"
    tag = base if variant == "runtime" else f"{base}-{variant}"
    if not _TAG.fullmatch(tag):
        raise InputError(
            f"version {version!r} cannot become an OCI tag: {tag!r} is not up to 128 of "
            "[A-Za-z0-9._-] starting with a letter, digit or '_'",
            location=where,
            hint="name a version-package whose Debian version is an ordinary version number",
        )
    return tag


def tags_for(tag: str, variant: str) -> tuple[str, ...]:
    """The convention: full version, major.minor, ``latest`` (each with ``-<variant>``)."""
    suffix = "" if variant == "runtime" else f"-{variant}"
    version = tag.removesuffix(suffix)
    tags = [tag]
    match = _MAJOR_MINOR.match(version)
    if match and version != "latest":
        tags.append(f"{match['major']}.{match['minor']}{suffix}")
    tags.append(f"latest{suffix}")
    return tuple(dict.fromkeys(tags))
