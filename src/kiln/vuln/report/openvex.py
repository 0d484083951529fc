"""OpenVEX output of a scan: one statement per finding (affected, or the VEX verdict)."""

from __future__ import annotations

from typing import ClassVar

from kiln.vuln.model import FindingStatus
from kiln.vuln.report._layout import dumps_lines
from kiln.vuln.report.interface import Formatter
from kiln.vuln.scan import ScanResult
from kiln.vuln.vex.model import VexStatement
from kiln.vuln.vex.openvex import write_openvex


class OpenVexFormatter(Formatter):
    name: ClassVar[str] = "openvex"

    def render(self, result: ScanResult) -> str:
        statements = []
        for f in result.findings:
            if f.vex is not None:
                status = f.vex.status
                justification, impact, action = f.vex.justification, f.vex.impact_statement, None
            elif f.status is FindingStatus.FIX_IN_UNSTABLE:
                # fixed in Debian unstable only: whether the release is affected awaits the
                # backport; the changelog line is the evidence
                status, justification, impact = "under_investigation", None, None
                action = (
                    f"Debian unstable fixes this in {f.package_name}'s source "
                    f"{f.unstable_version} ({f.evidence}); backport it"
                )
            else:
                status, justification, impact = "affected", None, None
                action = (
                    f"Upgrade {f.package_name} to {f.fixed_version}"
                    if f.status is FindingStatus.FIXED and f.fixed_version
                    else f"No fix available ({f.status.value})"
                )
            statements.append(
                VexStatement(
                    f.id,
                    frozenset(f.aliases),
                    (f.package_purl,),
                    status,
                    justification,
                    impact,
                    action,
                )
            )
        newest = max((s.created_at for s in result.snapshots), default="1970-01-01T00:00:00+00:00")
        doc = write_openvex(statements, author="kiln scan", timestamp=newest)
        return dumps_lines(doc, [("statements",)])
