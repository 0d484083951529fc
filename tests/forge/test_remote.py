"""GitHub, GitLab and Forgejo adapters against recorded API exchanges (``replay.py``).

The forges cannot be reached from the test machine, so their HTTP side is replayed from
recordings written from each forge's documented API (said in every recording). The git
side is real: branches are pushed to a local bare repository standing in for the remote.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kiln.errors import PolicyError, RemoteContentError, TransportError
from kiln.forge import ForgejoForge, GitHubForge, GitLabForge, RemoteForge, RemoteSettings
from kiln.forge._git import Git
from kiln.forge.evidence import CheckResult
from kiln.forge.model import ChangeRequest
from kiln.forge.remote import marker
from kiln.net import HttpStatusError, RetryPolicy

from .conftest import change, git
from .replay import Replay

TOKEN = "s3cr3t-token"
EPOCH = 1767225600
URLS = {
    GitHubForge: "https://forge.invalid/api",
    GitLabForge: "https://forge.invalid/api/v4",
    ForgejoForge: "https://forge.invalid/api/v1",
}


@pytest.fixture
def remote(tmp_path: Path, catalog: Path) -> Path:
    """A bare repository as the catalog's ``origin``, holding its main branch."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(catalog, "remote", "add", "origin", str(bare))
    git(catalog, "push", "-q", "origin", "main")
    return bare


def make(
    cls: type[RemoteForge], replay: Replay, catalog: Path, sleeps: list[float], **options: bool
) -> RemoteForge:
    settings = RemoteSettings(URLS[cls], "acme/catalog", TOKEN, **options)  # type: ignore[arg-type]
    return cls(
        settings,
        git=Git(catalog),
        clock=lambda: EPOCH,
        client=replay.client(),
        sleep=sleeps.append,
        retry=RetryPolicy(attempts=4, base_delay=0.5),
    )


def test_github_opens_then_keeps_then_updates(catalog: Path, remote: Path) -> None:
    replay, sleeps = Replay("github_lifecycle"), list[float]()
    forge = make(GitHubForge, replay, catalog, sleeps)
    pr = forge.open_or_update(change("g1"))
    assert (pr.id, pr.url, pr.state, pr.generation) == (
        7,
        "https://forge.invalid/acme/catalog/pull/7",
        "open",
        "g1",
    )
    pushed = git(remote, "rev-parse", "kiln/bump/python").strip()
    replay.values["head"] = pushed  # the forge reports the pushed commit as the head
    assert (
        git(remote, "show", f"{pushed}:images/python.lock.json")
        == '{"lock_version": 1, "new": true}\n'
    )
    sent = replay.requests[1].content.decode()
    assert "CVE\\\\-2025\\\\-0001" in sent  # the rendered evidence is the body
    assert replay.requests[1].headers["Authorization"] == f"Bearer {TOKEN}"
    # the same generation: found by its marker, nothing pushed or sent
    assert forge.open_or_update(change("g1")).id == 7
    assert git(remote, "rev-parse", "kiln/bump/python").strip() == pushed
    # a new generation: the branch gets a commit on top, the pull request is edited
    updated = forge.open_or_update(change("g2", lock=b"{}\n"))
    assert (updated.id, updated.generation) == (7, "g2")
    tip = git(remote, "rev-parse", "kiln/bump/python").strip()
    assert git(remote, "rev-parse", f"{tip}^").strip() == pushed
    assert replay.done
    assert sleeps == []
    assert git(catalog, "status", "--porcelain") == ""


def test_github_rate_limits_and_500_are_waited_out(catalog: Path, remote: Path) -> None:
    replay, sleeps = Replay("github_ratelimit"), list[float]()
    forge = make(GitHubForge, replay, catalog, sleeps)
    assert forge.open_or_update(change("g1")).id == 7  # g1 is already open: no push
    assert replay.done
    reset_wait, retry_after, backoff = sleeps
    assert 3.5 <= reset_wait <= 5.5  # X-RateLimit-Reset 5 s ahead
    assert retry_after == 30.0
    assert backoff == 0.5


def test_a_rate_limit_past_the_budget_names_the_forge_and_the_limit(
    catalog: Path, remote: Path
) -> None:
    replay, sleeps = Replay("github_ratelimit_exhausted"), list[float]()
    forge = make(GitHubForge, replay, catalog, sleeps)
    with pytest.raises(
        TransportError, match=r"rate limited by GitHub \(limit 5000.*budget of 300 s"
    ):
        forge.open_or_update(change("g1"))
    assert sleeps == [200.0]


