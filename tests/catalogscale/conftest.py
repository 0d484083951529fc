"""The real Temporal dev server fixture of the factory's tests, shared here."""

from factory.conftest import temporal

__all__ = ["temporal"]
