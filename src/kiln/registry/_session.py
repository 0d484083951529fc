"""One registry host's HTTP conversation: scheme choice, auth challenges, retries.

Loopback registries (127.0.0.0/8, ::1, localhost) are spoken to over plain HTTP, as
docker and podman do; any other host over HTTPS unless the caller says ``insecure``.
A ``401`` is answered once per request by following its challenge (Basic, or the
Bearer token flow of https://distribution.github.io/distribution/spec/auth/token/);
5xx answers, timeouts and connection resets are retried with backoff. Request bodies
are bytes or file slices, so every retry can send them again from the start.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from kiln.errors import RemoteContentError, TransportError
from kiln.jsonlimits import parse_json
from kiln.net import RETRY_STATUS, RetryPolicy, http_client
from kiln.registry._auth import (
    Anonymous,
    Challenge,
    Credentials,
    CredentialSource,
    TokenResponse,
    parse_challenge,
)
from kiln.registry._errors import RegistryAuthError, RegistryNotFoundError, RegistryRequestError
from kiln.registry._reference import is_loopback

_ERROR_BODY_LIMIT = 64 * 1024
_MAX_TOKEN_ANSWER_BYTES = 1024 * 1024  # a bearer token and its expiry
_READ_CHUNK = 1024 * 1024


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


@dataclass(frozen=True)
class FileSlice:
    """``length`` bytes of a file from ``offset``: an upload body that can be resent."""

    path: Path
    offset: int
    length: int

    def chunks(self) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            left = self.length
            while left > 0:
                chunk = handle.read(min(_READ_CHUNK, left))
                if not chunk:
                    raise TransportError(f"{self.path} ended {left} bytes early while uploading")
                left -= len(chunk)
                yield chunk


Body = bytes | FileSlice


def body_length(body: Body) -> int:
    return len(body) if isinstance(body, bytes) else body.length


class _Authenticator:
    """Holds what a registry's challenges taught us: Basic, or Bearer tokens per scope set."""

    def __init__(
        self, session: RegistrySession, credentials: CredentialSource, *, insecure: bool
    ) -> None:
        self._session = session
        self._source = credentials
        self._insecure = insecure
        self._looked_up = False
        self._credentials: Credentials | None = None
        self._basic = False
        self._bearer: Challenge | None = None
        self._tokens: dict[frozenset[str], str] = {}
        # requests may run in threads (kiln verify fetches bundles in parallel): what
        # the challenges taught is read and changed under this lock
        self._lock = threading.RLock()

    @property
    def credentials(self) -> Credentials | None:
        with self._lock:
            if not self._looked_up:
                self._credentials = self._source.lookup(self._session.registry)
                self._looked_up = True
            return self._credentials

    def header(self, scopes: tuple[str, ...]) -> str | None:
        with self._lock:
            return self._header(scopes)

    def _header(self, scopes: tuple[str, ...]) -> str | None:
        credentials = self.credentials
        if self._basic and credentials is not None:
            pair = f"{credentials.username}:{credentials.password}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        if self._bearer is not None:
            key = frozenset(scopes)
            token = self._tokens.get(key)
            if token is None:
                token = self._fetch_token(self._bearer, scopes)
                self._tokens[key] = token
            return f"Bearer {token}"
        return None

    def refused(self, status: int, what: str) -> RegistryAuthError:
        registry = self._session.registry
        credentials = self.credentials
        if credentials is None:
            return RegistryAuthError(
                f"registry {registry} requires credentials for {what} ({status})",
                hint="set KILN_REGISTRY_USERNAME and KILN_REGISTRY_PASSWORD, or `docker login` "
                "/ `podman login` to this registry",
            )
        return RegistryAuthError(
            f"registry {registry} rejected the credentials for user {credentials.username} "
            f"({status}) for {what}",
            hint="check the user name and password (KILN_REGISTRY_USERNAME/PASSWORD, podman's "
            "auth.json or ~/.docker/config.json) and that the user may access this repository",
        )

    def challenged(
        self, response: httpx.Response, scopes: tuple[str, ...], what: str, *, sent: str | None
    ) -> None:
        """Learn from a 401 so the next attempt carries the right Authorization.

        ``sent`` is the Authorization the refused request carried: a request sent before
        another thread learnt the challenge is retried, not reported as refused.
        """
        with self._lock:
            self._challenged(response, scopes, what, sent)

    def _challenged(
        self, response: httpx.Response, scopes: tuple[str, ...], what: str, sent: str | None
    ) -> None:
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None or challenge.scheme not in {"basic", "bearer"}:
            raise RegistryAuthError(
                f"registry {self._session.registry} answered 401 for {what} without a "
                f"Basic or Bearer challenge ({response.headers.get('WWW-Authenticate')!r})"
            )
        if challenge.scheme == "basic":
            if self.credentials is None or (self._basic and sent is not None):
                raise self.refused(401, what)
            if self._basic:
                return  # learnt while this request was on its way: retry with it
            self._check_safe_to_send(self._session.base_url)
            self._basic = True
            return
        self._bearer = challenge
        key = frozenset(scopes)
        if sent is None or sent == f"Bearer {self._tokens.get(key)}":
            self._tokens.pop(key, None)  # else another request already fetched a new one

    def _check_safe_to_send(self, url: str) -> None:
        target = httpx.URL(url)
        if (
            self.credentials is not None
            and target.scheme != "https"
            and not self._insecure
            and not is_loopback(target.netloc.decode("ascii"))
        ):
            raise RegistryAuthError(
                f"registry {self._session.registry} asks for credentials over plain HTTP at {url}",
                hint="use HTTPS, or pass insecure=True if this network is trusted",
            )

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> str:
        registry = self._session.registry
        realm = challenge.params.get("realm")
        if not realm or not realm.startswith(("http://", "https://")):
            raise RegistryAuthError(
                f"registry {registry} sent a Bearer challenge without an http(s) realm: {realm!r}"
            )
        self._check_safe_to_send(realm)
        wanted = list(scopes)
        for scope in challenge.params.get("scope", "").split():
            if scope not in wanted:
                wanted.append(scope)
        params: list[tuple[str, str]] = []
        if "service" in challenge.params:
            params.append(("service", challenge.params["service"]))
        params.extend(("scope", scope) for scope in wanted)
        credentials = self.credentials
        auth = (credentials.username, credentials.password) if credentials else None
        response = self._session.plain_get(realm, params=params, auth=auth)
        if response.status_code in {401, 403}:
            error = self.refused(response.status_code, f"a token for {' '.join(wanted)}")
            error.details.append(f"token service: {realm}")
            raise error
        if response.status_code != 200:
            raise TransportError(
                f"registry {registry}: token service {realm} answered {response.status_code}"
            )
        try:
            document = parse_json(
                response.content,
                where=f"token service {realm}",
                max_bytes=_MAX_TOKEN_ANSWER_BYTES,
                error=RemoteContentError,
            )
            token = TokenResponse.model_validate(document).value
        except (RemoteContentError, ValueError, TypeError) as exc:
            raise RegistryAuthError(
                f"registry {registry}: token service {realm} sent a malformed answer"
            ) from exc
        if not token:
            raise RegistryAuthError(
                f"registry {registry}: token service {realm} answered without a token"
            )
        return token


