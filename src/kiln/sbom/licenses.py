"""Licences of a Debian package from its machine-readable ``copyright`` file, as SPDX.

Reads DEP-5 files (https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/)
with python-debian's ``debian.copyright`` and maps each ``License:`` short name to an
SPDX licence identifier (https://spdx.org/licenses/, through ``license-expression``'s
copy of the list): DEP-5's own names first (``GPL-2+`` -> ``GPL-2.0-or-later``,
``Expat`` -> ``MIT``, ``BSD-3-clause`` -> ``BSD-3-Clause``), then a case-insensitive
match against the list. A name with no SPDX identifier (``public-domain``) becomes a
``LicenseRef-`` carrying the file's licence text. The package's expression is the
``AND`` of its ``Files:`` paragraphs' licences, simplified (nested ``AND``s flattened,
duplicates dropped, operands in a fixed order) so equal files give equal expressions.
A file that is not machine-readable, or an expression that cannot be parsed, gives no
expression (NOASSERTION), never an error.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

from license_expression import (  # type: ignore[import-untyped]
    ExpressionError,
    LicenseExpression,
    Licensing,
    get_spdx_licensing,
)

from debian import copyright as dep5
from kiln.sbom.model import LicenseRef

# DEP-5 "License specification" short names whose SPDX id differs beyond letter case.
_GNU = {"GPL": "GPL", "LGPL": "LGPL", "AGPL": "AGPL", "GFDL": "GFDL"}
_GNU_VERSIONS = {"1": "1.0", "2": "2.0", "3": "3.0", "2.0": "2.0", "2.1": "2.1", "1.2": "1.2"}
_GNU_VERSIONS |= {"1.1": "1.1", "1.3": "1.3", "3.0": "3.0", "1.0": "1.0"}
_RENAMED = {
    "expat": "MIT",
    "apache-2": "Apache-2.0",
    "artistic": "Artistic-1.0-Perl",
    "artistic-1": "Artistic-1.0-Perl",
    "artistic-2": "Artistic-2.0",
    "perl": "Artistic-1.0-Perl OR GPL-1.0-or-later",
    "mpl-1.1": "MPL-1.1",
    "mpl-2": "MPL-2.0",
    "zlib": "Zlib",
    "psf-2": "PSF-2.0",
    "python-2": "Python-2.0",
    "cc0": "CC0-1.0",
    "isc": "ISC",
    "ofl-1.1": "OFL-1.1",
}
_GNU_NAME = re.compile(r"^(?P<family>A?L?GPL|GFDL)(?:-(?P<version>[0-9.]+))?(?P<plus>\+)?$", re.I)
_ID_CHARS = re.compile(r"[^A-Za-z0-9.-]+")
_OPERATORS = {"and": "AND", "or": "OR"}


@functools.cache
def licensing() -> Licensing:
    """The SPDX licence list (cached: building it takes ~0.1 s)."""
    return get_spdx_licensing()


def _not_format_fixes(record: logging.LogRecord) -> bool:
    return record.getMessage() != "Fixing Format URL"  # http:// for https:// is harmless


# python-debian logs every DEP-5 file whose Format URL says http: (most of Debian)
logging.getLogger(dep5.__name__).addFilter(_not_format_fixes)

# Syntax only: normalising with the SPDX list would rewrite aliases (even LicenseRefs).
_SYNTAX = Licensing()


@functools.cache
def _spdx_ids() -> tuple[dict[str, str], dict[str, str]]:
    """Case-folded SPDX licence ids and exception ids -> their canonical spelling."""
    licenses: dict[str, str] = {}
    exceptions: dict[str, str] = {}
    for key, symbol in licensing().known_symbols.items():
        if key.startswith("LicenseRef-"):
            continue  # scancode's own references are not SPDX identifiers
        (exceptions if symbol.is_exception else licenses)[key.lower()] = key
    return licenses, exceptions


@dataclass(frozen=True)
class PackageLicense:
    """An SPDX expression (None: NOASSERTION) and the LicenseRefs it uses."""

    expression: str | None
    refs: tuple[LicenseRef, ...] = ()


def _ref_id(name: str) -> str:
    idstring = _ID_CHARS.sub("-", name.replace("+", "-plus")).strip("-")
    return "LicenseRef-" + (idstring or "unnamed")


def _map_name(name: str) -> str | None:
    """The SPDX id (or small expression) for one DEP-5 short name, else None."""
    licenses, _ = _spdx_ids()
    gnu = _GNU_NAME.match(name)
    if gnu:
        family = _GNU[gnu["family"].upper()]
        version = _GNU_VERSIONS.get(gnu["version"] or "")
        if version is None and gnu["version"] is None:
            version = {"GPL": "1.0", "LGPL": "2.0", "AGPL": "3.0", "GFDL": "1.1"}[family]
            suffix = "or-later"  # an unversioned GPL means "any version"
        else:
            suffix = "or-later" if gnu["plus"] else "only"
        if version is not None:
            candidate = f"{family}-{version}-{suffix}"
            if candidate.lower() in licenses:
                return licenses[candidate.lower()]
    plus = name.endswith("+")
    base = name.removesuffix("+")
    renamed = _RENAMED.get(base.lower())
    if renamed is not None and not plus:
        return renamed
    canonical = licenses.get((renamed or base).lower())
    if canonical is None:
        return None
    if not plus:
        return canonical
    # "X+" without an -or-later id has no SPDX spelling: None makes it a LicenseRef
    return licenses.get(f"{canonical}-or-later".lower())


def _exception_id(name: str) -> str | None:
    """The SPDX exception id DEP-5's ``with <name> exception`` means, if exactly one fits."""
    _, exceptions = _spdx_ids()
    key = name.replace(" ", "-").lower()
    for candidate in (key, f"{key}-exception"):
        if candidate in exceptions:
            return exceptions[candidate]
    versions = [v for k, v in exceptions.items() if k.startswith(f"{key}-exception-")]
    return versions[0] if len(versions) == 1 else None  # Classpath -> Classpath-exception-2.0


