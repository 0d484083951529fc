"""VEX statements as kiln uses them, whatever document format they came from."""

from __future__ import annotations

from dataclasses import dataclass

VEX_STATUSES = ("not_affected", "affected", "fixed", "under_investigation")
JUSTIFICATIONS = (
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
)


@dataclass(frozen=True)
class VexStatement:
    """One statement: this vulnerability, in these products, has this status."""

    vulnerability: str
    aliases: frozenset[str]
    products: tuple[str, ...]  # purls (or other product ids) the statement is about
    status: str  # one of VEX_STATUSES (OpenVEX vocabulary)
    justification: str | None = None
    impact_statement: str | None = None
    action_statement: str | None = None
    timestamp: str | None = None
    document: str = ""

    @property
    def ids(self) -> frozenset[str]:
        return frozenset({self.vulnerability, *self.aliases})
