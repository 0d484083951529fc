"""The distribution-spec operations on one registry: blobs, manifests, tags, referrers.

Every byte read is hashed while it streams and compared with the digest asked for;
anything else is refused with ``IntegrityError`` naming both digests. Uploads skip
blobs the registry has (HEAD), try a cross-repository mount when told where the blob
lives, and otherwise upload monolithically (POST + PUT) or, above a size threshold,
in chunks (POST + PATCH... + PUT).
See https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md
"""

from __future__ import annotations

import contextlib
import enum
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from kiln.errors import InputError, IntegrityError, RemoteContentError, TransportError
from kiln.jsonlimits import parse_json
from kiln.net import RetryPolicy
from kiln.oci.digest import Digest
from kiln.oci.model import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ImageIndex,
    Manifest,
    parse_manifest,
)
from kiln.registry._auth import CredentialSource, default_credentials
from kiln.registry._errors import RegistryNotFoundError
from kiln.registry._reference import validate_repository, validate_tag
from kiln.registry._session import (
    Body,
    FileSlice,
    RegistrySession,
    pull_scope,
    push_scope,
)

MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))
DEFAULT_CHUNK_THRESHOLD = 64 * 1024 * 1024
DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024


# The spec says a registry without the referrers API answers 404; some answer 400, 405
# or 406 instead (go-containerregistry falls back on those too).
_NO_REFERRERS_API = frozenset({400, 404, 405, 406})


class BlobOutcome(enum.Enum):
    """How a blob reached the registry."""

    EXISTED = "existed"
    MOUNTED = "mounted"
    UPLOADED = "uploaded"


@dataclass(frozen=True)
class TransferStats:
    """What a client sent and received so far (the publish benchmark reports these)."""

    blob_bytes_uploaded: int = 0
    blobs_uploaded: int = 0
    blobs_existing: int = 0
    blobs_mounted: int = 0
    manifest_bytes_uploaded: int = 0
    manifests_uploaded: int = 0
    bytes_downloaded: int = 0

    @property
    def bytes_uploaded(self) -> int:
        return self.blob_bytes_uploaded + self.manifest_bytes_uploaded

    def __sub__(self, other: TransferStats) -> TransferStats:
        return TransferStats(
            *(
                getattr(self, name) - getattr(other, name)
                for name in self.__dataclass_fields__  # field order is the positional order
            )
        )


@dataclass(frozen=True)
class PutManifestResult:
    """A stored manifest: its digest and the ``OCI-Subject`` the registry echoed, if any."""

    digest: Digest
    oci_subject: Digest | None


class _UploadLostError(Exception):
    """The registry forgot an upload session (404 on its location): start over."""