def _term(words: list[str], texts: dict[str, str], refs: dict[str, LicenseRef]) -> str:
    """One licence term: ``name`` or ``name with <exception> exception``."""
    name = words[0]
    exception = None
    if len(words) > 1:
        if words[1].lower() != "with" or len(words) < 3:
            raise ValueError(f"unexpected words after {name!r}: {' '.join(words[1:])!r}")
        exception = " ".join(w for w in words[2:] if w.lower() != "exception")
    mapped = _map_name(name)
    if exception is not None and mapped is not None and " " not in mapped:
        found = _exception_id(exception)
        if found is not None:
            return f"{mapped} WITH {found}"
    if exception is None and mapped is not None:
        return f"({mapped})" if " " in mapped else mapped
    full = " ".join(words)
    ref = _ref_id(full)
    text = texts.get(full.lower()) or texts.get(name.lower()) or _NO_TEXT.format(full)
    refs.setdefault(ref, LicenseRef(ref, full, text))
    return ref


_NO_TEXT = "The licence named {!r} in the package's copyright file (no text given there)."


def _synopsis_expression(synopsis: str, texts: dict[str, str], refs: dict[str, LicenseRef]) -> str:
    """A DEP-5 licence synopsis (``GPL-2+ or Artistic``) as an SPDX expression."""
    words = synopsis.replace(",", " ").split()
    if not words:
        raise ValueError("empty License field")
    out: list[str] = []
    term: list[str] = []
    for word in words:
        operator = _OPERATORS.get(word.lower())
        if operator is None:
            term.append(word)
            continue
        if not term:
            raise ValueError(f"operator {word!r} without a licence before it")
        out += [_term(term, texts, refs), operator]
        term = []
    if not term:
        raise ValueError("expression ends with an operator")
    out.append(_term(term, texts, refs))
    return " ".join(out)


def _license(paragraph: dep5.FilesParagraph | dep5.LicenseParagraph) -> dep5.License | None:
    # python-debian declares the field as a descriptor type; its value is a License
    return cast("dep5.License | None", getattr(paragraph, "license", None))


def parse_expression(expression: str) -> LicenseExpression:
    """An expression this module produced, as a ``license-expression`` object (no aliasing)."""
    return _SYNTAX.parse(expression, simple=False)


def spdx_license_id(expression: str) -> str | None:
    """``expression`` itself when it is one SPDX licence id (no operator, no LicenseRef)."""
    licenses, _ = _spdx_ids()
    return licenses.get(expression.lower()) if " " not in expression else None


def license_from_copyright(text: str, where: str, warnings: list[str]) -> PackageLicense:
    """The licence of a package from its copyright file's text; see the module docstring.

    ``where`` names the file in warnings (e.g. ``/usr/share/doc/zlib1g/copyright``).
    Memoised: parsing DEP-5 with python-debian costs ~50 ms a file, and every platform
    and SBOM format of an image reads the same files.
    """
    found, notes = _license_memo(text, where)
    warnings.extend(notes)
    return found


@lru_cache(maxsize=4096)
def _license_memo(text: str, where: str) -> tuple[PackageLicense, tuple[str, ...]]:
    notes: list[str] = []
    return _license_from_copyright(text, where, notes), tuple(notes)


