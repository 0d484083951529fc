"""The only place that creates HTTP clients: timeouts, retries with backoff, size limits.

Every failure to talk to a server becomes ``TransportError`` (retryable); a server that
answers with content we must refuse is the caller's business (``RemoteContentError``).
"""

import lazy_loader

# Submodules load on first use (see __init__.pyi for what is exported): a command
# pays only for the modules it touches.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
