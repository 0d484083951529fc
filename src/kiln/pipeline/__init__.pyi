"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from .lock import LockResult, lock_spec, locked_to_binary
from .repo import Repository

__all__ = ["LockResult", "Repository", "lock_spec", "locked_to_binary"]
