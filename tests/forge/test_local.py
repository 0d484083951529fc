"""LocalGitForge against real git repositories (no mocks): branches, records, atomicity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from kiln.errors import InputError, PolicyError
from kiln.forge import RECORDS_REF, DryRunForge, Identity, LocalGitForge
from kiln.forge.model import ChangeRequest

from .conftest import change, git

EPOCH = 1767225600


def forge(repo: Path, clock: int = EPOCH) -> LocalGitForge:
    return LocalGitForge(repo, clock=lambda: clock)


def _untouched_state(repo: Path) -> tuple[str, str, str]:
    index = hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest()
    return git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain"), index


def test_open_makes_a_branch_and_a_record_without_touching_the_checkout(catalog: Path) -> None:
    (catalog / "README.md").write_text("a local edit the user has not committed\n")
    git(catalog, "add", "README.md")
    before = _untouched_state(catalog)
    pr = forge(catalog).open_or_update(change())
    assert _untouched_state(catalog) == before
    assert (pr.id, pr.branch, pr.state, pr.cves_fixed) == (
        1,
        "kiln/bump/python",
        "open",
        ("CVE-2025-0001",),
    )
    branch = "refs/heads/kiln/bump/python"
    assert git(catalog, "rev-parse", branch).strip() == pr.head
    assert (
        git(catalog, "show", f"{branch}:images/python.lock.json")
        == '{"lock_version": 1, "new": true}\n'
    )
    assert git(catalog, "show", f"{branch}:images/python.yaml") == "name: python\n"
    assert git(catalog, "show", f"{branch}:README.md") == "catalog\n"  # the committed one
    assert (
        git(catalog, "rev-parse", f"{branch}^").strip() == git(catalog, "rev-parse", "main").strip()
    )
    log = git(catalog, "log", "-1", "--format=%an <%ae> %at %cn %ct%n%B", branch)
    assert log.startswith(f"kiln <kiln@localhost> {EPOCH} kiln {EPOCH}\nBump python\n")
    assert "Kiln-Generation: g1" in log
    assert "Kiln-Fixes: CVE-2025-0001" in log
    record = json.loads(git(catalog, "show", f"{RECORDS_REF}:1.json"))
    assert record["generation"] == "g1"
    assert record["head"] == pr.head
    assert "CVE\\-2025\\-0001" in record["body"]
    assert record["evidence"]["cves_before"][0]["id"] == "CVE-2025-0001"
    assert forge(catalog).list() == [pr]


def test_same_generation_opens_nothing_new(catalog: Path) -> None:
    first = forge(catalog).open_or_update(change())
    refs = git(catalog, "for-each-ref")
    again = forge(catalog, clock=EPOCH + 60).open_or_update(change())
    assert again == first
    assert git(catalog, "for-each-ref") == refs
    assert len(forge(catalog).list()) == 1


def test_new_generation_updates_the_open_pull_request_and_keeps_history(catalog: Path) -> None:
    first = forge(catalog).open_or_update(change("g1"))
    second = forge(catalog, clock=EPOCH + 60).open_or_update(change("g2", lock=b"{}\n"))
    assert second.id == first.id
    assert second.generations == ("g1", "g2")
    assert git(catalog, "rev-parse", f"{second.head}^").strip() == first.head
    assert git(catalog, "show", f"{second.head}:images/python.lock.json") == "{}\n"
    history = forge(catalog).history(first.id)
    assert [(h["event"], h["generation"]) for h in history] == [("opened", "g1"), ("updated", "g2")]
    assert len(git(catalog, "rev-list", RECORDS_REF).split()) == 2  # each record change kept


def test_a_moved_base_comes_in_as_a_second_parent(catalog: Path) -> None:
    first = forge(catalog).open_or_update(change("g1"))
    (catalog / "README.md").write_text("moved on\n")
    git(catalog, "commit", "-q", "-am", "base moves")
    second = forge(catalog).open_or_update(change("g2"))
    parents = git(catalog, "rev-list", "--parents", "-n1", str(second.head)).split()[1:]
    assert parents == [first.head, git(catalog, "rev-parse", "main").strip()]
    assert git(catalog, "show", f"{second.head}:README.md") == "moved on\n"


def test_none_deletes_a_file(catalog: Path) -> None:
    pr = forge(catalog).open_or_update(change(extra={"images/python.yaml": None}))
    files = git(catalog, "ls-tree", "-r", "--name-only", str(pr.head)).split()
    assert files == ["README.md", "images/python.lock.json"]


def test_commits_are_deterministic(tmp_path: Path, catalog: Path) -> None:
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(catalog), str(other))
    a = forge(catalog).open_or_update(change())
    b = LocalGitForge(other, clock=lambda: EPOCH, identity=Identity()).open_or_update(change())
    assert a.head == b.head


def test_a_closed_pull_request_is_not_reopened_for_its_generation(catalog: Path) -> None:
    first = forge(catalog).open_or_update(change("g1"))
    forge(catalog).set_state(first.id, "closed")
    assert forge(catalog).open_or_update(change("g1")).state == "closed"
    fresh = forge(catalog).open_or_update(change("g2"))
    assert fresh.id == 2
    assert fresh.state == "open"
    assert fresh.generations == ("g2",)
    assert (
        git(catalog, "rev-parse", f"{fresh.head}^").strip()
        == git(catalog, "rev-parse", "main").strip()
    )
    with pytest.raises(PolicyError, match="another bump pull request for python is open"):
        forge(catalog).set_state(first.id, "open")


def test_sync_marks_a_merged_branch(catalog: Path) -> None:
    pr = forge(catalog).open_or_update(change())
    git(catalog, "merge", "-q", "--ff-only", "kiln/bump/python")
    assert [p.id for p in forge(catalog).sync()] == [pr.id]
    assert forge(catalog).get(pr.id).state == "merged"
    assert forge(catalog).sync() == []


def test_a_failed_transaction_moves_neither_ref(catalog: Path) -> None:
    # another git process holds the record ref's lock: the branch must not move alone
    lock = catalog / ".git" / "refs" / "kiln" / "prs.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    with pytest.raises(PolicyError, match="kept moving"):
        forge(catalog).open_or_update(change())
    assert git(catalog, "for-each-ref", "refs/heads/kiln", "refs/kiln") == ""
    lock.unlink()
    assert forge(catalog).open_or_update(change()).id == 1


def test_a_racing_writer_is_not_lost(catalog: Path) -> None:
    calls: list[int] = []

    def clock() -> int:  # runs between reading the records and moving the refs
        if not calls:
            calls.append(1)
            LocalGitForge(catalog, clock=lambda: EPOCH).open_or_update(change(image="python2"))
        return EPOCH

    (catalog / "images" / "python2.lock.json").write_text("{}")
    pr = LocalGitForge(catalog, clock=clock).open_or_update(change())
    prs = forge(catalog).list()
    assert [(p.id, p.image) for p in prs] == [(1, "python2"), (2, "python")]
    assert pr.id == 2


@pytest.mark.parametrize(
    "path",
    [
        "../escape",
        "/etc/passwd",
        "images/../../x",
        ".git/config",
        "images/.GIT/x",
        "a//b",
        "a\\b",
        "",
    ],
)
def test_paths_outside_the_repository_are_refused(path: str) -> None:
    with pytest.raises(InputError, match="not a plain relative path"):
        change(extra={path: b"x"})


def test_a_bad_image_name_or_base_is_refused(catalog: Path) -> None:
    with pytest.raises(InputError, match="cannot be part of a branch name"):
        change(image="../x")
    good = change()
    with pytest.raises(InputError, match="base branch"):
        ChangeRequest(good.image, good.kind, "g", "t", good.evidence, good.files, base="a..b")
    missing = ChangeRequest(good.image, good.kind, "g", "t", good.evidence, good.files, base="nope")
    with pytest.raises(InputError, match="the base branch 'nope' does not exist"):
        forge(catalog).open_or_update(missing)


def test_a_corrupt_record_is_an_input_error_naming_it(catalog: Path) -> None:
    forge(catalog).open_or_update(change())
    blob = git(catalog, "hash-object", "-w", "--stdin", data=b'{"id": 1, "image": ').strip()
    tree = git(catalog, "mktree", data=f"100644 blob {blob}\t1.json\n".encode()).strip()
    commit = git(catalog, "commit-tree", tree, "-m", "garbage").strip()
    git(catalog, "update-ref", RECORDS_REF, commit)
    with pytest.raises(InputError, match=r"refs/kiln/prs:1.json.*not JSON"):
        forge(catalog).list()
    record = json.dumps({"id": 1, "image": "python"}).encode()
    blob = git(catalog, "hash-object", "-w", "--stdin", data=record).strip()
    tree = git(catalog, "mktree", data=f"100644 blob {blob}\t1.json\n".encode()).strip()
    git(catalog, "update-ref", RECORDS_REF, git(catalog, "commit-tree", tree, "-m", "x").strip())
    with pytest.raises(
        InputError, match=r"refs/kiln/prs:1\.json: the pull request record has no 'kind'"
    ):
        forge(catalog).list()


def test_an_oversized_record_is_refused_before_it_is_read(catalog: Path) -> None:
    blob = git(catalog, "hash-object", "-w", "--stdin", data=b" " * (4 * 1024 * 1024 + 1))
    tree = git(catalog, "mktree", data=f"100644 blob {blob.strip()}\t1.json\n".encode()).strip()
    git(catalog, "update-ref", RECORDS_REF, git(catalog, "commit-tree", tree, "-m", "x").strip())
    with pytest.raises(InputError, match=r":1\.json is larger than 4194304 bytes"):
        forge(catalog).list()


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="could not find the repository"):
        LocalGitForge(tmp_path)


def test_dry_run_writes_nothing_and_answers_like_the_forge(catalog: Path) -> None:
    real = forge(catalog)
    opened = real.open_or_update(change("g1"))
    refs = git(catalog, "for-each-ref")
    dry = DryRunForge(real)
    assert dry.open_or_update(change("g1")) == opened
    update = dry.open_or_update(change("g2"))
    assert (update.id, update.generations) == (opened.id, ("g1", "g2"))
    new = dry.open_or_update(change("g1", image="node"))
    assert (new.id, new.url, new.head) == (0, None, None)
    assert git(catalog, "for-each-ref") == refs
    assert dry.list() == [opened]
    assert len(dry.proposals) == 2


def test_the_record_keeps_the_evidence(catalog: Path) -> None:
    sent = change()
    pr = forge(catalog).open_or_update(sent)
    assert forge(catalog).evidence(pr.id) == sent.evidence
    assert forge(catalog).body(pr.id).startswith("## kiln bump: python — 1 CVE fixed")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("images", "'images' is a directory on the base branch"),
        ("README.md/x", "would be under the file 'README.md'"),
        ("images/python.yaml/x", "would be under the file 'images/python.yaml'"),
    ],
)
def test_a_file_where_a_directory_is_is_refused(catalog: Path, path: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        forge(catalog).open_or_update(change(extra={path: b"x"}))
    assert git(catalog, "for-each-ref", "refs/heads/kiln") == ""


def test_an_epoch_of_zero_is_a_date(catalog: Path) -> None:
    pr = forge(catalog, clock=0).open_or_update(change())
    assert git(catalog, "log", "-1", "--format=%at %ct", str(pr.head)) == "0 0\n"


def test_a_branch_with_someone_elses_work_is_not_reset(catalog: Path) -> None:
    git(catalog, "branch", "kiln/bump/python", "main")
    (catalog / "mine.txt").write_text("work in progress\n")
    git(catalog, "add", "mine.txt")
    git(catalog, "commit", "-q", "-m", "wip")
    git(catalog, "branch", "-f", "kiln/bump/python", "HEAD")
    theirs = git(catalog, "rev-parse", "kiln/bump/python")
    with pytest.raises(PolicyError, match="holds someone else's work"):
        forge(catalog).open_or_update(change())
    assert git(catalog, "rev-parse", "kiln/bump/python") == theirs
    assert forge(catalog).list() == []


def test_a_path_through_a_committed_symlink_is_refused(catalog: Path) -> None:
    (catalog / "catalog").symlink_to("images")
    git(catalog, "add", "catalog")
    git(catalog, "commit", "-q", "-m", "a link to images/")
    with pytest.raises(InputError, match="would be under the file 'catalog'"):
        forge(catalog).open_or_update(change(extra={"catalog/python.lock.json": b"{}"}))
