"""Stages that join the pure cores to their I/O edges: lock a spec, fetch its packages."""

from kiln.pipeline.lock import (
    LockResult,
    lock_spec,
    locked_to_binary,
)
from kiln.pipeline.repo import Repository

__all__ = ["LockResult", "Repository", "lock_spec", "locked_to_binary"]
