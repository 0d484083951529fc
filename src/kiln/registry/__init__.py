"""OCI distribution client: references, auth, blob and manifest transfer, referrers.

Implements the client side of the OCI distribution spec v1.1
(https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md): pull with
every byte verified against its digest, push content before names, referrers with the
tag-schema fallback, and Docker-compatible credentials.
"""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): a command
# pays only for the modules it touches.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
