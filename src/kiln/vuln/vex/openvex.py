"""OpenVEX documents: read (v0.2.0 and the older v0.0.1 shape) and write.

Spec: https://github.com/openvex/spec/blob/main/OPENVEX-SPEC.md . Documents are checked
at the trust boundary with frozen pydantic models (unknown fields refused in what kiln
writes; tolerated on read, since producers add fields the spec allows).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kiln.errors import Location
from kiln.vuln.vex.interface import VexFormatError, VexReader
from kiln.vuln.vex.model import JUSTIFICATIONS, VEX_STATUSES, VexStatement

CONTEXT = "https://openvex.dev/ns/v0.2.0"


class _Identifier(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    id: str | None = Field(default=None, alias="@id")
    identifiers: dict[str, str] = {}
    subcomponents: list[_Identifier | str] = []

    def names(self) -> list[str]:
        out = [self.id] if self.id else []
        out += [v for k, v in sorted(self.identifiers.items()) if k == "purl"]
        return out


class _Vulnerability(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    id: str | None = Field(default=None, alias="@id")
    name: str = Field(min_length=1)
    aliases: list[str] = []


class _Statement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    vulnerability: _Vulnerability | str
    products: list[_Identifier | str] = []
    status: str
    justification: str | None = None
    impact_statement: str | None = None
    action_statement: str | None = None
    timestamp: str | None = None

    @field_validator("status")
    @classmethod
    def _status(cls, v: str) -> str:
        if v not in VEX_STATUSES:
            raise ValueError(f"status must be one of {', '.join(VEX_STATUSES)}")
        return v

    @field_validator("justification")
    @classmethod
    def _justification(cls, v: str | None) -> str | None:
        if v is not None and v not in JUSTIFICATIONS:
            raise ValueError(f"justification must be one of {', '.join(JUSTIFICATIONS)}")
        return v


class _Document(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    context: str = Field(alias="@context")
    id: str = Field(alias="@id")
    author: str
    timestamp: str
    version: int | str = 1
    statements: list[_Statement]


def _products(items: list[_Identifier | str]) -> tuple[str, ...]:
    out: list[str] = []
    for p in items:
        if isinstance(p, str):
            out.append(p)
            continue
        subs = [s if isinstance(s, str) else (s.names() or [""])[0] for s in p.subcomponents]
        # A product with subcomponents speaks about those components inside it.
        out.extend(s for s in subs if s) if subs else out.extend(p.names())
    return tuple(out)


class OpenVexReader(VexReader):
    def accepts(self, document: dict[str, Any]) -> bool:
        return str(document.get("@context", "")).startswith("https://openvex.dev/ns")

    def read(self, document: dict[str, Any], origin: str) -> list[VexStatement]:
        try:
            doc = _Document.model_validate(document)
        except ValidationError as exc:
            err = exc.errors()[0]
            path = ".".join(str(p) for p in err["loc"])
            raise VexFormatError(
                f"invalid OpenVEX document: {err['msg']}", Location(origin, field=path)
            ) from exc
        out = []
        for i, st in enumerate(doc.statements):
            vuln = st.vulnerability
            name = vuln if isinstance(vuln, str) else vuln.name
            aliases = frozenset() if isinstance(vuln, str) else frozenset(vuln.aliases)
            if st.status == "not_affected" and not (st.justification or st.impact_statement):
                raise VexFormatError(
                    "a not_affected statement needs a justification or an impact_statement",
                    Location(origin, field=f"statements.{i}"),
                )
            out.append(
                VexStatement(
                    vulnerability=name,
                    aliases=aliases,
                    products=_products(st.products),
                    status=st.status,
                    justification=st.justification,
                    impact_statement=st.impact_statement,
                    action_statement=st.action_statement,
                    timestamp=st.timestamp or doc.timestamp,
                    document=origin,
                )
            )
        return out


def write_openvex(
    statements: Sequence[VexStatement], *, author: str, timestamp: str, doc_id: str | None = None
) -> dict[str, Any]:
    """An OpenVEX v0.2.0 document for ``statements`` (deterministic for equal inputs)."""
    body = [
        {
            k: v
            for k, v in {
                "vulnerability": {
                    "name": s.vulnerability,
                    **({"aliases": sorted(s.aliases)} if s.aliases else {}),
                },
                "products": [{"@id": p} for p in s.products],
                "status": s.status,
                "justification": s.justification,
                "impact_statement": s.impact_statement,
                "action_statement": s.action_statement,
                "timestamp": s.timestamp,
            }.items()
            if v is not None
        }
        for s in statements
    ]
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    doc = {
        "@context": CONTEXT,
        "@id": doc_id or f"https://openvex.dev/docs/public/vex-{digest}",
        "author": author,
        "timestamp": timestamp,
        "version": 1,
        "statements": body,
    }
    OpenVexReader().read(doc, "(generated)")  # what we write must read back
    return doc
