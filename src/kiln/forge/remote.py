"""Pull requests on GitHub, GitLab and Forgejo over their REST APIs.

The branch is built locally exactly as the local forge builds it (plumbing, never the
working tree) and pushed with ``git push --force-with-lease`` to the configured remote,
so a branch moved by someone else is never overwritten. The pull request is then found
by its head branch, created or updated (title, body), labelled (``kiln``, the kind,
``needs review`` for research) and, only when configured and only for a ``bump`` whose
checks all passed, set to merge.

kiln's facts about a pull request (generation, CVEs fixed, checks) travel in its body,
in an HTML comment kiln writes last (``<!-- kiln-pr {...} -->``); a body whose marker
is missing or malformed is read as "not kiln's" or refused, never guessed.

Every exchange goes through ``_Api.request``: a 429, or a 403 that carries
``Retry-After`` or an exhausted ``X-RateLimit-Remaining``, waits as told within a
budget (``TransportError`` naming the forge and the limit when it runs out); 408/425/
5xx and connection faults are retried with backoff; a body that is not JSON or not the
documented shape is ``RemoteContentError``. The token goes in a header only and is
scrubbed from every message.

APIs: GitHub REST (``/repos/{owner}/{repo}/pulls``, ``/issues/{n}/labels``,
``/pulls/{n}/merge``), GitLab v4 (``/projects/{id}/merge_requests``), Forgejo/Gitea v1
(``/repos/{owner}/{repo}/pulls``, ``/labels``, ``/issues/{n}/labels``,
``/pulls/{n}/merge``).
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from kiln.errors import (
    EnvironmentProblem,
    InputError,
    PolicyError,
    RemoteContentError,
    TransportError,
)
from kiln.forge._branch import branch_commit, is_kiln_commit
from kiln.forge._git import Git, Identity
from kiln.forge.evidence import CHANGE_KINDS, render_markdown
from kiln.forge.model import ChangeRequest, PrState, PullRequest, branch_name
from kiln.jsonlimits import parse_json
from kiln.net import RETRY_STATUS, HttpStatusError, RetryPolicy, http_client
from kiln.text import plain_line

_MAX_RESPONSE = 16 * 1024 * 1024
_MARKER = re.compile(r"<!-- kiln-pr (\{.*?\}) -->\s*$", re.DOTALL)
_LIST_PAGES = 10


@dataclass(frozen=True)
class RemoteSettings:
    """Where a remote forge is and how kiln may use it."""

    api_url: str
    repo: str
    token: str
    remote: str = "origin"
    automerge: bool = False
    rate_limit_budget: float = 300.0


class _Api:
    """One forge's HTTP API: auth header, bounded bodies, retries, rate limits."""

    def __init__(
        self,
        forge: str,
        settings: RemoteSettings,
        headers: Mapping[str, str],
        *,
        client: httpx.Client | None,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        retry: RetryPolicy,
    ) -> None:
        self.forge = forge
        self._base = settings.api_url.rstrip("/")
        self._token = settings.token
        self._headers = dict(headers)
        self._client = client or http_client()
        self._sleep = sleep
        self._clock = clock
        self._retry = retry
        self._budget = settings.rate_limit_budget

    def scrub(self, text: str) -> str:
        """``text`` with the token removed (error messages, logs)."""
        return text.replace(self._token, "***") if self._token else text

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> tuple[int, Any]:
        """The status and JSON body of ``method path``, after retries and rate limits."""
        what = f"{self.forge}: {method} {path}"
        waited = 0.0
        failures = 0
        last = ""
        while True:
            try:
                status, headers, data = self._send(method, path, body, params)
            except httpx.HTTPError as exc:
                status, headers, data = 0, httpx.Headers(), b""
                last = self.scrub(f"{type(exc).__name__}: {exc}")
            if status in ok:
                return status, self._json(data, what)
            wait = self._rate_limit_wait(status, headers)
            if wait is not None:
                if waited + wait > self._budget:
                    raise TransportError(
                        f"{what}: rate limited by {self.forge} ({_limit_text(headers)}); "
                        f"waiting {wait:.0f} s more would exceed the budget of "
                        f"{self._budget:.0f} s",
                        hint="retry later, or raise the rate-limit budget",
                    )
                self._sleep(wait)
                waited += wait
                continue
            if status == 0 or status in RETRY_STATUS:
                failures += 1
                last = last if status == 0 else f"{self.forge} answered {status}"
                if failures >= self._retry.attempts:
                    raise TransportError(
                        f"{what}: failed after {failures} attempts: {last}",
                        hint=f"{self.forge} may be down; the factory retries later",
                    )
                self._sleep(self._retry.delay(failures - 1))
                continue
            raise HttpStatusError(
                f"{what}: {self.forge} answered {status}: {self._message(data)}",
                hint=_hint(status),
                status=status,
            )

    def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
    ) -> tuple[int, httpx.Headers, bytes]:
        with self._client.stream(
            method,
            self._base + path,
            headers=self._headers,
            params=params,
            json=dict(body) if body is not None else None,
        ) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > _MAX_RESPONSE:
                    raise RemoteContentError(
                        f"{self.forge}: {method} {path}: answer larger than {_MAX_RESPONSE} bytes"
                    )
                chunks.append(chunk)
            return response.status_code, response.headers, b"".join(chunks)

    def _json(self, data: bytes, what: str) -> Any:
        if not data.strip():
            return None
        return parse_json(
            data,
            where=what,
            max_bytes=_MAX_RESPONSE,
            what=f"the answer of {self.forge}",
            error=RemoteContentError,
        )

    def _message(self, data: bytes) -> str:
        try:
            value = json.loads(data[:4096])
        except ValueError:
            return "(no JSON message)"
        message = value.get("message") if isinstance(value, dict) else None
        return self.scrub(str(message)[:200]) if message else "(no message)"

    def _rate_limit_wait(self, status: int, headers: httpx.Headers) -> float | None:
        """Seconds to wait before retrying, when the answer is a rate limit; else None."""
        if status not in (403, 429):
            return None
        retry_after = headers.get("Retry-After")
        if retry_after is not None:
            return _retry_after_seconds(retry_after, self._clock())
        remaining = headers.get("X-RateLimit-Remaining") or headers.get("RateLimit-Remaining")
        reset = headers.get("X-RateLimit-Reset") or headers.get("RateLimit-Reset")
        if remaining == "0" and reset is not None and reset.isdigit():
            return max(1.0, int(reset) - self._clock())
        if status == 429:  # rate limited without saying for how long: back off
            return 60.0
        return None


