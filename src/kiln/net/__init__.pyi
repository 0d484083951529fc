"""Type stub of the lazily loaded package (lazy_loader reads its imports)."""

from ._file import FileFetcher, SchemeFetcher, path_of_file_url
from ._hosts import is_loopback_host
from ._http import (
    DEFAULT_MAX_BYTES,
    RETRY_STATUS,
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
    "RETRY_STATUS",
    "FetchResult",
    "Fetcher",
    "FileFetcher",
    "HttpFetcher",
    "HttpStatusError",
    "ResponseTooLargeError",
    "RetryPolicy",
    "SchemeFetcher",
    "http_client",
    "is_loopback_host",
    "path_of_file_url",
]
