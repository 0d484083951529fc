"""The sandbox tests reuse the assembly fixtures (.debs and a static test binary)."""

from assemble.conftest import make_deb, static_hello

__all__ = ["make_deb", "static_hello"]
