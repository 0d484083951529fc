"""The 3-way port of a fix that does not apply to the release (kiln.research.port) and
``check_on_release``'s choice between the commit's own diff and its port.

Real git repositories made here: the release is tag ``v1.0``; on the main line, a
commit changes a line two lines above the code the later fix changes, so the fix's
context is not in the release (``patch -F 0`` rejects it) while git's merge carries
the fix over cleanly. A second fix changes that very line: a true conflict. The
"release tree" stands for the unpacked Debian source: the tag's files in a folder.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.pipeline.backport import PatchRejectedError, apply_patches
from kiln.recipes.build import BuildError
from kiln.research import backport as research_backport
from kiln.research.gitrepo import open_repo
from kiln.research.patch import add_port_hint, ported_headers
from kiln.research.port import PortConflictError, port_commit
from kiln.research.record import CveRecord, VersionRange
from kiln.research.versions import advisory_affects
from research.conftest import git

BODY = [f"    step({i});" for i in range(12)]


def _source(lines: list[str]) -> str:
    return "int main(void) {\n" + "\n".join(lines) + "\n    return 0;\n}\n"


def _commit(work: Path, lines: list[str], message: str) -> str:
    (work / "src" / "main.c").write_text(_source(lines))
    git(work, "commit", "-q", "-am", message)
    return git(work, "rev-parse", "HEAD")


@pytest.fixture
def upstream(tmp_path: Path) -> dict[str, object]:
    work = tmp_path / "upstream"
    (work / "src").mkdir(parents=True)
    git(work, "init", "-q", "-b", "main")
    (work / "src" / "main.c").write_text(_source(BODY))
    (work / "README").write_text("demo\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "release 1.0")
    git(work, "tag", "v1.0")
    moved = list(BODY)
    moved[4] = "    step_renamed(4);"  # two lines above the fix's line: its context moved
    _commit(work, moved, "refactor: rename step 4")
    fixed = list(moved)
    fixed[6] = "    if (check()) step(6);"
    fix = _commit(work, fixed, "fix the unchecked step (CVE-2026-0001)")
    clash = list(fixed)
    clash[4] = "    if (check()) step_renamed(4);"  # the line the release has differently
    conflict = _commit(work, clash, "fix step 4 too")
    release = tmp_path / "release" / "demo-1.0"
    (release / "src").mkdir(parents=True)
    (release / "src" / "main.c").write_text(_source(BODY))
    return {"work": work, "fix": fix, "conflict": conflict, "release": release}


@pytest.fixture
def scratch_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tempfile's folder for the test, so the test sees what a port leaves behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _state(work: Path) -> tuple[str, str, bytes]:
    return (
        git(work, "rev-parse", "HEAD"),
        git(work, "status", "--porcelain"),
        (work / ".git" / "index").read_bytes(),
    )


def test_a_fix_whose_context_moved_is_ported_and_the_port_applies(
    upstream: dict[str, object], scratch_tmp: Path
) -> None:
    work, fix, release = Path(str(upstream["work"])), str(upstream["fix"]), upstream["release"]
    assert isinstance(release, Path)
    before = _state(work)
    with open_repo(work) as repo:
        own = repo.run(["show", "--format=", fix])
        with pytest.raises(PatchRejectedError):  # the plain patch: context not found
            apply_patches(release, [("fix.patch", own)])
        ported = port_commit(repo, fix, "v1.0", target="demo 1.0-1")
    text = ported.decode()
    assert "+    if (check()) step(6);" in text
    assert "step_renamed" not in text  # only the fix's change, on the release's own lines
    apply_patches(release, [("fix.patch", ported)])
    assert "if (check()) step(6);" in (release / "src" / "main.c").read_text()
    assert _state(work) == before  # the repository is only read
    assert list(scratch_tmp.iterdir()) == []  # the scratch work tree is gone


def test_a_port_reads_a_bare_clone_without_refs(
    upstream: dict[str, object], tmp_path: Path
) -> None:
    """fixbench's read-only clones have no refs/: the port borrows their objects too."""
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(upstream["work"]), str(bare))
    git(bare, "pack-refs", "--all")
    for folder in ("refs",):
        for path in sorted((bare / folder).rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        (bare / folder).rmdir()
    with open_repo(bare) as repo:
        ported = port_commit(repo, str(upstream["fix"]), "v1.0", target="demo 1.0-1")
    assert b"+    if (check()) step(6);" in ported


def test_a_true_conflict_names_the_file_and_writes_nothing(
    upstream: dict[str, object], scratch_tmp: Path
) -> None:
    work, release = Path(str(upstream["work"])), upstream["release"]
    assert isinstance(release, Path)
    before = _state(work)
    original = (release / "src" / "main.c").read_text()
    with open_repo(work) as repo, pytest.raises(PortConflictError) as caught:
        port_commit(
            repo, str(upstream["conflict"]), "v1.0", target="demo 1.0-1",
            rejected=["1 out of 1 hunk FAILED -- saving rejects to file src/main.c.rej"],
        )  # fmt: skip
    error = caught.value
    assert isinstance(error, PatchRejectedError)  # the CLI reports it like a rejected patch
    assert "onto v1.0 conflicts in 1 file(s): src/main.c" in error.message
    assert "conflict: src/main.c" in error.details
    assert any(d.startswith("patch: 1 out of 1 hunk FAILED") for d in error.details)
    assert _state(work) == before
    assert (release / "src" / "main.c").read_text() == original
    assert list(scratch_tmp.iterdir()) == []


def test_a_missing_commit_or_tag_is_an_input_error(upstream: dict[str, object]) -> None:
    with open_repo(Path(str(upstream["work"]))) as repo:
        with pytest.raises(InputError, match=r"no commit 'v9\.9' to port"):
            port_commit(repo, str(upstream["fix"]), "v9.9", target="demo 9.9-1")
        with pytest.raises(InputError, match="no commit"):
            port_commit(repo, "0" * 40, "v1.0", target="demo 1.0-1")


def test_ported_headers_keep_the_origin_and_say_how_the_patch_was_made() -> None:
    headers = [("Description", "fix it"), ("Origin", "upstream, commit:abc"), ("CVE", "CVE-1")]
    out = dict(ported_headers(headers, "curl-8_14_1"))
    assert out["Origin"] == "upstream, commit:abc"
    assert "3-way merge onto the upstream tag curl-8_14_1" in out["Description"]
    assert out["Description"].startswith("fix it\n ")


# ----------------------------------------------- check_on_release: own diff, port, failure

ADVISORY = "the advisory's range through 1.2 includes 1.0"


def _check(
    upstream: dict[str, object],
    monkeypatch: pytest.MonkeyPatch,
    commit: str = "fix",
    *,
    version: str = "1.0-1",
    advisory: str | None = ADVISORY,
) -> tuple[research_backport.ReleaseCheck, bytes]:
    """``check_on_release`` of one of the fixture's commits against the release folder
    (standing for the fetched, unpacked source), and the commit's own diff."""
    release = upstream["release"]
    assert isinstance(release, Path)

    @contextmanager
    def local_tree(source: str, version: str, **_: object) -> Iterator[Path]:
        yield release

    monkeypatch.setattr(research_backport, "_release_tree", local_tree)
    sha = str(upstream[commit])
    with open_repo(Path(str(upstream["work"]))) as repo:
        own = repo.run(["show", "--format=", sha])
        checked = research_backport.check_on_release(
            "demo", version, own, name="fix.patch", work=Path("/nonexistent"), repo=repo,
            sha=sha, advisory=advisory,
        )  # fmt: skip
    return checked, own


def test_check_on_release_ports_only_when_the_diff_does_not_apply(
    upstream: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked, own = _check(upstream, monkeypatch)
    assert checked.ported_onto == "v1.0"
    # the fix's context is not in the release, so its hunks look absent: the advisory's
    # range keeps that from becoming a not_affected claim
    assert checked.verdict.status == "under_investigation"
    assert ADVISORY in checked.note
    assert checked.rejected  # what patch said about the commit's own diff
    assert b"if (check()) step(6);" in checked.diff
    assert checked.diff != own


def test_check_on_release_without_a_tag_fails_as_before(
    upstream: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    release = upstream["release"]
    assert isinstance(release, Path)
    original = (release / "src" / "main.c").read_text()
    with pytest.raises(PatchRejectedError) as caught:
        _check(upstream, monkeypatch, version="7.3-1")  # no tag v7.3
    assert not isinstance(caught.value, PortConflictError)
    assert "does not apply" in caught.value.message
    assert "no tag for upstream version 7.3" in (caught.value.hint or "")
    assert any("FAILED" in d for d in caught.value.details)
    assert (release / "src" / "main.c").read_text() == original


def test_check_on_release_reports_a_conflicting_port(
    upstream: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PortConflictError) as caught:
        _check(upstream, monkeypatch, "conflict")
    assert "conflict: src/main.c" in caught.value.details
    assert any(d.startswith("patch: ") and "FAILED" in d for d in caught.value.details)
    assert any(d.startswith("note: ") and ADVISORY in d for d in caught.value.details)


def test_check_on_release_keeps_not_affected_when_the_advisory_does_not_name_the_version(
    upstream: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked, own = _check(upstream, monkeypatch, advisory=None)
    assert checked.verdict.status == "not_affected"
    assert checked.ported_onto is None
    assert checked.diff == own


@pytest.mark.parametrize(
    ("ranges", "exact", "version", "named"),
    [
        ([VersionRange("7.81.0", "8.20.0", True)], (), "8.14.1", True),
        ([VersionRange("7.81.0", "8.20.0", True)], (), "8.20.0", True),
        ([VersionRange("7.81.0", "8.14.1", False)], (), "8.14.1", False),
        ([VersionRange("1.8.0", None)], (), "1.7.1", False),
        ([VersionRange(None, "2024-01-01")], (), "1.7.1", False),  # a date, not a version
        ([], ("1.7.1",), "1.7.1", True),
        ([], (), "1.7.1", False),
    ],
)
def test_advisory_affects_reads_the_ranges(
    ranges: list[VersionRange], exact: tuple[str, ...], version: str, named: bool
) -> None:
    record = CveRecord(cve="CVE-2026-0001", description="x", ranges=tuple(ranges),
                       exact_versions=exact)  # fmt: skip
    said = advisory_affects(record, version)
    assert (said is not None) == named
    if said:
        assert version in said


def test_a_ported_patch_that_fails_to_build_says_it_is_a_port() -> None:
    exc = BuildError("libxml2 failed to build (exit 2)", hint="the full log is /w/build.log")
    add_port_hint(exc, "v2.9.14", "libxml2 2.12.7+dfsg+really2.9.14-2.1+deb13u3")
    report = exc.diagnostics()
    assert "hint: the patch is a 3-way port onto v2.9.14: git merged the text" in report
    assert "code libxml2 2.12.7+dfsg+really2.9.14-2.1+deb13u3 does not have" in report
    assert report.endswith("; the full log is /w/build.log")  # the build's own hint stays
    bare = BuildError("it failed")
    add_port_hint(bare, "v1", "x 1-1")
    assert bare.hint is not None
    assert bare.hint.endswith("by hand with the release's own functions")
