"""Discussion adapters against a local server (no forge is reachable here).

The answers are hand-written in the shapes GitHub's and GitLab's REST documentation
give (pulls/{n}/commits: objects with "sha"; issues/{n}/comments: objects with "body";
merge_requests/{n}/commits: objects with "id"), not recordings of a live forge.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kiln.errors import Location
from kiln.research.discussion import GitHubAdapter, GitLabAdapter, with_discussion
from kiln.research.features import Advisory
from kiln.research.finder import find_fix_commits
from kiln.research.gitrepo import open_repo
from kiln.research.rank import load_model
from kiln.research.record import record_from_json
from research.conftest import Upstream, record_json

ROUTES: dict[str, tuple[int, bytes, dict[str, str]]] = {}


class _Forge(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body, headers = ROUTES.get(self.path.split("?")[0], (404, b"{}", {}))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def forge() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Forge)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def test_pull_request_commits_rank_the_fix_first(forge: str, upstream: Upstream) -> None:
    ROUTES["/repos/demo/upstream/pulls/7/commits"] = (200, _json([{"sha": upstream.fix}]), {})
    record = record_from_json(
        record_json(
            references_without_commits=["https://github.com/demo/upstream/pull/7"],
            description="A crash in demo.",  # no words shared with the fix
        ),
        Location("t"),
    ).record
    extended, log = with_discussion(record, [GitHubAdapter(api=forge)])
    assert log == ["https://github.com/demo/upstream/pull/7: 1 commit(s)"]
    assert upstream.fix in Advisory.of(extended).referenced_shas
    with open_repo(upstream.work) as repo:
        ranking = find_fix_commits(extended, repo, load_model())
    assert ranking.kiln[0].commit.sha == upstream.fix
    assert "COMMIT_IN_REFERENCE" in ranking.kiln[0].rules


def test_issue_comments_and_merge_requests(forge: str) -> None:
    sha = "c6e041699d8cd31b97375a2596217aff2cfca85b"
    ROUTES["/repos/o/r/issues/3/comments"] = (
        200, _json([{"body": f"Fixed by {sha}."}, {"body": None}, "junk"]), {}
    )  # fmt: skip
    ROUTES["/projects/g%2Fsub%2Fp/merge_requests/9/commits"] = (200, _json([{"id": sha}]), {})
    record = record_from_json(
        record_json(
            references_without_commits=[
                "https://github.com/o/r/issues/3",
                "https://gitlab.com/g/sub/p/-/merge_requests/9",
                "https://example.org/unrelated",
            ]
        ),
        Location("t"),
    ).record
    extended, log = with_discussion(record, [GitHubAdapter(api=forge), GitLabAdapter(api=forge)])
    assert log == [
        "https://github.com/o/r/issues/3: 1 commit(s)",
        "https://gitlab.com/g/sub/p/-/merge_requests/9: 1 commit(s)",
    ]
    assert extended.references[-1] == f"discussion:/commit/{sha}"  # found twice, added once


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((429, b"{}", {}), "rate limited (429)"),
        ((403, b"{}", {"X-RateLimit-Remaining": "0"}), "rate limited (403)"),
        ((500, b"oops", {}), "HTTP 500"),
        ((200, b"<html>", {}), "not JSON"),
        ((200, b'{"sha": "x"}', {}), "not a list"),
        ((200, b"[" * 1000 + b"]" * 1000, {}), "deeper than"),
    ],
)
def test_a_forge_that_fails_or_lies_is_skipped_with_the_reason(
    forge: str, answer: tuple[int, bytes, dict[str, str]], reason: str
) -> None:
    ROUTES["/repos/o/r/pulls/1/commits"] = answer
    record = record_from_json(
        record_json(references_without_commits=["https://github.com/o/r/pull/1"]), Location("t")
    ).record
    extended, log = with_discussion(record, [GitHubAdapter(api=forge)])
    assert extended is record
    assert len(log) == 1
    assert reason in log[0]


def test_an_unreachable_forge_is_skipped() -> None:
    record = record_from_json(
        record_json(references_without_commits=["https://github.com/o/r/pull/1"]), Location("t")
    ).record
    extended, log = with_discussion(record, [GitHubAdapter(api="http://127.0.0.1:9", timeout=2)])
    assert extended is record
    assert "skipped" in log[0]