def _retry_after_seconds(value: str, now: float) -> float:
    if value.strip().isdigit():
        return max(0.0, float(value.strip()))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 60.0
    return max(0.0, when.timestamp() - now)


def _limit_text(headers: httpx.Headers) -> str:
    limit = headers.get("X-RateLimit-Limit") or headers.get("RateLimit-Limit") or "unknown"
    reset = headers.get("X-RateLimit-Reset") or headers.get("RateLimit-Reset")
    after = headers.get("Retry-After")
    parts = [f"limit {limit}"]
    if reset:
        parts.append(f"resets at epoch {reset[:20]}")
    if after:
        parts.append(f"Retry-After {after[:40]}")
    return ", ".join(parts)


def _hint(status: int) -> str:
    if status in (401, 403):
        return "check the forge token (KILN_FORGE_TOKEN) and its permissions on the repository"
    if status == 404:
        return "check KILN_FORGE_URL and KILN_FORGE_REPO"
    return "see the forge's message above"


def _field(obj: Any, key: str, kind: type, what: str) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get(key), kind):
        raise RemoteContentError(f"{what}: the answer has no {kind.__name__} field {key!r}")
    return obj[key]


def marker(change: ChangeRequest) -> str:
    """kiln's facts about the pull request, as the HTML comment that ends its body."""
    facts = {
        "image": change.image,
        "kind": change.kind,
        "generation": change.generation,
        "cves_fixed": list(change.evidence.cves_fixed),
        "checks": change.evidence.checks,
    }
    # "<", ">" and "&" as JSON escapes: nothing inside can close the comment
    text = json.dumps(facts, sort_keys=True)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return f"<!-- kiln-pr {text} -->"


