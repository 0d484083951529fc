"""CycloneDX 1.6 output with vulnerabilities, built with cyclonedx-python-lib.

Spec: https://cyclonedx.org/docs/1.6/json/ . Each scanned package with a finding is a
component (``bom-ref`` = its purl); each finding is a vulnerability that ``affects``
it, with ratings, the fix as ``recommendation`` and VEX verdicts as ``analysis``. The
serial number and timestamp derive from the inputs so equal scans give equal BOMs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar

from cyclonedx.model import XsUri
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.impact_analysis import (
    ImpactAnalysisAffectedStatus,
    ImpactAnalysisJustification,
    ImpactAnalysisState,
)
from cyclonedx.model.vulnerability import (
    BomTarget,
    BomTargetVersionRange,
    Vulnerability,
    VulnerabilityAnalysis,
    VulnerabilityRating,
    VulnerabilityReference,
    VulnerabilityScoreSource,
    VulnerabilitySeverity,
    VulnerabilitySource,
)
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from packageurl import PackageURL

from kiln.vuln.model import Finding, Severity
from kiln.vuln.report.interface import Formatter
from kiln.vuln.scan import ScanResult

_SEVERITY = {
    Severity.CRITICAL: VulnerabilitySeverity.CRITICAL,
    Severity.HIGH: VulnerabilitySeverity.HIGH,
    Severity.MEDIUM: VulnerabilitySeverity.MEDIUM,
    Severity.LOW: VulnerabilitySeverity.LOW,
    Severity.NEGLIGIBLE: VulnerabilitySeverity.INFO,
    Severity.UNKNOWN: VulnerabilitySeverity.UNKNOWN,
}
_JUSTIFICATION = {
    "component_not_present": ImpactAnalysisJustification.REQUIRES_DEPENDENCY,
    "vulnerable_code_not_present": ImpactAnalysisJustification.CODE_NOT_PRESENT,
    "vulnerable_code_not_in_execute_path": ImpactAnalysisJustification.CODE_NOT_REACHABLE,
    "vulnerable_code_cannot_be_controlled_by_adversary": (
        ImpactAnalysisJustification.REQUIRES_ENVIRONMENT
    ),
    "inline_mitigations_already_exist": ImpactAnalysisJustification.PROTECTED_BY_MITIGATING_CONTROL,
}
_SOURCE_URL: dict[str, str] = {
    "CVE": "https://nvd.nist.gov/vuln/detail/",
    "GHSA": "https://github.com/advisories/",
    "PYSEC": "https://osv.dev/vulnerability/",
}


def _source(vuln_id: str) -> VulnerabilitySource:
    prefix = vuln_id.split("-", 1)[0]
    name = {"CVE": "NVD", "GHSA": "GitHub", "PYSEC": "OSV"}.get(prefix, "OSV")
    base = _SOURCE_URL.get(prefix, "https://osv.dev/vulnerability/")
    return VulnerabilitySource(name=name, url=XsUri(base + vuln_id))


def _component(f: Finding) -> Component:
    try:
        purl = PackageURL.from_string(f.package_purl)
    except ValueError:
        purl = None
    return Component(
        name=f.package_name,
        version=f.package_version,
        type=ComponentType.LIBRARY,
        purl=purl,
        bom_ref=f.package_purl,
    )


def _vulnerability(f: Finding, component: Component) -> Vulnerability:
    ratings = []
    if f.cvss_score is not None and f.cvss_vector:
        method = (
            VulnerabilityScoreSource.CVSS_V4
            if f.cvss_vector.startswith("CVSS:4")
            else VulnerabilityScoreSource.CVSS_V3_1
        )
        ratings.append(
            VulnerabilityRating(
                score=Decimal(str(f.cvss_score)),
                severity=_SEVERITY[f.severity],
                method=method,
                vector=f.cvss_vector,
            )
        )
    else:
        ratings.append(
            VulnerabilityRating(
                severity=_SEVERITY[f.severity], method=VulnerabilityScoreSource.OTHER
            )
        )
    analysis = None
    if f.vex is not None:
        state = {
            "not_affected": ImpactAnalysisState.NOT_AFFECTED,
            "fixed": ImpactAnalysisState.RESOLVED,
            "affected": ImpactAnalysisState.EXPLOITABLE,
            "under_investigation": ImpactAnalysisState.IN_TRIAGE,
        }[f.vex.status]
        analysis = VulnerabilityAnalysis(
            state=state,
            justification=_JUSTIFICATION.get(f.vex.justification or ""),
            detail=f.vex.impact_statement,
        )
    status = (
        ImpactAnalysisAffectedStatus.UNAFFECTED
        if f.vex and f.vex.status in ("not_affected", "fixed")
        else ImpactAnalysisAffectedStatus.AFFECTED
    )
    return Vulnerability(
        bom_ref=f"{f.id}|{f.package_purl}",
        id=f.id,
        source=_source(f.id),
        references=[VulnerabilityReference(id=a, source=_source(a)) for a in f.aliases],
        ratings=ratings,
        description=f.title or None,
        recommendation=f"Upgrade {f.package_name} to {f.fixed_version}"
        if f.fixed_version
        else (
            f"Debian unstable fixes this in {f.unstable_version} ({f.evidence})"
            if f.unstable_version
            else None
        ),
        analysis=analysis,
        affects=[
            BomTarget(
                ref=component.bom_ref.value or f.package_purl,
                versions=[BomTargetVersionRange(version=f.package_version, status=status)],
            )
        ],
    )


class CycloneDxFormatter(Formatter):
    name: ClassVar[str] = "cyclonedx"

    def render(self, result: ScanResult) -> str:
        components: dict[str, Component] = {}
        vulns = []
        for f in result.findings:
            comp = components.setdefault(f.package_purl, _component(f))
            vulns.append(_vulnerability(f, comp))
        newest = max((s.created_at for s in result.snapshots), default="1970-01-01T00:00:00+00:00")
        seed = "|".join([result.target, *sorted(components), *(s.digest for s in result.snapshots)])
        bom = Bom(
            components=[components[k] for k in sorted(components)],
            vulnerabilities=vulns,
            serial_number=uuid.uuid5(uuid.NAMESPACE_URL, seed),
            metadata=BomMetaData(timestamp=datetime.fromisoformat(newest).astimezone(UTC)),
        )
        out = make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6)
        return str(out.output_as_string(indent=2)) + "\n"
