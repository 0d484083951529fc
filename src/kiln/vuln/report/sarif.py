"""SARIF 2.1.0 output (OASIS: https://docs.oasis-open.org/sarif/sarif/v2.1.0/).

One rule per vulnerability id, one result per finding; the result's location is the
file the package was found in (dpkg status, dist-info, package.json), with the purl as
a logical location. Levels: critical/high -> error, medium -> warning, else note.
``properties.security-severity`` carries the CVSS score (GitHub code scanning).
"""

from __future__ import annotations

from typing import Any, ClassVar

from kiln import __version__
from kiln.vuln.model import Finding, Severity
from kiln.vuln.report._layout import ANY, dumps_lines
from kiln.vuln.report.interface import Formatter
from kiln.vuln.scan import ScanResult

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
_SCORE = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "2.0",
    Severity.NEGLIGIBLE: "0.0",
    Severity.UNKNOWN: "0.0",
}


def _level(s: Severity) -> str:
    if s >= Severity.HIGH:
        return "error"
    if s is Severity.MEDIUM:
        return "warning"
    return "note"


def _rule(f: Finding) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": f.id,
        "name": f.id.replace("-", ""),
        "shortDescription": {"text": f.title or f.id},
        "defaultConfiguration": {"level": _level(f.severity)},
        "properties": {
            "security-severity": f"{f.cvss_score:.1f}"
            if f.cvss_score is not None
            else _SCORE[f.severity],
            "tags": ["security", "vulnerability", f.severity.label],
        },
    }
    if f.urls:
        rule["helpUri"] = f.urls[0]
    return rule


def _result(f: Finding) -> dict[str, Any]:
    fix = f"; fixed in {f.fixed_version}" if f.fixed_version else f"; status {f.status.value}"
    if f.unstable_version:
        fix = f"; fix in unstable {f.unstable_version} ({f.evidence})"
    result: dict[str, Any] = {
        "ruleId": f.id,
        "level": _level(f.severity),
        "message": {"text": f"{f.package_name} {f.package_version} is affected by {f.id}{fix}"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {
                        "uri": (f.locations[0] if f.locations else f.package_purl).lstrip("/")
                    }
                },
                "logicalLocations": [
                    {
                        "name": f.package_name,
                        "fullyQualifiedName": f.package_purl,
                        "kind": "package",
                    }
                ],
            }
        ],
        "partialFingerprints": {"kiln/finding": f"{f.package_purl}|{f.id}"},
        "properties": {
            "severity": f.severity.label,
            "status": f.status.value,
            "fixedVersion": f.fixed_version,
            "fixedInUnstable": f.unstable_version,
            "evidence": f.evidence,
            "aliases": list(f.aliases),
            "kev": f.kev,
        },
    }
    if f.vex is not None:
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": f.vex.justification or f.vex.status,
            }
        ]
    return result


# one rule and one result per line (see _layout: indenting them all took seconds)
_ONE_PER_LINE = [("runs", ANY, "tool", "driver", "rules"), ("runs", ANY, "results")]


class SarifFormatter(Formatter):
    name: ClassVar[str] = "sarif"

    def render(self, result: ScanResult) -> str:
        rules: dict[str, dict[str, Any]] = {}
        for f in result.findings:
            rules.setdefault(f.id, _rule(f))
        doc = {
            "$schema": SARIF_SCHEMA,
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "kiln",
                            "version": __version__,
                            "rules": [rules[k] for k in sorted(rules)],
                        }
                    },
                    "results": [_result(f) for f in result.findings],
                    "properties": {
                        "target": result.target,
                        "snapshots": [s.digest for s in result.snapshots],
                    },
                }
            ],
        }
        return dumps_lines(
            doc, [("runs", ANY, "tool", "driver", "rules"), ("runs", ANY, "results")]
        )