def test_a_forge_that_keeps_failing_is_a_transport_error(catalog: Path, remote: Path) -> None:
    replay, sleeps = Replay("github_down"), list[float]()
    with pytest.raises(TransportError, match="failed after 4 attempts: GitHub answered 500"):
        make(GitHubForge, replay, catalog, sleeps).open_or_update(change())
    assert sleeps == [0.5, 1.0, 2.0]
    assert git(remote, "branch", "--list", "kiln/*") == ""  # nothing pushed


@pytest.mark.parametrize(
    ("recording", "message"),
    [
        ("github_garbage", "the answer of GitHub is not JSON"),
        ("github_wrong_shape", "the answer has no dict field 'head'"),
    ],
)
def test_malformed_answers_are_remote_content_errors(
    catalog: Path, remote: Path, recording: str, message: str
) -> None:
    with pytest.raises(RemoteContentError, match=message):
        make(GitHubForge, Replay(recording), catalog, []).open_or_update(change())


def test_the_token_never_appears_in_an_error(catalog: Path, remote: Path) -> None:
    with pytest.raises(HttpStatusError) as caught:
        make(GitHubForge, Replay("github_bad_token"), catalog, []).open_or_update(change())
    assert caught.value.status == 401
    assert TOKEN not in caught.value.diagnostics()
    assert "Bad credentials: ***" in str(caught.value)


def test_automerge_only_for_a_bump_whose_checks_all_pass(catalog: Path, remote: Path) -> None:
    passing = change()
    evidence = passing.evidence.__class__(
        **{**passing.evidence.__dict__, "tests": (CheckResult("smoke", "pass"),)}
    )
    replay = Replay("github_automerge")
    ready = passing.__class__(**{**passing.__dict__, "evidence": evidence})
    make(GitHubForge, replay, catalog, [], automerge=True).open_or_update(ready)
    assert replay.done  # ended with PUT .../merge
    failing = evidence.__class__(**{**evidence.__dict__, "tests": (CheckResult("smoke", "fail"),)})
    assert not failing.checks_pass
    assert not passing.evidence.checks_pass  # no checks at all is not "all passed"


def test_a_duplicate_refused_by_the_forge_updates_the_open_one(catalog: Path, remote: Path) -> None:
    replay = Replay("github_duplicate")
    pr = make(GitHubForge, replay, catalog, []).open_or_update(change("g1"))
    assert (pr.id, pr.generation) == (9, "g1")
    assert replay.done


def test_a_branch_moved_by_someone_else_is_not_overwritten(
    tmp_path: Path, catalog: Path, remote: Path
) -> None:
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(remote), str(other))
    (other / "x").write_text("someone else's work\n")
    git(other, "add", "x")
    git(other, "commit", "-q", "-m", "theirs")
    git(other, "push", "-q", "origin", "HEAD:refs/heads/kiln/bump/python")
    theirs = git(remote, "rev-parse", "kiln/bump/python")
    replay = Replay("github_lifecycle")
    replay.exchanges = replay.exchanges[:1]  # kiln finds no pull request, then pushes
    with pytest.raises(PolicyError, match="holds commits kiln did not push"):
        make(GitHubForge, replay, catalog, []).open_or_update(change("g1"))
    assert git(remote, "rev-parse", "kiln/bump/python") == theirs


def test_gitlab_opens_waits_out_429_and_updates(catalog: Path, remote: Path) -> None:
    replay, sleeps = Replay("gitlab_lifecycle"), list[float]()
    forge = make(GitLabForge, replay, catalog, sleeps)
    pr = forge.open_or_update(change("g1"))
    assert (pr.id, pr.url) == (4, "https://forge.invalid/acme/catalog/-/merge_requests/4")
    assert replay.requests[0].headers["PRIVATE-TOKEN"] == TOKEN
    replay.values["head"] = git(remote, "rev-parse", "kiln/bump/python").strip()
    updated = forge.open_or_update(change("g2"))
    assert (updated.id, updated.generation) == (4, "g2")
    assert sleeps == [3.0]  # Retry-After
    assert replay.done


