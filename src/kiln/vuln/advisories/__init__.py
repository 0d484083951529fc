"""kiln's advisories: an append-only event log per (image, vulnerability) and its exports.

``AdvisoryStore`` (the ``advisory_events`` table of kiln's database) appends and reads
``AdvisoryEvent``s; ``state`` derives where each vulnerability stands; ``openvex_for_image``
writes an image's OpenVEX; ``osv`` exports kiln's own fixes as OSV records. See
docs/advisories.md.
"""

from kiln.vuln.advisories.events import AdvisoryEvent, EventKind
from kiln.vuln.advisories.openvex import openvex_for_image
from kiln.vuln.advisories.state import AdvisoryState
from kiln.vuln.advisories.store import AdvisoryStore

__all__ = ["AdvisoryEvent", "AdvisoryState", "AdvisoryStore", "EventKind", "openvex_for_image"]