class RegistryClient:
    """Talk to one registry host. Construct with ``RegistryClient.for_host`` in production."""

    def __init__(
        self,
        session: RegistrySession,
        *,
        chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self._session = session
        self.registry = session.registry
        self._chunk_threshold = chunk_threshold
        self._chunk_size = chunk_size
        self._stats = TransferStats()
        self._stats_lock = threading.Lock()  # requests may run in threads

    @classmethod
    def for_host(
        cls,
        registry: str,
        *,
        credentials: CredentialSource | None = None,
        client: httpx.Client | None = None,
        insecure: bool = False,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> RegistryClient:
        """A client with default credentials (env, then Docker config) unless given."""
        session = RegistrySession(
            registry,
            credentials=credentials if credentials is not None else default_credentials(),
            client=client,
            insecure=insecure,
            retry=retry,
            sleep=sleep,
        )
        return cls(session, chunk_threshold=chunk_threshold, chunk_size=chunk_size)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> TransferStats:
        return self._stats

    def _count(self, **deltas: int) -> None:
        with self._stats_lock:
            fields = TransferStats.__dataclass_fields__
            values = {name: getattr(self._stats, name) for name in fields}
            for name, delta in deltas.items():
                values[name] += delta
            self._stats = TransferStats(**values)

    def _where(self, repository: str, thing: str) -> str:
        return f"repository {repository}, {thing}"

    # -- version check ----------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: the registry speaks the distribution API and lets us in."""
        with self._session.send(
            "GET", self._session.url("/v2/"), what="the API check /v2/", scopes=(), ok={200}
        ):
            pass

    # -- blobs ------------------------------------------------------------------------

    def blob_size(self, repository: str, digest: Digest) -> int | None:
        """The stored size of a blob (HEAD), or None when the repository lacks it."""
        validate_repository(repository)
        with self._session.send(
            "HEAD",
            self._session.url(f"/v2/{repository}/blobs/{digest}"),
            what=self._where(repository, f"blob {digest}"),
            scopes=(pull_scope(repository),),
            ok={200, 404},
        ) as response:
            if response.status_code == 404:
                return None
            length = response.headers.get("Content-Length", "")
            return int(length) if length.isdigit() else 0

    def push_blob(
        self,
        repository: str,
        descriptor: Descriptor,
        source: bytes | Path,
        *,
        mount_from: tuple[str, ...] = (),
    ) -> BlobOutcome:
        """Make ``descriptor``'s blob exist in ``repository``: skip, mount or upload it."""
        validate_repository(repository)
        digest = descriptor.digest
        actual = len(source) if isinstance(source, bytes) else source.stat().st_size
        if actual != descriptor.size:
            raise IntegrityError(
                f"registry {self.registry}: {self._where(repository, f'blob {digest}')}: "
                f"the local content is {actual} bytes, its descriptor says {descriptor.size}"
            )
        body: Body = source if isinstance(source, bytes) else FileSlice(source, 0, actual)
        if self.blob_size(repository, digest) is not None:
            self._count(blobs_existing=1)
            return BlobOutcome.EXISTED
        for origin in mount_from:
            if origin != repository and self._mount(repository, digest, origin):
                self._count(blobs_mounted=1)
                return BlobOutcome.MOUNTED
        for attempt in range(2):
            try:
                if descriptor.size > self._chunk_threshold and isinstance(body, FileSlice):
                    self._upload_chunked(repository, digest, body)
                else:
                    self._upload_monolithic(repository, digest, body)
            except _UploadLostError:
                if attempt:
                    raise TransportError(
                        f"registry {self.registry}: "
                        f"{self._where(repository, f'blob {digest}')}: the registry lost "
                        "the upload session twice"
                    ) from None
                continue
            break
        self._count(blobs_uploaded=1, blob_bytes_uploaded=descriptor.size)
        return BlobOutcome.UPLOADED

    def _mount(self, repository: str, digest: Digest, origin: str) -> bool:
        validate_repository(origin)
        with self._session.send(
            "POST",
            self._session.url(f"/v2/{repository}/blobs/uploads/"),
            params={"mount": str(digest), "from": origin},
            what=self._where(repository, f"mount of blob {digest} from {origin}"),
            scopes=(push_scope(repository), pull_scope(origin)),
            ok={201, 202},
        ) as response:
            # 202 opened an ordinary upload session instead; it is simply abandoned.
            mounted: bool = response.status_code == 201
        return mounted

    def _start_upload(self, repository: str, digest: Digest) -> tuple[str, int]:
        url = self._session.url(f"/v2/{repository}/blobs/uploads/")
        with self._session.send(
            "POST",
            url,
            what=self._where(repository, f"upload of blob {digest}"),
            scopes=(push_scope(repository),),
            ok={202},
        ) as response:
            location = self._location(response, repository, digest)
            minimum = response.headers.get("OCI-Chunk-Min-Length", "")
            return location, int(minimum) if minimum.isdigit() else 0

    def _location(self, response: httpx.Response, repository: str, digest: Digest) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RemoteContentError(
                f"registry {self.registry}: {self._where(repository, f'blob {digest}')}: "
                f"upload answer {response.status_code} has no Location header"
            )
        return str(response.url.join(location))

    def _finish_upload(self, repository: str, digest: Digest, location: str, body: Body) -> None:
        url = httpx.URL(location).copy_merge_params({"digest": str(digest)})
        try:
            with self._session.send(
                "PUT",
                str(url),
                what=self._where(repository, f"blob {digest}"),
                scopes=(push_scope(repository),),
                ok={201, 204},
                headers={"Content-Type": "application/octet-stream"},
                body=body,
            ):
                pass
        except RegistryNotFoundError as exc:
            raise _UploadLostError from exc

    def _upload_monolithic(self, repository: str, digest: Digest, body: Body) -> None:
        location, _ = self._start_upload(repository, digest)
        self._finish_upload(repository, digest, location, body)

    def _upload_chunked(self, repository: str, digest: Digest, body: FileSlice) -> None:
        location, minimum = self._start_upload(repository, digest)
        size = max(self._chunk_size, minimum)
        offset = 0
        while offset < body.length:
            length = min(size, body.length - offset)
            try:
                with self._session.send(
                    "PATCH",
                    location,
                    what=self._where(
                        repository, f"blob {digest} chunk {offset}-{offset + length - 1}"
                    ),
                    scopes=(push_scope(repository),),
                    ok={202},
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + length - 1}",
                    },
                    body=FileSlice(body.path, body.offset + offset, length),
                ) as response:
                    location = self._location(response, repository, digest)
            except RegistryNotFoundError as exc:
                raise _UploadLostError from exc
            offset += length
        self._finish_upload(repository, digest, location, b"")

    @contextlib.contextmanager
    def _open_blob(self, repository: str, digest: Digest) -> Iterator[httpx.Response]:
        with self._session.send(
            "GET",
            self._session.url(f"/v2/{repository}/blobs/{digest}"),
            what=self._where(repository, f"blob {digest}"),
            scopes=(pull_scope(repository),),
            ok={200},
        ) as response:
            yield response

    def fetch_blob(self, repository: str, digest: Digest, *, max_bytes: int) -> bytes:
        """A small blob's verified bytes (configs, attestation payloads)."""
        chunks: list[bytes] = []
        self._stream_blob(repository, digest, max_bytes, chunks.append, restart=chunks.clear)
        return b"".join(chunks)

    def pull_blob(
        self, repository: str, digest: Digest, destination: Path, *, size: int | None = None
    ) -> None:
        """Download a blob to ``destination``; it appears only once fully verified."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".partial-", dir=destination.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                self._stream_blob(
                    repository,
                    digest,
                    size if size is not None else 1 << 62,
                    out.write,
                    expected_size=size,
                    restart=lambda: (out.seek(0), out.truncate()),
                )
            os.replace(temporary, destination)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _stream_blob(
        self,
        repository: str,
        digest: Digest,
        max_bytes: int,
        sink: Callable[[bytes], object],
        *,
        expected_size: int | None = None,
        restart: Callable[[], object] | None = None,
    ) -> None:
        where = f"registry {self.registry}: {self._where(repository, f'blob {digest}')}"
        attempts = self._session.retry.attempts
        for attempt in range(attempts):
            hasher = digest.hasher()
            total = 0
            try:
                with self._open_blob(repository, digest) as response:
                    for chunk in response.iter_bytes():
                        total += len(chunk)
                        if total > max_bytes:
                            raise IntegrityError(
                                f"{where}: the registry sent more than the {max_bytes} "
                                "bytes expected",
                                details=[f"expected {digest}"],
                            )
                        hasher.update(chunk)
                        sink(chunk)
                break
            except httpx.TransportError as exc:
                if attempt + 1 == attempts or restart is None:
                    raise TransportError(
                        f"{where}: download interrupted: {type(exc).__name__}: {exc} "
                        f"(gave up after {attempt + 1} attempts)"
                    ) from exc
                restart()
                self._session.backoff(attempt)
        self._count(bytes_downloaded=total)
        if expected_size is not None and total != expected_size:
            raise IntegrityError(
                f"{where}: got {total} bytes, the descriptor says {expected_size}",
                details=[f"expected {digest}", f"got {digest.algorithm}:{hasher.hexdigest()}"],
            )
        if not digest.matches(hasher):
            raise IntegrityError(
                f"{where}: content does not match its digest: expected {digest}, "
                f"got {digest.algorithm}:{hasher.hexdigest()}",
                hint="the registry's storage is corrupt or something altered the content "
                "in transit; nothing was kept",
            )

    # -- manifests and tags -------------------------------------------------------------

    def get_manifest(self, repository: str, reference: Digest | str) -> Manifest:
        """Fetch a manifest or index by digest or tag; its bytes are verified.

        By digest: the body must hash to it. By tag: the body's sha256 is the digest,
        and a ``Docker-Content-Digest`` header that disagrees is refused.
        """
        validate_repository(repository)
        if isinstance(reference, str):
            validate_tag(reference)
        label = f"manifest {reference}"
        where = f"registry {self.registry}: {self._where(repository, label)}"
        response, data = self._session.read(
            "GET",
            self._session.url(f"/v2/{repository}/manifests/{reference}"),
            what=self._where(repository, label),
            scopes=(pull_scope(repository),),
            ok={200},
            limit=MAX_MANIFEST_BYTES,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        media_type = response.headers.get("Content-Type")
        claimed = response.headers.get("Docker-Content-Digest")
        self._count(bytes_downloaded=len(data))
        algorithm = reference.algorithm if isinstance(reference, Digest) else "sha256"
        actual = Digest.of(data, algorithm)
        if isinstance(reference, Digest) and actual != reference:
            raise IntegrityError(
                f"{where}: content does not match its digest: expected {reference}, got {actual}",
                hint="the registry served different content than the digest names; "
                "it is corrupt or hostile",
            )
        if claimed:
            try:
                claimed_digest = Digest.parse(claimed, what="Docker-Content-Digest header")
            except InputError as exc:
                raise RemoteContentError(f"{where}: {exc.message}") from exc
            recomputed = Digest.of(data, claimed_digest.algorithm)
            if claimed_digest != recomputed:
                raise IntegrityError(
                    f"{where}: content does not match the digest the registry claims: "
                    f"expected {claimed_digest}, got {recomputed}"
                )
        return parse_manifest(data, media_type, actual, where=where)

    def manifest_exists(self, repository: str, digest: Digest) -> bool:
        validate_repository(repository)
        with self._session.send(
            "HEAD",
            self._session.url(f"/v2/{repository}/manifests/{digest}"),
            what=self._where(repository, f"manifest {digest}"),
            scopes=(pull_scope(repository),),
            ok={200, 404},
            headers={"Accept": MANIFEST_ACCEPT},
        ) as response:
            exists: bool = response.status_code == 200
        return exists

    def put_manifest(
        self, repository: str, manifest: Manifest, reference: Digest | str | None = None
    ) -> PutManifestResult:
        """Store a manifest under its digest (default) or a tag."""
        validate_repository(repository)
        target = manifest.digest if reference is None else reference
        if isinstance(target, str):
            validate_tag(target)
        elif target != manifest.digest:
            raise IntegrityError(
                f"registry {self.registry}: {self._where(repository, f'manifest {target}')}: "
                f"the manifest to push hashes to {manifest.digest}"
            )
        label = f"manifest {target}" if isinstance(target, Digest) else f"tag {target}"
        where = self._where(repository, label)
        with self._session.send(
            "PUT",
            self._session.url(f"/v2/{repository}/manifests/{target}"),
            what=where,
            scopes=(push_scope(repository),),
            ok={201},
            headers={"Content-Type": manifest.media_type},
            body=manifest.data,
        ) as response:
            stored = response.headers.get("Docker-Content-Digest")
            subject = response.headers.get("OCI-Subject")
        self._count(manifests_uploaded=1, manifest_bytes_uploaded=len(manifest.data))
        if stored and stored != str(manifest.digest) and stored.startswith("sha256:"):
            raise IntegrityError(
                f"registry {self.registry}: {where}: stored digest differs from what was "
                f"sent: expected {manifest.digest}, got {stored}"
            )
        return PutManifestResult(
            manifest.digest, Digest.parse(subject, what="OCI-Subject header") if subject else None
        )

    def tag(self, repository: str, manifest: Manifest, tag: str) -> None:
        """Point ``tag`` at a manifest already stored by digest."""
        self.put_manifest(repository, manifest, tag)

    def list_tags(self, repository: str) -> tuple[str, ...]:
        """The repository's tags (follows ``Link`` pagination)."""
        validate_repository(repository)
        tags: list[str] = []
        url: str | None = self._session.url(f"/v2/{repository}/tags/list")
        while url:
            response, data = self._session.read(
                "GET",
                url,
                what=self._where(repository, "tag list"),
                scopes=(pull_scope(repository),),
                ok={200, 404},
                limit=MAX_MANIFEST_BYTES,
            )
            if response.status_code == 404:
                return ()
            url = _next_link(response)
            try:
                document = parse_json(
                    data,
                    where=f"registry {self.registry}: {self._where(repository, 'tag list')}",
                    max_bytes=MAX_MANIFEST_BYTES,
                    error=RemoteContentError,
                )
                tags.extend(str(tag) for tag in document.get("tags") or ())
            except (RemoteContentError, AttributeError, TypeError) as exc:
                raise RemoteContentError(
                    f"registry {self.registry}: {self._where(repository, 'tag list')}: "
                    "malformed answer"
                ) from exc
        return tuple(tags)

    # -- referrers API --------------------------------------------------------------------

    def referrers_api(
        self, repository: str, subject: Digest, *, artifact_type: str | None = None
    ) -> tuple[Descriptor, ...] | None:
        """``GET /v2/<name>/referrers/<digest>``; None when the registry lacks the API."""
        validate_repository(repository)
        where = self._where(repository, f"referrers of {subject}")
        url: str | None = self._session.url(f"/v2/{repository}/referrers/{subject}")
        params = {"artifactType": artifact_type} if artifact_type else None
        found: list[Descriptor] = []
        filtered = False
        while url:
            response, data = self._session.read(
                "GET",
                url,
                what=where,
                scopes=(pull_scope(repository),),
                ok={200, *_NO_REFERRERS_API},
                limit=MAX_MANIFEST_BYTES,
                headers={"Accept": OCI_INDEX},
                params=params,
            )
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            if response.status_code != 200 or content_type != OCI_INDEX:
                if found:
                    raise RemoteContentError(
                        f"registry {self.registry}: {where}: a later page is not an index"
                    )
                return None
            filtered = filtered or "artifactType" in response.headers.get("OCI-Filters-Applied", "")
            url = _next_link(response)
            params = None  # the next link carries its own query
            index = parse_manifest(
                data, OCI_INDEX, Digest.of(data), where=f"registry {self.registry}: {where}"
            ).parsed
            if not isinstance(index, ImageIndex):
                raise RemoteContentError(f"registry {self.registry}: {where}: not an index")
            found.extend(index.manifests)
        if artifact_type and not filtered:
            found = [d for d in found if d.artifact_type == artifact_type]
        return tuple(found)


def _next_link(response: httpx.Response) -> str | None:
    """The ``Link: <url>; rel="next"`` target, resolved against the request URL."""
    link = response.links.get("next")
    if not link or "url" not in link:
        return None
    return str(response.url.join(link["url"]))
