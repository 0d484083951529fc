"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from ._http import (
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
