"""kiln: minimal, hardened, signed container base images built from Debian packages."""

__version__ = "0.1.0"
