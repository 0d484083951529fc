"""OpenVEX v0.2.0 for one image, from the advisory store's current state.

One statement per (image, vulnerability) whose status was determined (a person or the
loop judged it: anything but a bare detection): the status comes
from the newest determining event (``state.py``), its time is that event's time, and the
product is the package the events name (``pkg:deb/debian/<binary>``, no version: the
statement is about the package in this image, whichever build it carries) or, for an
event without a package, the image itself (``pkg:oci/<image>``). The attestation that
carries the document names the image digest, so the document never has to.

The output is deterministic: statements sorted by vulnerability and product, canonical
JSON (sorted keys, no spaces), all times from the events; the same events give the same
bytes. It is written through ``kiln.vuln.vex.openvex.write_openvex``, which reads every
document back through kiln's own OpenVEX reader before returning it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kiln.errors import InputError
from kiln.vuln.advisories.events import EventKind, format_time
from kiln.vuln.advisories.state import AdvisoryState
from kiln.vuln.vex.model import VexStatement
from kiln.vuln.vex.openvex import write_openvex

if TYPE_CHECKING:
    from kiln.vuln.advisories.store import AdvisoryStore

#: the author of documents kiln writes when the caller names none
DEFAULT_AUTHOR = "kiln"
#: evidence items quoted in an impact statement (a file list can be long; the advisory
#: store keeps it whole, ``kiln advisories show`` prints it)
MAX_EVIDENCE = 20


def product_of(state: AdvisoryState) -> str:
    """The OpenVEX product a state is about: its package's purl, else the image's."""
    package = state.package
    if package is None:
        return f"pkg:oci/{state.image}"
    return package if package.startswith("pkg:") else f"pkg:deb/debian/{package}"


def _statement(state: AdvisoryState) -> VexStatement:
    event = state.determination
    data = event.data if event else {}
    action: str | None = None
    if state.status == "affected":
        note = data.get("note")
        action = {
            EventKind.PENDING_UPSTREAM_FIX: "No fix is available yet; kiln waits for upstream",
            EventKind.FIX_NOT_PLANNED: "No fix is planned",
        }.get(
            event.kind if event else EventKind.TRUE_POSITIVE,
            "kiln is remediating this vulnerability",
        )
        action = f"{action}: {note}" if note else action
    impact: str | None = None
    if state.status == "not_affected":
        impact = str(data["impact_statement"])
        evidence = data.get("evidence")
        if evidence:
            items = [evidence] if isinstance(evidence, str) else list(evidence)
            shown = items[:MAX_EVIDENCE]
            more = len(items) - len(shown)
            impact += " Evidence: " + "; ".join(shown) + (f"; and {more} more" if more else "")
    elif state.status == "fixed":
        impact = f"Fixed in {data['fixed_version']}"
    return VexStatement(
        vulnerability=state.vuln_id,
        aliases=frozenset(),
        products=(product_of(state),),
        status=state.status,
        justification=data.get("justification") if state.status == "not_affected" else None,
        impact_statement=impact,
        action_statement=action,
        timestamp=format_time(state.time) if state.time else None,
    )


def openvex_document(
    states: Sequence[AdvisoryState], *, author: str, timestamp: datetime | str | None = None
) -> dict[str, Any] | None:
    """The OpenVEX document of ``states`` (one image's), or ``None`` when none has a
    determination. A vulnerability whose newest determining event is a detection (new,
    or re-opened after a fix) is left out: that is news for the store, not a statement
    to sign, and an earlier ``fixed`` must not be repeated once it was re-opened."""
    decided = [
        s
        for s in states
        if s.determination is not None and s.determination.kind is not EventKind.DETECTION
    ]
    if not decided:
        return None
    if not author.strip():
        raise InputError("an OpenVEX document needs an author")
    statements = sorted(
        (_statement(s) for s in decided), key=lambda st: (st.vulnerability, st.products)
    )
    if timestamp is None:
        newest = max(s.time for s in decided if s.time is not None)
        stamp = format_time(newest)
    elif isinstance(timestamp, datetime):
        stamp = format_time(timestamp)
    else:
        stamp = timestamp
    return write_openvex(statements, author=author, timestamp=stamp)


def canonical(document: dict[str, Any]) -> bytes:
    """Canonical JSON bytes: sorted keys, no insignificant spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def openvex_for_image(
    store: AdvisoryStore,
    image: str,
    *,
    author: str = DEFAULT_AUTHOR,
    timestamp: datetime | str | None = None,
) -> bytes:
    """The OpenVEX v0.2.0 document (canonical JSON bytes) of ``image``'s determined
    vulnerabilities in ``store`` (an ``AdvisoryStore``); ``b""`` when there are none.

    ``timestamp`` is the document's time; ``None`` takes the newest determining event's,
    so that the same events always give the same bytes.
    """
    document = openvex_document(store.state(image), author=author, timestamp=timestamp)
    return canonical(document) if document is not None else b""