class RegistrySession:
    """HTTP requests to one registry with auth and retries; every failure names ``what``."""

    def __init__(
        self,
        registry: str,
        *,
        credentials: CredentialSource | None = None,
        client: httpx.Client | None = None,
        insecure: bool = False,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        scheme = "http" if insecure or is_loopback(registry) else "https"
        self.base_url = f"{scheme}://{registry}"
        self._client = client or http_client()
        self._owns_client = client is None
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._auth = _Authenticator(self, credentials or Anonymous(), insecure=insecure)

    @property
    def retry(self) -> RetryPolicy:
        return self._retry

    def backoff(self, attempt: int) -> None:
        """Wait before retry number ``attempt + 1`` (the injected sleep)."""
        self._sleep(self._retry.delay(attempt))

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def plain_get(
        self, url: str, *, params: list[tuple[str, str]], auth: tuple[str, str] | None
    ) -> httpx.Response:
        """A GET without registry auth (token service), retried like any other request."""
        last: Exception | None = None
        for attempt in range(self._retry.attempts):
            if attempt:
                self._sleep(self._retry.delay(attempt - 1))
            try:
                response = self._client.get(url, params=httpx.QueryParams(tuple(params)), auth=auth)
            except httpx.TransportError as exc:
                last = exc
                continue
            if response.status_code not in RETRY_STATUS:
                return response
            last = None
        raise TransportError(
            f"registry {self.registry}: token service {url} unreachable after "
            f"{self._retry.attempts} attempts: {last or 'server errors'}"
        ) from last

    @contextlib.contextmanager
    def send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        scopes: tuple[str, ...],
        ok: Collection[int],
        headers: Mapping[str, str] | None = None,
        body: Body | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Iterator[httpx.Response]:
        """Send until an ``ok`` status arrives; yield the streamed response, then close it.

        401 → follow the challenge once; 5xx/timeouts/resets → retry with backoff;
        404 → ``RegistryNotFoundError``; other statuses → ``RegistryRequestError``.
        """
        response = self._send(
            method=method,
            url=url,
            what=what,
            scopes=scopes,
            ok=ok,
            headers=headers,
            body=body,
            params=params,
        )
        try:
            yield response
        finally:
            response.close()

    def _send(
        self,
        *,
        method: str,
        url: str,
        what: str,
        scopes: tuple[str, ...],
        ok: Collection[int],
        headers: Mapping[str, str] | None,
        body: Body | None,
        params: Mapping[str, str] | None,
    ) -> httpx.Response:
        attempt = 0
        authenticated = False
        last_problem = ""
        last_exc: Exception | None = None
        while True:
            request_headers = dict(headers or {})
            authorization = self._auth.header(scopes)
            if authorization:
                request_headers["Authorization"] = authorization
            content: bytes | Iterator[bytes] | None = None
            if body is not None:
                request_headers["Content-Length"] = str(body_length(body))
                content = body if isinstance(body, bytes) else body.chunks()
            request = self._client.build_request(
                method, url, headers=request_headers, content=content, params=params
            )
            try:
                response = self._client.send(request, stream=True)
            except httpx.TransportError as exc:
                last_problem, last_exc = f"{type(exc).__name__}: {exc}", exc
            else:
                status = response.status_code
                if status in ok:
                    return response
                if status == 401:
                    response.read()
                    response.close()
                    if authenticated:
                        raise self._auth.refused(401, what)
                    self._auth.challenged(response, scopes, what, sent=authorization)
                    authenticated = True
                    continue
                if status not in RETRY_STATUS:
                    raise self._rejection(response, what)
                response.close()
                last_problem, last_exc = f"answered {status}", None
            attempt += 1
            if attempt >= self._retry.attempts:
                raise TransportError(
                    f"registry {self.registry}: {what}: {last_problem} "
                    f"(gave up after {attempt} attempts)",
                    hint="check that the registry is running and reachable",
                ) from last_exc
            self._sleep(self._retry.delay(attempt - 1))

    def read(
        self,
        method: str,
        url: str,
        *,
        what: str,
        scopes: tuple[str, ...],
        ok: Collection[int],
        limit: int,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        read_when: Collection[int] = (200,),
    ) -> tuple[httpx.Response, bytes]:
        """An idempotent request whose whole body (at most ``limit`` bytes) is wanted.

        A body cut short (a reset or a close before ``Content-Length`` bytes) is a
        transport fault like any other: the request is sent again, with backoff. The
        response comes back closed, its status and headers still readable; the body is
        read only for ``read_when`` statuses.
        """
        attempt = 0
        while True:
            try:
                with self.send(
                    method, url, what=what, scopes=scopes, ok=ok, headers=headers, params=params
                ) as response:
                    data = (
                        read_limited(response, limit, f"registry {self.registry}: {what}")
                        if response.status_code in read_when
                        else b""
                    )
            except httpx.TransportError as exc:
                attempt += 1
                if attempt >= self._retry.attempts:
                    raise TransportError(
                        f"registry {self.registry}: {what}: download interrupted: "
                        f"{type(exc).__name__}: {exc} (gave up after {attempt} attempts)",
                        hint="check that the registry is running and reachable",
                    ) from exc
                self.backoff(attempt - 1)
            else:
                return response, data

    def _rejection(self, response: httpx.Response, what: str) -> RegistryRequestError:
        status = response.status_code
        try:
            raw = b""
            for chunk in response.iter_bytes():
                raw += chunk
                if len(raw) > _ERROR_BODY_LIMIT:
                    break
        except httpx.HTTPError:
            raw = b""
        finally:
            response.close()
        codes, messages = _oci_errors(raw)
        if status == 403:
            error: RegistryRequestError = RegistryRequestError(
                f"registry {self.registry} denied {what} ({status}{', ' if codes else ''}"
                f"{', '.join(codes)})",
                status=status,
                codes=codes,
            )
        else:
            cls = RegistryNotFoundError if status == 404 else RegistryRequestError
            summary = "; ".join(messages) or raw[:200].decode("utf-8", "replace").strip()
            error = cls(
                f"registry {self.registry}: {what}: answered {status}"
                + (f" {', '.join(codes)}" if codes else "")
                + (f": {summary}" if summary else ""),
                status=status,
                codes=codes,
            )
        return error


def read_limited(response: httpx.Response, limit: int, where: str) -> bytes:
    """A streamed body, refused once it exceeds ``limit``; transport faults propagate."""
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > limit:
            raise RemoteContentError(f"{where}: answer exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _oci_errors(raw: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The ``errors[].code`` and ``.message`` values of a distribution-spec error body."""
    try:
        document = parse_json(
            raw, where="error body", max_bytes=_ERROR_BODY_LIMIT * 2, error=RemoteContentError
        )
    except RemoteContentError:
        return (), ()
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return (), ()
    codes = tuple(str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code"))
    messages = tuple(
        str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")
    )
    return codes, messages
