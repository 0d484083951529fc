"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .lock import CurrentLock, LockPolicy, LockResult, current_lock, lock_spec, locked_to_binary
from .repo import Repository

__all__ = [
    "CurrentLock",
    "LockPolicy",
    "LockResult",
    "Repository",
    "current_lock",
    "lock_spec",
    "locked_to_binary",
]
