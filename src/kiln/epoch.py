"""``SOURCE_DATE_EPOCH`` (https://reproducible-builds.org/specs/source-date-epoch/), read once.

Every timestamp kiln writes into an image, an SBOM or a repository index comes from it
when it is set, so that the same inputs give the same bytes. A value that is not a
whole, non-negative number of seconds is an input error naming the variable, never a
traceback (``int("x")``) or a silently different date.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from kiln.errors import InputError

#: the largest epoch accepted: 9999-12-31T23:59:59Z, the last second a datetime can hold
MAX_EPOCH = 253_402_300_799


def source_date_epoch(environ: Mapping[str, str] = os.environ) -> int | None:
    """``$SOURCE_DATE_EPOCH`` as seconds since 1970, or None when it is unset or empty."""
    text = environ.get("SOURCE_DATE_EPOCH", "")
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_EPOCH:
        raise InputError(
            f"SOURCE_DATE_EPOCH={text!r} is not a number of seconds since 1970",
            hint="set it to a whole number such as 1767225600, or unset it",
        )
    return int(text)
