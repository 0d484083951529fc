"""Registry tests run against a real docker-registry (see tests/fixtures/registry.py)."""

from fixtures.registry import basic_auth_registry, registry

__all__ = ["basic_auth_registry", "registry"]
