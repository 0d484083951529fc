"""Stages that join the pure cores to their I/O edges: lock a spec, fetch its packages."""

from kiln.pipeline.lock import (
    LockResult,
    check_lock,
    lock_spec,
    locked_to_binary,
)
from kiln.pipeline.repo import Repository

__all__ = ["LockResult", "Repository", "check_lock", "lock_spec", "locked_to_binary"]