@dataclass(frozen=True)
class _Remote:
    """A pull request as a forge answers it, before kiln's facts are read from its body."""

    number: int
    url: str | None
    state: PrState
    branch: str
    base: str
    title: str
    body: str
    head: str | None


class RemoteForge(ABC):
    """The shared half of the three REST forges; each adds its endpoints and shapes."""

    name = "forge"

    def __init__(
        self,
        settings: RemoteSettings,
        *,
        git: Git,
        identity: Identity | None = None,
        clock: Callable[[], int] | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self._git = git
        self._identity = identity or Identity()
        self._now = clock or (lambda: int(time.time()))
        self.api = _Api(
            self.name,
            settings,
            self.auth_headers(settings.token),
            client=client,
            sleep=sleep,
            clock=time.time,
            retry=retry or RetryPolicy(),
        )

    # --- per forge -------------------------------------------------------------------

    @abstractmethod
    def auth_headers(self, token: str) -> dict[str, str]:
        """The headers that authenticate kiln and ask for JSON."""

    @abstractmethod
    def find(self, branch: str) -> list[_Remote]:
        """Every pull request (any state) whose head is ``branch``, newest first."""

    @abstractmethod
    def list_remote(self) -> list[_Remote]:
        """Every pull request from a ``kiln/`` branch (bounded number of pages)."""

    @abstractmethod
    def create(self, change: ChangeRequest, body: str) -> _Remote | None:
        """Open the pull request; None when the forge says one is already open."""

    @abstractmethod
    def update(self, number: int, change: ChangeRequest, body: str) -> _Remote:
        """Set the title and body of pull request ``number``."""

    @abstractmethod
    def label(self, number: int, labels: tuple[str, ...]) -> None:
        """Add ``labels`` to pull request ``number``."""

    @abstractmethod
    def merge(self, number: int) -> None:
        """Merge pull request ``number`` (or set it to merge when its checks pass)."""

    @abstractmethod
    def parse(self, obj: Any, what: str) -> _Remote:
        """One pull request object of the forge's answers."""

    def _paged(
        self, path: str, params: Mapping[str, str], *, size: int, size_key: str
    ) -> list[_Remote]:
        """Every pull request of a listing, page after page (at most ``_LIST_PAGES``)."""
        out: list[_Remote] = []
        what = f"{self.name}: GET {path}"
        for page in range(1, _LIST_PAGES + 1):
            query = {**params, size_key: str(size), "page": str(page)}
            _, data = self.api.request("GET", path, params=query)
            if not isinstance(data, list):
                raise RemoteContentError(f"{what}: the answer is not a list")
            out += [self.parse(item, what) for item in data]
            if len(data) < size:
                break
        return out

    # --- shared ----------------------------------------------------------------------

    def _pull_request(self, remote: _Remote) -> PullRequest | None:
        found = _MARKER.search(remote.body)
        if found is None:
            return None  # not opened by kiln
        where = f"{self.name}: pull request #{remote.number}"
        facts = parse_json(
            found.group(1),
            where=where,
            max_bytes=1 << 20,
            what="kiln's marker",
            error=RemoteContentError,
        )
        kind = _field(facts, "kind", str, where)
        image = _field(facts, "image", str, where)
        cves = _field(facts, "cves_fixed", list, where)
        checks = _field(facts, "checks", dict, where)
        if kind not in CHANGE_KINDS or not all(isinstance(c, str) for c in cves):
            raise RemoteContentError(f"{where}: kiln's marker is malformed")
        if not all(isinstance(v, str) for v in checks.values()):
            raise RemoteContentError(f"{where}: kiln's marker has checks that are not text")
        if remote.branch != branch_name(kind, image):
            return None  # a marker copied into some other pull request: not kiln's
        return PullRequest(
            id=remote.number,
            image=image,
            kind=kind,
            branch=remote.branch,
            generation=_field(facts, "generation", str, where),
            cves_fixed=tuple(cves),
            checks=checks,
            state=remote.state,
            url=remote.url,
            title=plain_line(remote.title)[:300],  # shown in tables and pages
            base=remote.base,
            head=remote.head,
            generations=(_field(facts, "generation", str, where),),
        )

    def list(self) -> list[PullRequest]:
        """kiln's pull requests on the forge, by number."""
        found = [self._pull_request(remote) for remote in self.list_remote()]
        return sorted((pr for pr in found if pr is not None), key=lambda pr: pr.id)

    def open_or_update(self, change: ChangeRequest) -> PullRequest:
        """The pull request for ``change`` on the forge (see ``kiln.forge.model.Forge``)."""
        remotes = self.find(change.branch)
        prs = [(r, self._pull_request(r)) for r in remotes]
        for _remote, pr in prs:
            if pr is not None and pr.generation == change.generation:
                return pr
        current = next((r for r, _ in prs if r.state == "open"), None)
        self._push(change, update=current is not None, known={r.head for r in remotes if r.head})
        body = render_markdown(change.evidence) + "\n" + marker(change) + "\n"
        if current is None:
            created = self.create(change, body)
            if created is None:  # opened meanwhile by another worker: update that one
                current = next((r for r in self.find(change.branch) if r.state == "open"), None)
                if current is None:
                    raise RemoteContentError(
                        f"{self.name}: refused to open {change.branch} as a duplicate, "
                        "but lists no open pull request for it"
                    )
        result = self.update(current.number, change, body) if current else created
        assert result is not None  # noqa: S101 (one of the two branches above set it)
        self.label(result.number, change.labels)
        if self.settings.automerge and change.kind == "bump" and change.evidence.checks_pass:
            self.merge(result.number)
        pr = self._pull_request(result)
        if pr is None:
            raise RemoteContentError(
                f"{self.name}: pull request #{result.number} came back without kiln's marker"
            )
        return pr

    def _push(self, change: ChangeRequest, *, update: bool, known: set[str]) -> None:
        """Build the change's commit and push it; never over a branch kiln did not push.

        ``known`` are the head commits of the branch's pull requests as the forge lists
        them; a remote branch at any other commit must be kiln's own commit for this
        branch (an earlier run pushed it and then could not open the pull request),
        else it holds someone else's work and is left alone.
        """
        remote = self.settings.remote
        ref = f"refs/heads/{change.branch}"
        base = self._git.resolve(f"refs/heads/{change.base}")
        if base is None:
            raise EnvironmentProblem(
                f"{self._git.repo}: the base branch {change.base!r} does not exist locally"
            )
        try:
            listed = self._git.run(
                "ls-remote", remote, ref, what=f"list {ref} on the remote {remote}"
            ).split()
            remote_tip = listed[0] if listed else None
            tip = None
            if remote_tip is not None:
                private = f"refs/kiln/remote/{change.branch}"
                self._git.run(
                    "fetch",
                    "--no-tags",
                    "--quiet",
                    remote,
                    f"+{ref}:{private}",
                    what=f"fetch {ref} from {remote}",
                )
                if remote_tip not in known and not is_kiln_commit(
                    self._git, remote_tip, change, self._identity
                ):
                    raise PolicyError(
                        f"{self.name}: {change.branch} on {remote} is at {remote_tip[:12]}, "
                        "which is no pull request's head and not kiln's commit: it holds "
                        "commits kiln did not push",
                        hint="delete or rename that branch, then run kiln again",
                    )
                tip = remote_tip if update else None
            commit = branch_commit(
                self._git, change, base=base, tip=tip, identity=self._identity, when=self._now()
            )
            lease = f"--force-with-lease={ref}:{remote_tip or ''}"
            self._git.run(
                "push",
                "--quiet",
                "--porcelain",
                lease,
                remote,
                f"{commit}:{ref}",
                what=f"push {change.branch} to {remote}",
            )
        except InputError as exc:  # git's message may hold a URL with credentials
            raise TransportError(
                self.api.scrub(str(exc)), hint=f"check the git remote {remote!r} and its access"
            ) from None


class _PullsForge(RemoteForge):
    """The GitHub-shaped ``/repos/{owner}/{repo}/pulls`` API GitHub and Forgejo share."""

    #: the status the forge answers a second pull request for one branch with
    duplicate_status = 422

    @property
    def _repo(self) -> str:
        return f"/repos/{self.settings.repo}"

    @abstractmethod
    def merged(self, obj: Mapping[str, Any]) -> bool:
        """Whether the pull request object says it was merged."""

    def parse(self, obj: Any, what: str) -> _Remote:
        head = _field(obj, "head", dict, what)
        base = _field(obj, "base", dict, what)
        state = _field(obj, "state", str, what)
        sha = head.get("sha")
        return _Remote(
            number=_field(obj, "number", int, what),
            url=_field(obj, "html_url", str, what),
            state="merged" if self.merged(obj) else ("open" if state == "open" else "closed"),
            branch=_field(head, "ref", str, what),
            base=_field(base, "ref", str, what),
            title=_field(obj, "title", str, what),
            body=obj.get("body") or "",
            head=sha if isinstance(sha, str) else None,
        )

    def create(self, change: ChangeRequest, body: str) -> _Remote | None:
        payload = {"title": change.title, "head": change.branch, "base": change.base, "body": body}
        path = f"{self._repo}/pulls"
        status, data = self.api.request("POST", path, body=payload, ok=(201, self.duplicate_status))
        if status == self.duplicate_status:  # "a pull request already exists for ..."
            return None
        return self.parse(data, f"{self.name}: POST {path}")

    def update(self, number: int, change: ChangeRequest, body: str) -> _Remote:
        path = f"{self._repo}/pulls/{number}"
        _, data = self.api.request("PATCH", path, body={"title": change.title, "body": body})
        return self.parse(data, f"{self.name}: PATCH {path}")


class GitHubForge(_PullsForge):
    """GitHub (and GitHub Enterprise Server) REST API v3."""

    name = "GitHub"

    def auth_headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    def merged(self, obj: Mapping[str, Any]) -> bool:
        return bool(obj.get("merged_at"))

    def find(self, branch: str) -> list[_Remote]:
        owner = self.settings.repo.split("/")[0]
        path = f"{self._repo}/pulls"
        params = {
            "state": "all",
            "head": f"{owner}:{branch}",
            "sort": "created",
            "direction": "desc",
        }
        _, data = self.api.request("GET", path, params=params)
        if not isinstance(data, list):
            raise RemoteContentError(f"GitHub: GET {path}: the answer is not a list")
        return [self.parse(item, f"GitHub: GET {path}") for item in data]

    def list_remote(self) -> list[_Remote]:
        found = self._paged(f"{self._repo}/pulls", {"state": "all"}, size=100, size_key="per_page")
        return [r for r in found if r.branch.startswith("kiln/")]

    def label(self, number: int, labels: tuple[str, ...]) -> None:
        path = f"{self._repo}/issues/{number}/labels"
        self.api.request("POST", path, body={"labels": list(labels)})

    def merge(self, number: int) -> None:
        path = f"{self._repo}/pulls/{number}/merge"
        self.api.request("PUT", path, body={"merge_method": "squash"})


class GitLabForge(RemoteForge):
    """GitLab REST API v4 merge requests."""

    name = "GitLab"

    def auth_headers(self, token: str) -> dict[str, str]:
        return {"PRIVATE-TOKEN": token, "Accept": "application/json"}

    @property
    def _mrs(self) -> str:
        return f"/projects/{quote(self.settings.repo, safe='')}/merge_requests"

    def parse(self, obj: Any, what: str) -> _Remote:
        state = _field(obj, "state", str, what)
        sha = obj.get("sha")
        states: dict[str, PrState] = {"opened": "open", "merged": "merged"}
        return _Remote(
            number=_field(obj, "iid", int, what),
            url=_field(obj, "web_url", str, what),
            state=states.get(state, "closed"),
            branch=_field(obj, "source_branch", str, what),
            base=_field(obj, "target_branch", str, what),
            title=_field(obj, "title", str, what),
            body=obj.get("description") or "",
            head=sha if isinstance(sha, str) else None,
        )

    def find(self, branch: str) -> list[_Remote]:
        params = {"source_branch": branch, "state": "all", "order_by": "created_at", "sort": "desc"}
        _, data = self.api.request("GET", self._mrs, params=params)
        if not isinstance(data, list):
            raise RemoteContentError(f"GitLab: GET {self._mrs}: the answer is not a list")
        return [self.parse(item, f"GitLab: GET {self._mrs}") for item in data]

    def list_remote(self) -> list[_Remote]:
        found = self._paged(self._mrs, {"state": "all"}, size=100, size_key="per_page")
        return [r for r in found if r.branch.startswith("kiln/")]

    def create(self, change: ChangeRequest, body: str) -> _Remote | None:
        payload = {
            "source_branch": change.branch,
            "target_branch": change.base,
            "title": change.title,
            "description": body,
            "labels": ",".join(change.labels),
        }
        status, data = self.api.request("POST", self._mrs, body=payload, ok=(201, 409))
        if status == 409:  # "Another open merge request already exists for this source branch"
            return None
        return self.parse(data, f"GitLab: POST {self._mrs}")

    def update(self, number: int, change: ChangeRequest, body: str) -> _Remote:
        path = f"{self._mrs}/{number}"
        payload = {"title": change.title, "description": body}
        _, data = self.api.request("PUT", path, body=payload)
        return self.parse(data, f"GitLab: PUT {path}")

    def label(self, number: int, labels: tuple[str, ...]) -> None:
        self.api.request("PUT", f"{self._mrs}/{number}", body={"add_labels": ",".join(labels)})

    def merge(self, number: int) -> None:
        path = f"{self._mrs}/{number}/merge"
        self.api.request("PUT", path, body={"merge_when_pipeline_succeeds": True})


class ForgejoForge(_PullsForge):
    """Forgejo (and Gitea) REST API v1."""

    name = "Forgejo"
    duplicate_status = 409

    def auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"token {token}", "Accept": "application/json"}

    def merged(self, obj: Mapping[str, Any]) -> bool:
        return obj.get("merged") is True

    def list_remote(self) -> list[_Remote]:
        found = self._paged(f"{self._repo}/pulls", {"state": "all"}, size=50, size_key="limit")
        return [r for r in found if r.branch.startswith("kiln/")]

    def find(self, branch: str) -> list[_Remote]:
        # Forgejo's list has no head filter: read kiln's pages, newest first
        return sorted(
            (r for r in self.list_remote() if r.branch == branch), key=lambda r: -r.number
        )

    def label(self, number: int, labels: tuple[str, ...]) -> None:
        # the labels endpoint takes ids: look the names up, create the missing ones
        path = f"{self._repo}/labels"
        _, data = self.api.request("GET", path, params={"limit": "50"})
        if not isinstance(data, list):
            raise RemoteContentError(f"Forgejo: GET {path}: the answer is not a list")
        ids = {
            _field(item, "name", str, f"Forgejo: GET {path}"): _field(
                item, "id", int, f"Forgejo: GET {path}"
            )
            for item in data
        }
        for name in labels:
            if name not in ids:
                _, made = self.api.request("POST", path, body={"name": name, "color": "#5319e7"})
                ids[name] = _field(made, "id", int, f"Forgejo: POST {path}")
        numbered = f"{self._repo}/issues/{number}/labels"
        self.api.request("POST", numbered, body={"labels": [ids[name] for name in labels]})

    def merge(self, number: int) -> None:
        path = f"{self._repo}/pulls/{number}/merge"
        self.api.request("POST", path, body={"Do": "squash", "merge_when_checks_succeed": True})
