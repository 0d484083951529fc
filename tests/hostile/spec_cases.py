"""Shared by the hostile spec tests: a spec case and the check that it fails where it should."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.spec.load import SpecError, parse_spec

#: The valid start every case's body is appended to (two lines).
HEAD = "name: demo\npackages: [base-files]\n"

#: A case: (spec body after HEAD, message fragment, field path, line in the file).
Case = tuple[str, str, str, int]


def assert_refused_at(case: Case) -> None:
    """The spec ``HEAD + body`` is refused with the message at the field and line."""
    body, message, field, line = case
    with pytest.raises(SpecError) as caught:
        parse_spec((HEAD + body).encode(), Path("demo.yaml"))
    error = caught.value
    assert message in error.message
    assert error.location is not None
    assert (error.location.field, error.location.line) == (field, line)
