"""Apply VEX statements to findings (pure): matching vulnerability id and product purl."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from packageurl import PackageURL

from kiln.vuln.ecosystems import normalize_package_name, osv_ecosystem
from kiln.vuln.model import Finding, FindingStatus, VexVerdict
from kiln.vuln.vex.model import VexStatement


def _parts(purl: str) -> tuple[str, str, str, str | None] | None:
    try:
        p = PackageURL.from_string(purl)
    except ValueError:
        return None
    name = normalize_package_name(osv_ecosystem(p.type), p.name)
    return (p.type, (p.namespace or "").lower(), name, p.version)


def product_matches(product: str, purl: str) -> bool:
    """A statement's product names this package: same type/namespace/name, and version
    when the product gives one (qualifiers such as arch and distro are ignored)."""
    if product == purl:
        return True
    a, b = _parts(product), _parts(purl)
    if a is None or b is None:
        return False
    return a[:3] == b[:3] and (a[3] is None or a[3] == b[3])


def apply_vex(findings: Sequence[Finding], statements: Sequence[VexStatement]) -> list[Finding]:
    """Findings with the newest applicable statement attached; not_affected and fixed
    statements turn the finding's status to ``not_affected``."""
    ordered = sorted(enumerate(statements), key=lambda p: (p[1].timestamp or "", p[0]))
    out = []
    for f in findings:
        chosen: VexStatement | None = None
        for _, st in ordered:
            if st.ids & f.ids and any(product_matches(p, f.package_purl) for p in st.products):
                chosen = st
        if chosen is None:
            out.append(f)
            continue
        verdict = VexVerdict(
            chosen.status, chosen.justification, chosen.impact_statement, chosen.document
        )
        status = (
            FindingStatus.NOT_AFFECTED if chosen.status in ("not_affected", "fixed") else f.status
        )
        out.append(replace(f, status=status, vex=verdict))
    return out
