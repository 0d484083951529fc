"""Transitional old names of ``kiln.pipeline.archive`` (issue 14 item 7 renamed them).

``Repository`` is now ``ArchiveAccess`` and ``KilnRepo`` is ``KilnAptRepo``. Code
written before the rename imports these; new code imports ``kiln.pipeline.archive``.
Delete this module once ``grep -rn "pipeline.repo\\b\\|KilnRepo\\b" src tests`` finds
no caller.
"""

from kiln.pipeline.archive import KEYRING_NAME, KILN_SUITE, ArchiveAccess, KilnAptRepo

Repository = ArchiveAccess
KilnRepo = KilnAptRepo

__all__ = ["KEYRING_NAME", "KILN_SUITE", "KilnRepo", "Repository"]
