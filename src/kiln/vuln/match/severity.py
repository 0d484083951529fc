"""Severity of a finding: NVD CVSS when known, else Debian urgency, else OSV severity.

CVSS v3.x/v4.0 base scores map to ratings per the FIRST specifications
(https://www.first.org/cvss/); vectors carried by OSV are scored with the ``cvss``
library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kiln.vuln.model import NvdRecord, Severity

_URGENCY = {
    "unimportant": Severity.NEGLIGIBLE,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
}


@dataclass(frozen=True)
class Rated:
    severity: Severity
    source: str  # nvd | debian-tracker | osv | none
    vector: str | None = None
    score: float | None = None


def score_vector(vector: str) -> float | None:
    """The base score of a CVSS v3.x or v4.0 vector, or ``None`` if it does not parse."""
    from cvss import CVSS3, CVSS4  # type: ignore[import-untyped]  # noqa: PLC0415 - OSV-only
    from cvss.exceptions import CVSSError  # type: ignore[import-untyped]  # noqa: PLC0415

    try:
        if vector.startswith("CVSS:4.0/"):
            return float(CVSS4(vector).base_score)
        if vector.startswith("CVSS:3."):
            return float(CVSS3(vector).scores()[0])
    except (CVSSError, ValueError, KeyError):
        return None
    return None


def rate(
    ids: Iterable[str],
    nvd: Mapping[str, NvdRecord],
    urgencies: Iterable[str | None],
    osv_severity: Iterable[tuple[str, str]],
    osv_database_severity: Iterable[str | None],
) -> Rated:
    for cve in sorted(i for i in ids if i in nvd):
        rec = nvd[cve]
        if rec.cvss31_score is not None:
            return Rated(
                Severity.from_cvss_score(rec.cvss31_score),
                "nvd",
                rec.cvss31_vector,
                rec.cvss31_score,
            )
        if rec.cvss40_score is not None:
            return Rated(
                Severity.from_cvss_score(rec.cvss40_score),
                "nvd",
                rec.cvss40_vector,
                rec.cvss40_score,
            )
    worst = [
        _URGENCY[u] for u in ((x or "").rstrip("*").strip() for x in urgencies) if u in _URGENCY
    ]
    if worst:
        return Rated(max(worst), "debian-tracker")
    scored = sorted(
        (
            (s, v)
            for t, v in osv_severity
            if t in ("CVSS_V3", "CVSS_V4") and (s := score_vector(v)) is not None
        ),
        reverse=True,
    )
    if scored:
        score, vector = scored[0]
        return Rated(Severity.from_cvss_score(score), "osv", vector, score)
    labels = []
    for text in osv_database_severity:
        if not text:
            continue
        try:
            labels.append(Severity.parse(text or ""))
        except ValueError:
            continue
    if labels:
        return Rated(max(labels), "osv")
    return Rated(Severity.UNKNOWN, "none")
