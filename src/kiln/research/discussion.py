"""Discussion adapters: the commits of the pull requests an advisory cites.

An advisory often links a pull request (``github.com/o/r/pull/N``,
``gitlab.com/g/p/-/merge_requests/N``) or an issue whose comments name the fixing
commit. ``GitHubAdapter`` reads ``GET /repos/{o}/{r}/pulls/{n}/commits`` and
``GET /repos/{o}/{r}/issues/{n}/comments``; ``GitLabAdapter`` reads
``GET /api/v4/projects/{path}/merge_requests/{n}/commits`` (both documented REST APIs).
``with_discussion`` adds the commit ids found as commit references of the record, so
the advisory source proposes them and ``commit_in_advisory`` fires. Every answer is
bounded (``MAX_BYTES``, bounded JSON); a rate limit (429, or 403 with
``X-RateLimit-Remaining: 0``), an error status, a timeout or garbage skips that link
and is noted in the returned log: the ranking then stands on the other sources. No forge
is reachable on kiln's build machine: the tests use a local server answering with the
documented shapes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx

from kiln.errors import KilnError
from kiln.jsonlimits import parse_json
from kiln.net import http_client
from kiln.research.record import CveRecord

MAX_BYTES = 2 << 20
MAX_LINKS = 10
_SHA = re.compile(r"\b[0-9a-f]{7,40}\b")
_GITHUB = re.compile(r"^/([\w.-]+)/([\w.-]+)/(pull|issues)/(\d{1,7})(?:/|$)")
_GITLAB = re.compile(r"^/(.+?)/-/merge_requests/(\d{1,7})(?:/|$)")


class Adapter(Protocol):
    """A forge API that turns one discussion link into commit ids."""

    def commits_for(self, url: str) -> list[str] | None:
        """The commit ids the discussion at ``url`` names, or None if not this forge's."""
        ...


class ForgeAnswerError(Exception):
    """A forge answer kiln does not use (status, rate limit, shape)."""


def _get_json(client: httpx.Client, url: str, headers: dict[str, str]) -> Any:
    response = client.get(url, headers=headers)
    if response.status_code == 429 or (
        response.status_code == 403 and response.headers.get("X-RateLimit-Remaining") == "0"
    ):
        raise ForgeAnswerError(f"rate limited ({response.status_code})")
    if response.status_code != 200:
        raise ForgeAnswerError(f"HTTP {response.status_code}")
    try:
        return parse_json(response.content, where=url, max_bytes=MAX_BYTES, what="the answer")
    except KilnError as exc:
        raise ForgeAnswerError(str(exc)) from exc


@dataclass(frozen=True)
class GitHubAdapter:
    """GitHub's REST API (``api`` is its base URL; a token raises the rate limit)."""

    api: str = "https://api.github.com"
    host: str = "github.com"
    token: str | None = None
    timeout: float = 20.0

    def commits_for(self, url: str) -> list[str] | None:
        """Commits of a pull request, or the ids an issue's comments name."""
        parts = urlsplit(url)
        match = _GITHUB.match(parts.path) if parts.hostname == self.host else None
        if not match:
            return None
        owner, repo, kind, number = match.groups()
        headers = {"Accept": "application/vnd.github+json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        base = f"{self.api.rstrip('/')}/repos/{owner}/{repo}"
        with http_client(timeout=self.timeout) as client:
            if kind == "pull":
                data = _get_json(client, f"{base}/pulls/{number}/commits?per_page=100", headers)
                if not isinstance(data, list):
                    raise ForgeAnswerError("the pull request's commits are not a list")
                return [
                    c["sha"] for c in data if isinstance(c, dict) and isinstance(c.get("sha"), str)
                ]
            data = _get_json(client, f"{base}/issues/{number}/comments?per_page=100", headers)
            if not isinstance(data, list):
                raise ForgeAnswerError("the issue's comments are not a list")
            found: list[str] = []
            for comment in data:
                body = comment.get("body") if isinstance(comment, dict) else None
                if isinstance(body, str):
                    found.extend(s for s in _SHA.findall(body) if re.search(r"[a-f]", s))
            return found


@dataclass(frozen=True)
class GitLabAdapter:
    """GitLab's REST API v4 for merge requests on ``host``."""

    api: str = "https://gitlab.com/api/v4"
    host: str = "gitlab.com"
    token: str | None = None
    timeout: float = 20.0

    def commits_for(self, url: str) -> list[str] | None:
        """Commits of a merge request."""
        parts = urlsplit(url)
        match = _GITLAB.match(parts.path) if parts.hostname == self.host else None
        if not match:
            return None
        project, number = match.groups()
        headers = {"PRIVATE-TOKEN": self.token} if self.token else {}
        path = quote(project, safe="")
        url_api = f"{self.api.rstrip('/')}/projects/{path}/merge_requests/{number}/commits"
        with http_client(timeout=self.timeout) as client:
            data = _get_json(client, url_api, headers)
        if not isinstance(data, list):
            raise ForgeAnswerError("the merge request's commits are not a list")
        return [c["id"] for c in data if isinstance(c, dict) and isinstance(c.get("id"), str)]


def with_discussion(record: CveRecord, adapters: Sequence[Adapter]) -> tuple[CveRecord, list[str]]:
    """``record`` with the commits its discussion links name, and a log line per link."""
    log: list[str] = []
    found: list[str] = []
    for url in record.references[:200]:
        if len(log) >= MAX_LINKS:
            break
        for adapter in adapters:
            try:
                commits = adapter.commits_for(url)
            except (ForgeAnswerError, KilnError, httpx.HTTPError) as exc:
                log.append(f"{url}: skipped ({exc or type(exc).__name__})")
                break
            if commits is not None:
                shas = [c.lower() for c in commits if _SHA.fullmatch(c.lower())]
                log.append(f"{url}: {len(shas)} commit(s)")
                found.extend(shas)
                break
    if not found:
        return record, log
    extra = tuple(f"discussion:/commit/{sha}" for sha in dict.fromkeys(found))
    return dataclasses.replace(record, references=(*record.references, *extra)), log