def test_forgejo_opens_with_label_ids_and_reads_merged(catalog: Path, remote: Path) -> None:
    replay = Replay("forgejo_lifecycle")
    forge = make(ForgejoForge, replay, catalog, [])
    pr = forge.open_or_update(change("g1"))
    assert (pr.id, pr.state) == (3, "open")
    assert replay.requests[0].headers["Authorization"] == f"token {TOKEN}"
    listed = forge.list()  # a person's pull request, even with a copied marker, is not kiln's
    assert [(p.id, p.state, p.image) for p in listed] == [(3, "merged", "python")]
    assert listed[0].title == "Bump python [bold]now"  # escapes gone; markup is the reader's
    assert replay.done


def test_the_marker_cannot_close_its_comment() -> None:
    plain = change()
    hostile = CheckResult("smoke --><script>alert(1)</script>", "pass")
    evidence = plain.evidence.__class__(**{**plain.evidence.__dict__, "tests": (hostile,)})
    text = marker(plain.__class__(**{**plain.__dict__, "evidence": evidence}))
    assert text.count("-->") == 1
    assert text.endswith(" -->")
    assert "<script" not in text


def test_a_failed_push_names_the_remote_but_not_the_token(catalog: Path, tmp_path: Path) -> None:
    git(catalog, "remote", "add", "origin", str(tmp_path / TOKEN / "missing.git"))
    replay = Replay("github_lifecycle")
    replay.exchanges = replay.exchanges[:1]
    with pytest.raises(
        TransportError, match="could not list refs/heads/kiln/bump/python"
    ) as caught:
        make(GitHubForge, replay, catalog, []).open_or_update(change("g1"))
    assert TOKEN not in caught.value.diagnostics()
    assert "***" in str(caught.value)


def _passing(generation: str = "g1", *, image: str = "python", kind: str = "bump") -> ChangeRequest:
    plain = change(generation, image=image, kind=kind)
    evidence = replace(plain.evidence, tests=(CheckResult("smoke", "pass"),))
    return replace(plain, evidence=evidence, title=f"{kind.capitalize()} {image}")


def test_gitlab_duplicate_then_merge_when_the_pipeline_succeeds(
    catalog: Path, remote: Path
) -> None:
    replay = Replay("gitlab_duplicate_automerge")
    replay.values["head"] = "0" * 40
    forge = make(GitLabForge, replay, catalog, [], automerge=True)
    pr = forge.open_or_update(_passing())
    assert (pr.id, pr.generation) == (6, "g1")
    assert replay.done  # 409 on create, the open one updated, then PUT .../merge
    assert git(remote, "rev-parse", "--verify", "-q", "kiln/bump/python")


def test_research_is_labelled_for_review_and_never_merged(catalog: Path, remote: Path) -> None:
    replay = Replay("github_research")
    pr = make(GitHubForge, replay, catalog, [], automerge=True).open_or_update(
        _passing(kind="research")
    )
    assert pr.kind == "research"
    assert replay.done  # labels kiln, research, needs review; no merge call follows


def test_a_branch_pushed_by_a_run_that_failed_to_open_is_taken_over(
    catalog: Path, remote: Path
) -> None:
    replay, sleeps = Replay("github_create_fails_then_retried"), list[float]()
    forge = make(GitHubForge, replay, catalog, sleeps)
    with pytest.raises(
        TransportError, match="GitHub: POST /repos/acme/catalog/pulls: failed after 4 attempts"
    ):
        forge.open_or_update(change("g1"))
    orphan = git(remote, "rev-parse", "kiln/bump/python").strip()  # pushed, no pull request
    pr = forge.open_or_update(change("g1"))
    assert pr.id == 7
    assert replay.done
    assert git(remote, "rev-parse", "kiln/bump/python").strip() == orphan  # same commit again


def test_retry_after_as_a_date_and_a_plain_403(catalog: Path, remote: Path) -> None:
    replay, sleeps = Replay("github_retry_date_then_forbidden"), list[float]()
    with pytest.raises(
        HttpStatusError, match="GitHub answered 403: Resource not accessible"
    ) as caught:
        make(GitHubForge, replay, catalog, sleeps).open_or_update(change())
    assert caught.value.hint is not None
    assert "token" in caught.value.hint  # a 403 without rate-limit headers is permissions
    (waited,) = sleeps
    assert 5.0 <= waited <= 7.5  # Retry-After as an HTTP date 7 s ahead
