"""``file://`` URLs next to HTTP: a repository on local disk is read like a mirror.

kiln's own apt repository (``kiln repo publish DIR``) is a directory any HTTP server can
serve; ``SchemeFetcher`` lets the repository client read it in place as
``file:///path/to/repo`` with the same contract as ``HttpFetcher``: a missing file is
a 404 (so ``InRelease`` falls back to ``Release`` + ``Release.gpg`` as on a mirror),
the size bound holds, and nothing is trusted for being local: every byte is still
checked against the signed Release by the caller.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from kiln.net._http import (
    DEFAULT_MAX_BYTES,
    Fetcher,
    FetchResult,
    HttpStatusError,
    ResponseTooLargeError,
)


def path_of_file_url(url: str) -> Path:
    """The local path of a ``file://`` URL (no host part: ``file:///srv/repo``)."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise HttpStatusError(f"{url}: only file:///absolute/path URLs are read", status=400)
    return Path(unquote(parts.path))


class FileFetcher:
    """A ``Fetcher`` for ``file://`` URLs."""

    def fetch(
        self,
        url: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> FetchResult:
        del etag, last_modified  # a local read is as cheap as a conditional request
        path = path_of_file_url(url)
        try:
            with path.open("rb") as handle:
                body = handle.read(max_bytes + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise HttpStatusError(f"{url}: no such file", status=404) from None
        except PermissionError as exc:
            raise HttpStatusError(f"{url}: {exc.strerror}", status=403) from exc
        if len(body) > max_bytes:
            raise ResponseTooLargeError(f"{url}: larger than {max_bytes} bytes", limit=max_bytes)
        return FetchResult(url, 200, body)


class SchemeFetcher:
    """``file://`` URLs from disk, everything else through ``http`` (an ``HttpFetcher``)."""

    def __init__(self, http: Fetcher, file: Fetcher | None = None) -> None:
        self._http = http
        self._file = file or FileFetcher()

    def fetch(
        self,
        url: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> FetchResult:
        target = self._file if url.startswith("file:") else self._http
        return target.fetch(url, max_bytes=max_bytes, etag=etag, last_modified=last_modified)
