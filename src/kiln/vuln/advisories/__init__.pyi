"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .events import AdvisoryEvent, EventKind
from .openvex import openvex_for_image
from .state import AdvisoryState
from .store import AdvisoryStore

__all__ = ["AdvisoryEvent", "AdvisoryState", "AdvisoryStore", "EventKind", "openvex_for_image"]
