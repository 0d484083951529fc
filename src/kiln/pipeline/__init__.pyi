"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .archive import ArchiveAccess, KilnAptRepo
from .lock import CurrentLock, LockPolicy, LockResult, current_lock, lock_spec, locked_to_binary

__all__ = [
    "ArchiveAccess",
    "CurrentLock",
    "KilnAptRepo",
    "LockPolicy",
    "LockResult",
    "current_lock",
    "lock_spec",
    "locked_to_binary",
]
