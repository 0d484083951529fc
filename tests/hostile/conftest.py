"""Hypothesis profiles shared by the hostile-input tests and fuzzers.

``ci`` (the default) keeps each fuzz test to a few seconds so ``make test`` runs them;
``long`` is selected with ``KILN_FUZZ=long`` (or ``--hypothesis-profile=long``) for
``make fuzz``; ``KILN_FUZZ_EXAMPLES`` sets its cases per test (default 20,000).
A fuzz test passes only when every exception it sees is a ``KilnError``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("KILN_FUZZ_EXAMPLES", "20000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)


def pytest_configure(config: pytest.Config) -> None:
    """Load ``ci`` or ``long``, unless ``--hypothesis-profile`` named another already."""
    if config.getoption("hypothesis_profile", None) is None:
        settings.load_profile("long" if os.environ.get("KILN_FUZZ") == "long" else "ci")
