"""VEX that travels with the image: OpenVEX attestations attached in the registry.

``kiln vex attach`` signs an OpenVEX document as an in-toto statement about an image
(predicate type ``https://openvex.dev/ns/v0.2.0``) and attaches the Sigstore bundle as
an OCI referrer; ``kiln scan REF --key PUB`` reads those referrers back. Only a
statement that verifies with the given key and names the scanned image (its index or
platform manifest digest) is applied: anyone can attach a referrer, so an unsigned or
foreign VEX must never silence a finding. What was set aside is said, with why.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from kiln.attest.policy import CheckedBundle
from kiln.attest.predicates import OPENVEX_0_2
from kiln.vuln.vex.interface import VexFormatError
from kiln.vuln.vex.model import VexStatement
from kiln.vuln.vex.openvex import OpenVexReader


@dataclass(frozen=True)
class AttestedVex:
    """The VEX statements taken from attestations, and the attestations set aside."""

    statements: tuple[VexStatement, ...]
    set_aside: tuple[str, ...]  # one sentence each: which bundle, and why


def vex_from_attestations(
    bundles: Sequence[CheckedBundle], subjects: Collection[str]
) -> AttestedVex:
    """The statements of the signed OpenVEX attestations about one of ``subjects``.

    ``bundles`` were checked against the trusted key (``check_bundles``); ``subjects``
    are the scanned image's digests (``sha256:<hex>``). Other predicate types are not
    VEX and are skipped silently.
    """
    statements: list[VexStatement] = []
    set_aside: list[str] = []
    reader = OpenVexReader()
    for bundle in bundles:
        if bundle.problem is not None:
            set_aside.append(f"{bundle.source}: unreadable attestation ({bundle.problem})")
            continue
        if bundle.predicate_type != OPENVEX_0_2:
            continue
        if not bundle.signed:
            set_aside.append(
                f"{bundle.source}: VEX not signed by the given key (signed by "
                f"{bundle.describe_signer()}); not applied"
            )
            continue
        if not any(bundle.covers(digest) for digest in subjects):
            set_aside.append(f"{bundle.source}: VEX about another image; not applied")
            continue
        try:
            statements.extend(reader.read(bundle.predicate, bundle.source))
        except VexFormatError as exc:
            set_aside.append(f"{bundle.source}: signed VEX is not valid OpenVEX ({exc})")
    return AttestedVex(tuple(statements), tuple(set_aside))
