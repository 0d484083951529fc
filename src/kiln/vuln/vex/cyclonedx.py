"""CycloneDX VEX (a BOM whose ``vulnerabilities[].analysis`` carries the verdict).

Spec: https://cyclonedx.org/docs/1.6/json/#vulnerabilities . ``affects[].ref`` points at
a component's ``bom-ref`` (resolved to its purl) or is a purl / BOM-Link itself.
CycloneDX analysis states map onto OpenVEX statuses.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kiln.errors import Location
from kiln.vuln.vex.interface import VexFormatError, VexReader
from kiln.vuln.vex.model import VexStatement

_STATE = {
    "not_affected": "not_affected",
    "false_positive": "not_affected",
    "resolved": "fixed",
    "resolved_with_pedigree": "fixed",
    "exploitable": "affected",
    "in_triage": "under_investigation",
}
_JUSTIFICATION = {
    "code_not_present": "vulnerable_code_not_present",
    "code_not_reachable": "vulnerable_code_not_in_execute_path",
    "requires_configuration": "vulnerable_code_cannot_be_controlled_by_adversary",
    "requires_dependency": "component_not_present",
    "requires_environment": "vulnerable_code_cannot_be_controlled_by_adversary",
    "protected_by_compiler": "inline_mitigations_already_exist",
    "protected_at_runtime": "inline_mitigations_already_exist",
    "protected_at_perimeter": "inline_mitigations_already_exist",
    "protected_by_mitigating_control": "inline_mitigations_already_exist",
}


class _Analysis(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    state: str
    justification: str | None = None
    detail: str | None = None


class _Ref(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    ref: str


class _Vuln(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    id: str = Field(min_length=1)
    references: list[dict[str, Any]] = []
    analysis: _Analysis | None = None
    affects: list[_Ref] = []


class _Component(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    bom_ref: str | None = Field(default=None, alias="bom-ref")
    purl: str | None = None
    components: list[_Component] = []


class _Bom(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    bom_format: str = Field(alias="bomFormat")
    components: list[_Component] = []
    vulnerabilities: list[_Vuln] = []


def _refs(components: list[_Component], into: dict[str, str]) -> None:
    for c in components:
        if c.bom_ref and c.purl:
            into[c.bom_ref] = c.purl
        _refs(c.components, into)


class CycloneDxVexReader(VexReader):
    def accepts(self, document: dict[str, Any]) -> bool:
        return document.get("bomFormat") == "CycloneDX"

    def read(self, document: dict[str, Any], origin: str) -> list[VexStatement]:
        try:
            bom = _Bom.model_validate(document)
        except ValidationError as exc:
            err = exc.errors()[0]
            path = ".".join(str(p) for p in err["loc"])
            raise VexFormatError(
                f"invalid CycloneDX VEX: {err['msg']}", Location(origin, field=path)
            ) from exc
        refs: dict[str, str] = {}
        _refs(bom.components, refs)
        out = []
        for i, v in enumerate(bom.vulnerabilities):
            if v.analysis is None:
                continue
            if v.analysis.state not in _STATE:
                raise VexFormatError(
                    f"unknown analysis state {v.analysis.state!r}",
                    Location(origin, field=f"vulnerabilities.{i}.analysis.state"),
                )
            aliases = frozenset(
                str(r["id"])
                for r in v.references
                if isinstance(r, dict) and isinstance(r.get("id"), str)
            )
            justification = _JUSTIFICATION.get(v.analysis.justification or "")
            out.append(
                VexStatement(
                    vulnerability=v.id,
                    aliases=aliases,
                    products=tuple(refs.get(a.ref, a.ref) for a in v.affects),
                    status=_STATE[v.analysis.state],
                    justification=justification,
                    impact_statement=v.analysis.detail or v.analysis.justification,
                    document=origin,
                )
            )
        return out
