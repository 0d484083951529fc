"""Read and check the DEP-3 header of a patch (https://dep-team.pages.debian.net/deps/dep3/).

kiln requires, beyond DEP-3's own minimum, that every patch says what it does
(``Description`` or ``Subject``), where it comes from (``Origin``, or ``Bug`` /
``Bug-<Vendor>`` for a fix tracked in a bug) and which CVEs it fixes (``CVE:`` with
CVE ids, or ``none`` for a patch that fixes no vulnerability). The header ends at the
first line that starts the diff (``---``, ``diff ``, ``Index:``) or at ``--- `` after a
blank line; it is parsed as RFC 822 fields with python-debian.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from debian.deb822 import Deb822

from kiln.errors import InputError, Location

_CVE_RE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_DIFF_START = ("--- ", "diff ", "Index: ", "===")


@dataclass(frozen=True)
class Dep3Header:
    """The fields kiln uses from a patch's DEP-3 header."""

    description: str
    origin: str | None
    bugs: tuple[str, ...]
    cves: tuple[str, ...]  # empty for ``CVE: none``
    forwarded: str | None
    fields: tuple[tuple[str, str], ...]

    @property
    def summary(self) -> str:
        return self.description.splitlines()[0].strip() if self.description else ""


def parse_dep3(text: str, *, path: str) -> Dep3Header:
    """Parse and check the header of the patch text at ``path`` (named in errors)."""
    header_lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(_DIFF_START):
            break
        header_lines.append(line)
    # DEP-3: the header may be followed by free text after a blank line (or a line "---").
    block: list[str] = []
    for line in header_lines:
        if not line.strip() or line.strip() == "---":
            if block:
                break
            continue
        block.append(line)
    if not block:
        raise InputError(
            "the patch has no DEP-3 header",
            location=Location(path, 1),
            hint="start the patch with 'Description:', 'Origin:' (or 'Bug:') and 'CVE:' lines",
        )
    for number, line in enumerate(block, start=1):
        if not line[0].isspace() and not re.match(r"^[A-Za-z][A-Za-z0-9-]*:", line):
            raise InputError(
                f"DEP-3 header line is not 'Field: value': {line[:60]!r}",
                location=Location(path, number),
            )
    fields = Deb822(block)
    pairs = tuple((str(k), str(v)) for k, v in fields.items())
    lower = {k.lower(): v.strip() for k, v in pairs}
    description = lower.get("description") or lower.get("subject") or ""
    if not description:
        raise InputError(
            "DEP-3 header has no Description (or Subject) field",
            location=Location(path, 1, field="Description"),
        )
    bugs = tuple(v for k, v in pairs if k.lower() == "bug" or k.lower().startswith("bug-"))
    origin = lower.get("origin")
    if not origin and not bugs:
        raise InputError(
            "DEP-3 header names neither Origin nor Bug",
            location=Location(path, 1, field="Origin"),
            hint="say where the patch comes from: 'Origin: upstream, <commit URL>' or "
            "'Origin: vendor' with 'Bug: <URL>'",
        )
    if "cve" not in lower:
        raise InputError(
            "DEP-3 header has no CVE field (kiln requires the CVE ids a patch fixes)",
            location=Location(path, 1, field="CVE"),
            hint="add 'CVE: CVE-YYYY-NNNN[, ...]', or 'CVE: none' for a patch that fixes none",
        )
    raw_cves = lower["cve"]
    cves: tuple[str, ...] = ()
    if raw_cves.lower() != "none":
        cves = tuple(c for c in re.split(r"[\s,]+", raw_cves) if c)
        bad = [c for c in cves if not _CVE_RE.match(c)]
        if bad or not cves:
            raise InputError(
                f"CVE field {raw_cves!r} is not a list of CVE ids (CVE-YYYY-NNNN) or 'none'",
                location=Location(path, 1, field="CVE"),
            )
    return Dep3Header(
        description=description,
        origin=origin,
        bugs=bugs,
        cves=cves,
        forwarded=lower.get("forwarded"),
        fields=pairs,
    )
