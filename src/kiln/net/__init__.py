"""The only place that creates HTTP clients: timeouts, retries with backoff, size limits.

Every failure to talk to a server becomes ``TransportError`` (retryable); a server that
answers with content we must refuse is the caller's business (``RemoteContentError``).
"""

from kiln.net._http import (
    DEFAULT_MAX_BYTES,
    Fetcher,
    FetchResult,
    HttpFetcher,
    HttpStatusError,
    ResponseTooLargeError,
    RetryPolicy,
    http_client,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FetchResult",
    "Fetcher",
    "HttpFetcher",
    "HttpStatusError",
    "ResponseTooLargeError",
    "RetryPolicy",
    "http_client",
]
