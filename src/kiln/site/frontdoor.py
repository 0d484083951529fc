"""The registry front door: the OCI distribution *pull* API over the store, read-only.

``/v2/`` answers the API check; ``/v2/kiln/<name>/manifests/<tag|digest>`` (GET, HEAD),
``/blobs/<digest>`` (GET, HEAD, one ``Range``), ``/tags/list`` (``n`` and ``last``
paging) and ``/referrers/<digest>`` (``artifactType`` filter) serve the layouts and
their attestations (``kiln.site.store``). Names, tags and digests are checked against
the distribution spec's grammars before any lookup, so nothing a client sends reaches
a path; blobs are hashed before they are first served. Every other method is 405.
Spec: https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from kiln.errors import KilnError
from kiln.registry import OCI_INDEX, Digest, ImageIndex
from kiln.site.store import DIGEST_PATTERN, PREFIX, TAG_PATTERN, Repository, Store, valid_name

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
_ACTIONS = ("manifests", "blobs", "tags", "referrers")
MAX_TAGS_PAGE = 1000


def error(status: int, code: str, message: str, *, head: bool = False) -> Response:
    """A distribution-spec error body (``{"errors": [...]}``)."""
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    return Response(
        b"" if head else body,
        status_code=status,
        media_type="application/json",
        headers={**API_VERSION, "Content-Length": str(len(body))},
    )


def _split(path: str) -> tuple[str, str, str] | None:
    """``kiln/a/b/manifests/x`` -> (``kiln/a/b``, ``manifests``, ``x``)."""
    parts = path.split("/")
    for index in range(len(parts) - 2, 0, -1):
        if parts[index] in _ACTIONS:
            return "/".join(parts[:index]), parts[index], "/".join(parts[index + 1 :])
    return None


class FrontDoor:
    """The ``/v2`` routes over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def routes(self) -> list[Route]:
        """The ``/v2`` routes."""
        return [
            Route("/v2/", self.base, methods=["GET", "HEAD"]),
            Route("/v2/{path:path}", self.dispatch, methods=["GET", "HEAD"]),
        ]

    async def base(self, request: Request) -> Response:
        """The API version check: 200 and ``{}``."""
        return Response(b"{}", media_type="application/json", headers=API_VERSION)

    def _repository(self, name: str) -> Repository | None:
        if not name.startswith(f"{PREFIX}/"):
            return None
        return self.store.repositories().get(name.removeprefix(f"{PREFIX}/"))

    async def dispatch(self, request: Request) -> Response:
        """Route one API request. Manifests, tags and referrers are in memory and
        answered on the event loop; a blob's first hash runs in the thread pool, so it
        never stalls the other requests."""
        head = request.method == "HEAD"
        split = _split(request.path_params["path"])
        if split is None:
            return error(404, "NOT_FOUND", "not a distribution API path", head=head)
        name, action, rest = split
        if not valid_name(name):
            return error(400, "NAME_INVALID", "invalid repository name", head=head)
        try:
            repository = self._repository(name)
            if repository is None:
                return error(404, "NAME_UNKNOWN", f"repository {name} is not served", head=head)
            if action == "manifests":
                return self._manifest(repository, rest, head)
            if action == "blobs":
                return await self._blob(request, repository, rest, head)
            if action == "tags" and rest == "list":
                return self._tags(request, repository, head)
            if action == "referrers":
                return self._referrers(request, repository, rest, head)
        except KilnError as exc:
            return error(500, "UNKNOWN", exc.message, head=head)
        except OSError as exc:  # a layout changed under us (a rebuild swapped it in)
            return error(500, "UNKNOWN", f"the store could not be read: {exc.strerror}", head=head)
        return error(404, "NOT_FOUND", "not a distribution API path", head=head)

    def _manifest(self, repository: Repository, reference: str, head: bool) -> Response:
        if not (DIGEST_PATTERN.fullmatch(reference) or TAG_PATTERN.fullmatch(reference)):
            return error(400, "MANIFEST_INVALID", "invalid tag or digest", head=head)
        manifest = repository.manifest(reference)
        if manifest is None:
            code = "MANIFEST_UNKNOWN"
            return error(404, code, f"{repository.path}:{reference} is not known", head=head)
        headers = {
            **API_VERSION,
            "Docker-Content-Digest": str(manifest.digest),
            "Content-Length": str(len(manifest.data)),
            "ETag": f'"{manifest.digest}"',
        }
        return Response(
            b"" if head else manifest.data, media_type=manifest.media_type, headers=headers
        )

    async def _blob(
        self, request: Request, repository: Repository, text: str, head: bool
    ) -> Response:
        if not DIGEST_PATTERN.fullmatch(text):
            return error(400, "DIGEST_INVALID", "invalid digest", head=head)
        digest = Digest.parse(text)
        found = repository.blob(digest)
        if found is None:
            return error(404, "BLOB_UNKNOWN", f"blob {digest} is not known", head=head)
        _, content = found
        headers = {**API_VERSION, "Docker-Content-Digest": str(digest), "ETag": f'"{digest}"'}
        if isinstance(content, bytes):
            return _bytes_response(request, content, headers, head)
        path = await run_in_threadpool(self.store.verified_blob, content, digest)
        return FileResponse(path, media_type="application/octet-stream", headers=headers)

    def _tags(self, request: Request, repository: Repository, head: bool) -> Response:
        tags = sorted(repository.tags())
        last = request.query_params.get("last")
        if last:
            tags = [t for t in tags if t > last]
        count = request.query_params.get("n")
        headers = dict(API_VERSION)
        if count is not None:
            if not count.isdigit() or int(count) > MAX_TAGS_PAGE:
                return error(400, "PAGINATION_NUMBER_INVALID", "n must be 0..1000", head=head)
            if len(tags) > int(count):
                tags = tags[: int(count)]
                headers["Link"] = (
                    f'</v2/{repository.path}/tags/list?n={count}&last={tags[-1]}>; rel="next"'
                    if tags
                    else ""
                )
        body = json.dumps({"name": repository.path, "tags": tags}).encode()
        return Response(b"" if head else body, media_type="application/json", headers=headers)

    def _referrers(
        self, request: Request, repository: Repository, text: str, head: bool
    ) -> Response:
        if not DIGEST_PATTERN.fullmatch(text):
            return error(400, "DIGEST_INVALID", "invalid digest", head=head)
        found = repository.referrers(Digest.parse(text))
        headers = dict(API_VERSION)
        wanted = request.query_params.get("artifactType")
        if wanted:
            found = [d for d in found if d.artifact_type == wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        index = ImageIndex(schema_version=2, media_type=OCI_INDEX, manifests=tuple(found))
        body = json.dumps(index.to_json(), sort_keys=True).encode()
        return Response(b"" if head else body, media_type=OCI_INDEX, headers=headers)


def _bytes_response(
    request: Request, content: bytes, headers: dict[str, str], head: bool
) -> Response:
    """Small in-memory blobs (attestation bundles), with a single byte range."""
    status, body, extra = 200, content, {"Accept-Ranges": "bytes"}
    wanted = request.headers.get("range")
    if wanted:
        span = parse_range(wanted, len(content))
        if span is None:
            return Response(
                status_code=416, headers={**headers, "Content-Range": f"bytes */{len(content)}"}
            )
        start, end = span
        status, body = 206, content[start : end + 1]
        extra["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
    all_headers: dict[str, Any] = {**headers, **extra, "Content-Length": str(len(body))}
    return Response(
        b"" if head else body,
        status_code=status,
        media_type="application/octet-stream",
        headers=all_headers,
    )


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range within ``size``, else None."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:
        length = int(last)
        if length == 0:
            return None
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end