def _license_from_copyright(text: str, where: str, warnings: list[str]) -> PackageLicense:
    try:
        parsed = dep5.Copyright(text.splitlines(), strict=False)
    except dep5.NotMachineReadableError:
        return PackageLicense(None)  # free-form copyright files are the norm for old packages
    except (dep5.Error, ValueError) as exc:
        warnings.append(f"{where}: malformed machine-readable copyright file ({exc}): NOASSERTION")
        return PackageLicense(None)
    texts: dict[str, str] = {}
    for standalone in parsed.all_license_paragraphs():
        lic = _license(standalone)
        if lic is not None and lic.text:
            texts[lic.synopsis.strip().lower()] = lic.text
    refs: dict[str, LicenseRef] = {}
    terms: set[str] = set()
    try:
        for paragraph in parsed.all_files_paragraphs():
            lic = _license(paragraph)
            if lic is None or not lic.synopsis.strip():
                continue
            synopsis = lic.synopsis.strip()
            if lic.text:
                texts.setdefault(synopsis.lower(), lic.text)
            terms.add(_synopsis_expression(synopsis, texts, refs))
    except (ValueError, dep5.Error) as exc:
        warnings.append(f"{where}: cannot map a License field to SPDX ({exc}): NOASSERTION")
        return PackageLicense(None)
    if not terms:
        return PackageLicense(None)
    ordered = sorted(terms)
    expression = " AND ".join(f"({t})" if len(ordered) > 1 and " " in t else t for t in ordered)
    try:
        # simplify: flatten nested ANDs, drop duplicates, order operands (deterministic)
        normalised = str(_SYNTAX.parse(expression, simple=False).simplify())
    except ExpressionError as exc:
        warnings.append(f"{where}: licence expression {expression!r} is invalid ({exc})")
        return PackageLicense(None)
    used = tuple(sorted((r for k, r in refs.items() if k in normalised), key=lambda r: r.id))
    return PackageLicense(normalised, used)


# Trove classifiers (https://pypi.org/classifiers/) naming one licence, by their last part.
_CLASSIFIERS = {
    "mit license": "MIT",
    "mit no attribution license (mit-0)": "MIT-0",
    "apache software license": "Apache-2.0",
    "bsd license": "BSD-3-Clause",
    "isc license (iscl)": "ISC",
    "python software foundation license": "PSF-2.0",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "gnu general public license v2 (gplv2)": "GPL-2.0-only",
    "gnu general public license v2 or later (gplv2+)": "GPL-2.0-or-later",
    "gnu general public license v3 (gplv3)": "GPL-3.0-only",
    "gnu general public license v3 or later (gplv3+)": "GPL-3.0-or-later",
    "gnu lesser general public license v2 (lgplv2)": "LGPL-2.0-only",
    "gnu lesser general public license v2 or later (lgplv2+)": "LGPL-2.0-or-later",
    "gnu lesser general public license v3 (lgplv3)": "LGPL-3.0-only",
    "gnu lesser general public license v3 or later (lgplv3+)": "LGPL-3.0-or-later",
    "the unlicense (unlicense)": "Unlicense",
    "zope public license": "ZPL-2.1",
    "public domain": None,  # not a licence: NOASSERTION rather than a guess
}
# Licence names packages write that are not SPDX ids ("MIT License", "Apache 2.0").
_DECLARED_NAMES = {
    "mit license": "MIT",
    "the mit license": "MIT",
    "apache 2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "bsd": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause",
    "psf": "PSF-2.0",
    "psf license": "PSF-2.0",
}


def license_from_declared(statements: tuple[str, ...]) -> str | None:
    """An SPDX expression for a language package's declared licence, else None.

    ``statements`` come most precise first (see ``kiln.inventory.Declared``): an SPDX
    expression (``License-Expression``, package.json ``license``), a licence name, or
    ``License ::`` classifiers. The first one that maps to valid SPDX wins; nothing is
    guessed from free text.
    """
    for statement in statements:
        found = _declared_expression(statement)
        if found is not None:
            return found
    return None


_MAX_DECLARED = 1000  # longer is licence text, not an expression (and costly to parse)


def _declared_expression(statement: str) -> str | None:
    text = " ".join(statement.split())
    if len(text) > _MAX_DECLARED:
        return None
    if text.startswith("License ::"):
        name = text.rpartition(" :: ")[2].lower()
        return _CLASSIFIERS.get(name)
    mapped = _DECLARED_NAMES.get(text.lower()) or _map_name(text)
    if mapped is not None:
        return mapped
    try:
        info = licensing().validate(text)
    except (ExpressionError, AttributeError, ValueError):
        # license-expression raises (and on some keys fails to build its own error) for
        # characters no licence key has: then it is not an expression
        return None
    if info.errors or not info.normalized_expression:
        return None
    normalised = str(info.normalized_expression)
    if "LicenseRef-" in normalised:
        return None  # a scancode alias, not an SPDX licence
    return str(_SYNTAX.parse(normalised, simple=False).simplify())
