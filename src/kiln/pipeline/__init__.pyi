"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .lock import CurrentLock, LockPolicy, LockResult, current_lock, lock_spec, locked_to_binary
from .archive import ArchiveAccess, KilnAptRepo
from .repo import Repository  # transitional old name of ArchiveAccess

__all__ = [
    "ArchiveAccess",
    "CurrentLock",
    "KilnAptRepo",
    "LockPolicy",
    "LockResult",
    "Repository",
    "current_lock",
    "lock_spec",
    "locked_to_binary",
]
