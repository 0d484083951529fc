"""KILN_STRICT_SKIPS: a skip for a missing tool fails in CI; other skips stay skips."""

from __future__ import annotations

import pytest

from fixtures.skips import missing_tool_reason


def _skip(reason: str) -> pytest.TestReport:
    return pytest.TestReport(
        "t.py::test", ("t.py", 1, "test"), {}, "skipped", ("t.py", 1, f"Skipped: {reason}"), "call"
    )


@pytest.mark.parametrize(
    "reason",
    [
        "bubblewrap is not installed",
        "dpkg-deb and gcc are needed",
        "node and npm are needed for the Sigstore JS peer check",
        "shared vulnerability data not found at /x (set KILN_VULNDATA)",
        "needs glibc's ldconfig",
        "no JDK keytool on this machine",
    ],
)
def test_a_missing_tool_is_recognised(reason: str) -> None:
    assert missing_tool_reason(_skip(reason)) is not None


@pytest.mark.parametrize(
    "reason",
    ["port 18080 is in use on the host", "emulates arm64 on amd64", "demo is not built for s390x"],
)
def test_other_skips_stay_skips(reason: str) -> None:
    assert missing_tool_reason(_skip(reason)) is None


def test_a_passed_test_is_not_a_skip() -> None:
    passed = pytest.TestReport("t.py::test", ("t.py", 1, "test"), {}, "passed", None, "call")
    assert missing_tool_reason(passed) is None
