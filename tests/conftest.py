"""Shared pytest configuration for kiln's tests.

``KILN_STRICT_SKIPS=1`` (set by ``.ci/run``) turns a skip because a tool or a file is
missing ("... is not installed", "... is needed", "... not found") into a failure: on CI
every tool is installed by ``make setup``, so such a skip means an install step is
missing and must not pass unseen. Skips for another reason (another architecture, a
port already in use) stay skips.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

# The signed fixture Debian repository (tests/fixtures/debrepo.py): debrepo, debrepo_key...
pytest_plugins = ["fixtures.debrepo"]

from fixtures.skips import missing_tool_reason  # noqa: E402 (after the plugin list)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("KILN_STRICT_SKIPS") != "1" or hasattr(report, "wasxfail"):
        return
    reason = missing_tool_reason(report)
    if reason is not None:
        report.outcome = "failed"
        report.longrepr = f"KILN_STRICT_SKIPS: skipped because {reason!r}; install it in make setup"
