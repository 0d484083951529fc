"""Inventory tests pull from a real docker-registry (see tests/fixtures/registry.py)."""

from fixtures.registry import registry

__all__ = ["registry"]
