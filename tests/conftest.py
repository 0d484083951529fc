"""Shared pytest configuration for kiln's tests."""

# The signed fixture Debian repository (tests/fixtures/debrepo.py): debrepo, debrepo_key...
pytest_plugins = ["fixtures.debrepo"]
