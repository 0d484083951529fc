"""kiln.pipeline.backport offline: unstable's tarball read safely, the fix located, patches
checked with the real ``patch``, the DEP-3 header and recipe kiln writes, and hostile input
through the real fetch-and-unpack path (a signed source repository on loopback HTTP)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
import shutil
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fixtures.debrepo import DebSpec, GpgKey, RepoServer, build_deb
from kiln.debian.cache import Cache
from kiln.debian.distro import get_distro
from kiln.debian.sources import Mirrors
from kiln.errors import (
    EnvironmentProblem,
    InputError,
    IntegrityError,
    PolicyError,
    RemoteContentError,
    TransportError,
)
from kiln.net import HttpFetcher, RetryPolicy
from kiln.pipeline import backport
from kiln.pipeline.archive import ArchiveAccess
from kiln.pipeline.backport import (
    DebianTree,
    PatchFile,
    PatchRejectedError,
    apply_patches,
    backport_from_unstable,
    backport_patches,
    locate_fix,
    patch_headers,
    read_debian_tar,
    render_patch,
)
from kiln.recipes.dep3 import parse_dep3
from kiln.recipes.load import load_recipe
from kiln.recipes.model import RecipeTest
from kiln.vuln.db.store import VulnDB
from kiln.vuln.feeds import DebianArchiveFeed, FeedInput, FeedWarning, from_bytes
from kiln.vuln.model import ArchiveStatus, FeedRecord, Finding, FindingStatus, Severity
from recipes.conftest import NOW, SourceRepo, srcrepo, srcrepo_root
from recipes.srcrepo import SourceSpec, build_source_repository

__all__ = ["srcrepo", "srcrepo_root"]  # the source repository fixtures, used below

CVE = "CVE-2026-1234"
DAY = dt.date(2026, 12, 7)


def _tar(members: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:xz") as archive:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return out.getvalue()


def _changelog(*entries: tuple[str, str]) -> bytes:
    blocks = [
        f"hello ({version}) unstable; urgency=medium\n\n{items}\n\n"
        f" -- kiln tests <tests@kiln.invalid>  Thu, 15 Jan 2026 12:00:00 +0000\n"
        for version, items in entries
    ]
    return "\n".join(blocks).encode()


FIX_DIFF = b"""--- a/hello.txt
+++ b/hello.txt
@@ -1 +1 @@
-hello world
+hello, safe world
"""

GIT_PATCH = (
    b"From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001\n"
    b"From: Up Stream <up@example.org>\n"
    b"Date: Mon, 31 Mar 2025 20:48:52 +0200\n"
    b"Subject: [PATCH] greet safely\n\n---\n hello.txt | 2 +-\n\n" + FIX_DIFF
)


def _tree(**members: bytes) -> DebianTree:
    return read_debian_tar(_tar(members), display="hello.debian.tar.xz")


def _locate(tree: DebianTree, **kw: object) -> backport.UnstableFix | None:
    args: dict[str, object] = {
        "source": "hello", "suite": "sid", "version": "1.0-3", "release": "trixie",
        "release_version": "1.0-1",
    }  # fmt: skip
    args.update(kw)
    return locate_fix(tree, CVE, **args)  # type: ignore[arg-type]


# --------------------------------------------------------------- unstable's tarball


def test_debian_tar_keeps_what_kiln_reads_and_refuses_links() -> None:
    data = _tar(
        {"debian/changelog": b"x", "debian/patches/series": b"a.patch\n", "debian/rules": b"r"},
        links={"debian/patches/a.patch": "/etc/shadow"},
    )
    tree = read_debian_tar(data, display="t.tar.xz")
    assert set(tree.files) == {"debian/changelog", "debian/patches/series"}
    assert tree.refused == ("debian/patches/a.patch",)


@pytest.mark.parametrize("name", ["../debian/changelog", "/debian/changelog", "debian/../../x"])
def test_debian_tar_refuses_names_that_leave_the_tree(name: str) -> None:
    with pytest.raises(RemoteContentError, match="leads outside the tree"):
        read_debian_tar(_tar({name: b"x"}), display="evil.debian.tar.xz")


def test_debian_tar_is_size_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backport, "MAX_MEMBER", 100)
    with pytest.raises(RemoteContentError, match=r"debian/changelog is 101 bytes, more than 100"):
        read_debian_tar(_tar({"debian/changelog": b"x" * 101}), display="big.debian.tar.xz")
    # a patch too big to be a fix is refused, not read; what kiln does not read is skipped
    tree = read_debian_tar(
        _tar({"debian/patches/huge.diff": b"x" * 101, "debian/rules": b"x" * 101}), display="t"
    )
    assert tree.refused == ("debian/patches/huge.diff",)
    assert tree.files == {}
    monkeypatch.setattr(backport, "MAX_MEMBER", 1000)
    monkeypatch.setattr(backport, "MAX_UNPACKED", 150)
    members = {"debian/patches/a": b"x" * 100, "debian/patches/b": b"y" * 100}
    with pytest.raises(RemoteContentError, match="more than 150 bytes to read"):
        read_debian_tar(_tar(members), display="big.debian.tar.xz")
    monkeypatch.setattr(backport, "MAX_SCANNED", 150)
    with pytest.raises(RemoteContentError, match="declare more than 150 bytes"):
        read_debian_tar(_tar({"a": b"x" * 100, "b": b"y" * 100}), display="bomb.debian.tar.xz")


def test_garbage_is_not_a_tarball() -> None:
    with pytest.raises(RemoteContentError, match=r"junk\.debian\.tar\.xz: not a readable tar"):
        read_debian_tar(b"\xfd7zXZ\x00 garbage", display="junk.debian.tar.xz")


# ------------------------------------------------------------------ locating the fix


def test_patch_named_by_file_name_with_its_git_headers() -> None:
    tree = _tree(**{
        "debian/changelog": _changelog(
            ("1.0-3", "  * Drop a typo."),
            ("1.0-2", f"  * Fix {CVE}. (Closes: #1118757)\n    - Add d/p/{CVE}.patch"),
            ("1.0-1", "  * Initial release."),
        ),
        "debian/patches/series": f"other.patch\n{CVE}.patch\n".encode(),
        "debian/patches/other.patch": b"Description: unrelated\n\n" + FIX_DIFF,
        f"debian/patches/{CVE}.patch": GIT_PATCH,
    })  # fmt: skip
    fix = _locate(tree)
    assert fix is not None
    assert (fix.kind, fix.fixed_version, fix.bugs) == ("patch", "1.0-2", ("1118757",))
    assert [(p.name, p.why) for p in fix.patches] == [(f"{CVE}.patch", "file name")]
    assert fix.patches[0].description == "greet safely"
    assert ("From", "Up Stream <up@example.org>") in fix.patches[0].headers
    assert fix.changelog_line.startswith(f"* Fix {CVE}.")


def test_patch_named_in_its_dep3_header_or_by_the_changelog_entry() -> None:
    header = _tree(**{
        "debian/changelog": _changelog(("1.0-2", f"  * Security fix for {CVE}.")),
        "debian/patches/series": b"fix-greeting.patch -p1\n",
        "debian/patches/fix-greeting.patch": f"Description: x\nCVE: {CVE}\n\n".encode() + FIX_DIFF,
    })  # fmt: skip
    fix = _locate(header, version="1.0-2")
    assert fix is not None
    assert [(p.name, p.why) for p in fix.patches] == [("fix-greeting.patch", "header")]
    entry = _tree(**{
        "debian/changelog": _changelog(
            ("1.0-2", f"  * Fix {CVE}:\n    - add debian/patches/greeting.patch")
        ),
        "debian/patches/series": b"greeting.patch\nunrelated.patch\n",
        "debian/patches/greeting.patch": FIX_DIFF,
        "debian/patches/unrelated.patch": FIX_DIFF,
    })  # fmt: skip
    fix = _locate(entry, version="1.0-2")
    assert fix is not None
    assert [(p.name, p.why) for p in fix.patches] == [("greeting.patch", "changelog entry")]


def test_new_upstream_version_is_the_upstream_case_and_same_upstream_unlocated() -> None:
    tree = _tree(**{
        "debian/changelog": _changelog(
            ("2.0-1", f"  * New upstream release, fixing {CVE}."), ("1.0-1", "  * Initial.")
        ),
    })  # fmt: skip
    fix = _locate(tree, version="2.0-1")
    assert fix is not None
    assert fix.kind == "upstream"
    assert not fix.patches
    assert "research agent" in fix.note
    assert "upstream 2.0" in fix.note
    same = _tree(**{"debian/changelog": _changelog(("1.0-2", f"  * Fix {CVE}."))})
    fix = _locate(same, version="1.0-2")
    assert fix is not None
    assert fix.kind == "unlocated"


def test_no_fix_when_the_release_has_it_or_the_mention_is_not_a_fix() -> None:
    log = _changelog(("1.0-2", f"  * Fix {CVE}."), ("1.0-1", "  * Initial."))
    tree = _tree(**{"debian/changelog": log})
    assert _locate(tree, release_version="1.0-2") is None  # not newer than the release
    ours = _changelog(("1.0-1+deb13u1", f"  * Backport the fix for {CVE}."))
    assert _locate(tree, release_changelog=ours) is None  # the release names it itself
    low = _tree(**{"debian/changelog": _changelog(("1.0-2", f"  * {CVE} does not affect us."))})
    assert _locate(low) is None
    assert _locate(_tree(**{"debian/changelog": _changelog(("1.0-2", "  * Nothing."))})) is None


def test_series_naming_a_path_outside_the_tree_is_refused() -> None:
    tree = _tree(**{
        "debian/changelog": _changelog(("1.0-2", f"  * Fix {CVE}.")),
        "debian/patches/series": b"../../outside.patch\n",
    })  # fmt: skip
    with pytest.raises(RemoteContentError, match="outside the tree"):
        _locate(tree)


def test_headers_of_dep3_and_git_patches() -> None:
    assert patch_headers(b"Description: a\n more\nOrigin: upstream\n\n" + FIX_DIFF) == (
        ("Description", "a more"),
        ("Origin", "upstream"),
    )
    assert ("Subject", "[PATCH] greet safely") in patch_headers(GIT_PATCH)
    assert patch_headers(FIX_DIFF) == ()


# ---------------------------------------------------------------- checking a patch


def _hello_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "hello-1.0"
    tree.mkdir()
    (tree / "hello.txt").write_text("hello world\n")
    (tree / "other.txt").write_text("one\ntwo\n")
    return tree


def test_patches_apply_in_order(tmp_path: Path) -> None:
    tree = _hello_tree(tmp_path)
    apply_patches(tree, [("a.patch", GIT_PATCH)])
    assert (tree / "hello.txt").read_text() == "hello, safe world\n"


def test_a_rejected_hunk_is_reported_and_nothing_is_half_applied(tmp_path: Path) -> None:
    tree = _hello_tree(tmp_path)
    two_files = FIX_DIFF + b"--- a/other.txt\n+++ b/other.txt\n@@ -1,2 +1,2 @@\n-uno\n+1\n two\n"
    with pytest.raises(PatchRejectedError, match=r"b\.patch does not apply") as caught:
        apply_patches(tree, [("b.patch", two_files)])
    details = caught.value.details
    failed = next(i for i, line in enumerate(details) if "FAILED at" in line)
    # every rejected hunk is named with its file; files whose hunks applied are not listed
    assert details[failed - 1] == "checking file other.txt"
    assert not any("hello.txt" in line for line in details)
    assert (tree / "hello.txt").read_text() == "hello world\n"  # the good hunk not applied
    assert not list(tree.rglob("*.rej"))
    assert not list(tree.rglob("*.orig"))


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "a/../../x"])
def test_a_patch_path_outside_the_tree_is_refused(tmp_path: Path, path: str) -> None:
    tree = _hello_tree(tmp_path)
    evil = f"--- {path}\n+++ {path}\n@@ -0,0 +1 @@\n+x\n".encode()
    with pytest.raises(InputError, match="outside the source tree"):
        apply_patches(tree, [("evil.patch", evil)])


# ----------------------------------------------------------- what kiln writes


def test_rendered_patch_passes_kilns_dep3_check_with_clean_fields() -> None:
    hostile = PatchFile(
        "x.patch", GIT_PATCH, (("Description", "greet\x1b[31m safely\n now"), ("Bad Key", "v"))
    )
    text = render_patch(hostile, [CVE], updated=DAY).decode()
    header = parse_dep3(text, path="x.patch")
    assert header.cves == (CVE,)
    assert header.description.splitlines() == ["greet safely", " now"]
    assert header.summary == "greet safely"
    assert header.origin == "other, received by kiln as x.patch"
    assert ("Last-Update", "2026-12-07") in header.fields
    assert text.endswith(GIT_PATCH.decode())  # the original kept whole below


def test_a_long_description_keeps_its_lines_as_dep3_continuation_lines() -> None:
    message = "Fix the parser\n\nIt read past the end\n\n\x1b[1mof the buffer\n\n"
    patch = PatchFile("x.patch", FIX_DIFF, (("Description", message), ("Origin", "upstream")))
    text = render_patch(patch, [CVE], updated=DAY).decode()
    assert text.startswith(
        "Description: Fix the parser\n It read past the end\n .\n of the buffer\nOrigin: upstream\n"
    )
    assert parse_dep3(text, path="x.patch").summary == "Fix the parser"
    many = PatchFile("y.patch", FIX_DIFF, (("Description", "s" + "\nline" * 40),))
    block = render_patch(many, [CVE], updated=DAY).decode().split("\n\n", 1)[0]
    assert block.count("\n line") == 24
    assert "\n …\n" in block


# ---------------------------------------------- the whole path, offline and hostile


def _archive(srcrepo: SourceRepo) -> ArchiveAccess:
    url = srcrepo.server.url
    mirrors = Mirrors(debian=f"{url}/debian", security=f"{url}/debian-security")
    return ArchiveAccess(
        mirrors,
        srcrepo.cache,
        HttpFetcher(retry=RetryPolicy(attempts=1)),
        clock=lambda: NOW,
        keyring=srcrepo.key.keyring,
    )


def test_a_patch_that_does_not_apply_writes_nothing(srcrepo: SourceRepo, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    wrong = b"--- a/hello.txt\n+++ b/hello.txt\n@@ -1 +1 @@\n-goodbye world\n+hello\n"
    with pytest.raises(PatchRejectedError, match=r"fix\.patch does not apply to hello-1\.0"):
        backport_patches(
            "hello", "1.0-1+deb13u1", [PatchFile("fix.patch", wrong, ())], [CVE],
            catalog_root=catalog, work=tmp_path / "work", archive=_archive(srcrepo),
        )  # fmt: skip
    assert list(catalog.iterdir()) == []
    assert not (tmp_path / "work" / "recipes").exists()


def test_a_tampered_source_tarball_is_refused(srcrepo: SourceRepo, tmp_path: Path) -> None:
    srcrepo.server.override(
        "/debian-security/pool/updates/main/h/hello/hello_1.0.orig.tar.gz", b"not the tarball"
    )
    with pytest.raises(IntegrityError, match=r"hello_1\.0\.orig\.tar\.gz"):
        backport_patches(
            "hello", "1.0-1+deb13u1", [PatchFile("fix.patch", FIX_DIFF, ())], [CVE],
            catalog_root=tmp_path, work=tmp_path / "work", archive=_archive(srcrepo),
        )  # fmt: skip
    assert not (tmp_path / "recipes").exists()


def test_bad_arguments_are_input_errors(tmp_path: Path) -> None:
    def run(**kw: object) -> None:
        args: dict[str, object] = {
            "source": "hello", "version": "1.0-1",
            "patches": [PatchFile("fix.patch", FIX_DIFF, ())], "cves": [CVE],
        }  # fmt: skip
        args.update(kw)
        backport_patches(catalog_root=tmp_path, work=tmp_path / "w", **args)  # type: ignore[arg-type]

    with pytest.raises(InputError, match="not a CVE id"):
        run(cves=["CVE-12"])
    with pytest.raises(InputError, match="not a patch file name"):
        run(patches=[PatchFile("../x.patch", FIX_DIFF, ())])
    with pytest.raises(InputError, match="outside the source tree"):
        run(patches=[PatchFile("x.patch", b"--- a/../x\n+++ b/../x\n", ())])
    with pytest.raises(InputError, match="not a Debian source package name"):
        run(source="Hello World")
    assert list(tmp_path.iterdir()) == []


def test_an_upstream_case_has_no_patch_to_backport(tmp_path: Path) -> None:
    tree = _tree(**{"debian/changelog": _changelog(("2.0-1", f"  * New upstream, {CVE}."))})
    fix = _locate(tree, version="2.0-1")
    assert fix is not None
    with pytest.raises(PolicyError, match="no unstable patch to backport"):
        backport_from_unstable(fix, catalog_root=tmp_path, work=tmp_path / "w")


def test_the_staged_recipe_loads_and_extends_an_existing_one(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(Path(__file__).parents[2] / "recipes", catalog / "recipes")
    jq = load_recipe(catalog / "recipes" / "jq.yaml").recipe
    staged = backport.stage_recipe(
        "jq", jq.version, [PatchFile("fix.patch", FIX_DIFF, ())], [CVE],
        distro=get_distro("debian-13"), catalog_root=catalog,
        staging=tmp_path / "staged", updated=DAY, note="a note",
    )  # fmt: skip
    loaded = load_recipe(staged.recipe)
    assert loaded.recipe.revision == jq.revision + 1
    assert [p.name for p in loaded.patches] == ["0001-readme-kiln-rebuild.patch", "fix.patch"]
    assert loaded.recipe.tests == jq.tests
    assert loaded.cves == (CVE,)
    assert set(staged.files) == {"recipes/jq.yaml", "recipes/patches/jq/fix.patch"}
    assert staged.files["recipes/jq.yaml"].startswith(b"# a note\n")


def test_recipe_tests_are_added_unless_named_already(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(Path(__file__).parents[2] / "recipes", catalog / "recipes")
    jq = load_recipe(catalog / "recipes" / "jq.yaml").recipe
    ours = (
        RecipeTest(name="version", run=("false",)),  # jq's recipe has one: kept, not this
        RecipeTest(name="null dictionary", run=("sh", "-c", "true"), expect_stdout=""),
    )
    staged = backport.stage_recipe(
        "jq", jq.version, [PatchFile("fix.patch", FIX_DIFF, ())], [CVE],
        distro=get_distro("debian-13"), catalog_root=catalog,
        staging=tmp_path / "staged", updated=DAY, note="n", tests=ours,
    )  # fmt: skip
    tests = load_recipe(staged.recipe).recipe.tests
    assert [t.name for t in tests] == [*(t.name for t in jq.tests), "null dictionary"]
    assert tests[0] == jq.tests[0]
    assert tests[-1].expect_stdout == ""


# ------------------------------------------------------- the package's own tests


def _log(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.build.log"
    path.write_text(text)
    return path


def test_test_step_output_and_summaries_are_read_from_the_log(tmp_path: Path) -> None:
    ctest = (
        "   dh_auto_build\nbuilt\n   dh_auto_test -O--buildsystem=cmake\n"
        "make[1]: Entering directory '/b'\n1/2 Test #1: frametest ... Passed\n"
        "100% tests passed, 0 tests failed out of 2\nmake[1]: Leaving directory '/b'\n"
        "   create-stamp debian/debhelper-build-stamp\n   dh_install\n"
    )
    outcome = backport.package_test_outcome(_log(tmp_path, ctest), [("t", True, "")])
    assert outcome.ran
    assert outcome.lines == 2
    assert outcome.summary == ("100% tests passed, 0 tests failed out of 2",)
    assert outcome.recipe_tests == (("t", True, ""),)


def test_a_test_step_that_prints_nothing_ran_no_suite(tmp_path: Path) -> None:
    empty = "   dh_auto_test -O--buildsystem=cmake\n   create-stamp debian/debhelper-build-stamp\n"
    outcome = backport.package_test_outcome(_log(tmp_path, empty))
    assert not outcome.ran
    assert outcome.summary == ("dh_auto_test ran and found no test suite for the build system",)
    # libxml2 (trixie): the arch build has no test step, the indep override only says so
    skipped = (
        "   dh_auto_build -i\n   debian/rules override_dh_auto_test-indep\n"
        "make[1]: Entering directory '/b'\n: Skipping tests during indep build\n"
        "make[1]: Leaving directory '/b'\n   dh_prep -i\n"
    )
    noop = backport.package_test_outcome(_log(tmp_path, skipped))
    assert not noop.ran
    assert noop.summary == (
        "the test step ran no test suite, it only said: : Skipping tests during indep build",
    )
    plain = backport.package_test_outcome(_log(tmp_path, "make\n"))
    assert not plain.ran
    assert "no dh_auto_test step" in plain.summary[0]


# ---------------------------------------------------------- what to backport


class _Statuses(DebianArchiveFeed):
    """The debian-archive feed's table, filled from given statuses (no archive read)."""

    def __init__(self, rows: list[ArchiveStatus]) -> None:
        super().__init__()
        self.rows = rows

    def records(self, source: FeedInput) -> Iterator[FeedRecord | FeedWarning]:
        del source
        yield from self.rows


def test_candidates_are_unstable_fixes_newer_than_the_lock(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    (catalog / "images").mkdir(parents=True)
    lock = Path(__file__).parents[2] / "images" / "base.lock.json"
    shutil.copy(lock, catalog / "images" / "base.lock.json")

    def status(cve: str, state: str, version: str, confidence: str = "fix") -> ArchiveStatus:
        return ArchiveStatus(
            "lz4", cve, "trixie", state, version, "sid", f"* Fix {cve}.", confidence, "1.10.0-4"
        )

    rows = [
        status("CVE-2025-62813", "fix-in-unstable", "1.10.0-5"),
        status("CVE-2025-0001", "fix-in-unstable", "1.10.0-4"),  # the lock has it
        status("CVE-2025-0002", "fix-in-unstable", "1.10.0-6", "low"),  # not a fix
        status("CVE-2025-0003", "fixed", "1.10.0-4"),
        dataclasses.replace(status("CVE-2025-0004", "fix-in-unstable", "9-1"), source="nothere"),
    ]
    db = VulnDB.open(str(tmp_path / "vuln.db"))
    db.import_feed(_Statuses(rows), from_bytes("statuses", b"1"))
    db.close()
    found = backport.unstable_candidates(catalog, db=str(tmp_path / "vuln.db"), arch="amd64")
    assert [(c.image, c.source, c.locked_version, c.cve, c.fixed_version) for c in found] == [
        ("base", "lz4", "1.10.0-4", "CVE-2025-62813", "1.10.0-5")
    ]


def test_beat_progress_passes_phases_on_and_a_raising_beat_cancels() -> None:
    beats: list[str] = []
    progress = backport.BeatProgress(beats.append)
    with progress.phase("building lz4") as phase:
        phase.update("dh_auto_test")
    assert beats == ["building lz4", "building lz4: dh_auto_test", "building lz4: done"]

    class CancelledError(Exception):
        pass

    def cancelled(text: str) -> None:
        raise CancelledError(text)

    with pytest.raises(CancelledError, match="reading the signed source indexes"):
        backport.find_unstable_fix("lz4", CVE, progress=backport.BeatProgress(cancelled))


# ------------------------------ find_unstable_fix's signed I/O, against a fixture archive


@pytest.fixture(scope="module")
def unstable_root(tmp_path_factory: pytest.TempPathFactory, debrepo_key: GpgKey) -> Path:
    """trixie (+ updates, security) and sid with two newer versions of ``hello``."""
    root = tmp_path_factory.mktemp("unstable")
    build_source_repository(
        root,
        {
            "trixie": [SourceSpec("1.0-1")],
            "trixie-updates": [],
            "trixie-security": [SourceSpec("1.0-1+deb13u1")],
            "sid": [SourceSpec("1.0-2"), SourceSpec("1.0-3")],
            "experimental": [],
        },
        key=debrepo_key,
    )
    return root


@pytest.fixture
def unstable(unstable_root: Path, debrepo_key: GpgKey, tmp_path: Path) -> Iterator[ArchiveAccess]:
    with RepoServer(unstable_root) as server:
        mirrors = Mirrors(debian=f"{server.url}/debian", security=f"{server.url}/debian-security")
        access = ArchiveAccess(
            mirrors, Cache(tmp_path / "cache"), HttpFetcher(retry=RetryPolicy(attempts=1)),
            clock=lambda: NOW, keyring=debrepo_key.keyring,
        )  # fmt: skip
        access.server = server  # type: ignore[attr-defined]  # the test's handle on it
        yield access


def _server(access: ArchiveAccess) -> RepoServer:
    server: RepoServer = access.server  # type: ignore[attr-defined]
    return server


SID_TAR = "/debian/pool/main/h/hello/hello_1.0-{}.debian.tar.xz"


def test_find_reads_unstables_newest_packaging_through_the_signed_path(
    unstable: ArchiveAccess,
) -> None:
    beats: list[str] = []
    progress = backport.BeatProgress(beats.append)
    # the fixture's changelogs name no CVE: unstable does not fix it
    assert backport.find_unstable_fix("hello", CVE, archive=unstable, progress=progress) is None
    assert "reading hello 1.0-3 (sid)" in beats
    paths = _server(unstable).paths()
    assert SID_TAR.format(3) in paths
    assert "/debian/dists/sid/InRelease" in paths
    assert SID_TAR.format(2) not in paths  # the newest readable version decides


def test_find_tries_the_next_version_when_the_mirror_lacks_one(unstable: ArchiveAccess) -> None:
    server = _server(unstable)
    server.drop(SID_TAR.format(3))
    server.drop(SID_TAR.format(2))
    with pytest.raises(backport.MirrorMissingError, match=r"hello_1\.0-3\.debian") as caught:
        backport.find_unstable_fix("hello", CVE, archive=unstable)
    assert "2 unstable version(s) of hello newer than 1.0-1+deb13u1" in (caught.value.hint or "")
    server.reset()
    server.drop(SID_TAR.format(3))
    beats: list[str] = []
    # 1.0-2 is read; it names no fix, but the missing 1.0-3 might: still no verdict
    with pytest.raises(backport.MirrorMissingError, match=r"hello_1\.0-3\.debian") as caught:
        backport.find_unstable_fix(
            "hello", CVE, archive=unstable, progress=backport.BeatProgress(beats.append)
        )
    assert "reading hello 1.0-2 (sid)" in beats
    assert "1.0-2 (sid) read and name no fix" in (caught.value.hint or "")


def test_find_refuses_a_tampered_packaging_tarball_and_reports_a_failing_mirror(
    unstable: ArchiveAccess,
) -> None:
    _server(unstable).override(SID_TAR.format(3), b"\xfd7zXZ\x00 not the tarball")
    with pytest.raises(IntegrityError, match=r"hello_1\.0-3\.debian\.tar\.xz"):
        backport.find_unstable_fix("hello", CVE, archive=unstable)
    _server(unstable).reset()
    _server(unstable).fail(SID_TAR.format(3), times=5, status=500)
    with pytest.raises(TransportError):
        backport.find_unstable_fix("hello", CVE, archive=unstable)


# ----------------------------------------------------------------- the image's PR files


def test_the_spec_gets_kilns_repository_after_its_distro_line() -> None:
    spec = (Path(__file__).parents[2] / "images" / "base.yaml").read_bytes()
    changed = backport.with_kiln_repository(spec, "images/base.yaml")
    added = [line for line in changed.splitlines() if line not in spec.splitlines()]
    assert added == [b"repositories: [kiln]   # kiln's rebuilds (backports)"]
    assert changed.index(b"repositories:") > changed.index(b"distro: debian-13")
    assert backport.with_kiln_repository(changed, "x") == changed  # already there
    with pytest.raises(InputError, match="repositories is 'other'") as caught:
        backport.with_kiln_repository(b"name: x\ndistro: debian-13\nrepositories: other\n", "x")
    assert caught.value.location is not None
    assert caught.value.location.line == 3
    with pytest.raises(InputError, match="no top-level distro"):
        backport.with_kiln_repository(b"name: x\n", "x")


def test_packages_left_to_debian_are_named_per_variant_and_arch(tmp_path: Path) -> None:
    lock = json.loads((Path(__file__).parents[2] / "images" / "base.lock.json").read_bytes())
    for package in lock["variants"]["dev"]["amd64"]["packages"]:
        if package["source"] == "lz4":
            package.update(version="1.10.0-4+kiln1", suite="kiln")
    path = tmp_path / "base.lock.json"
    path.write_text(json.dumps(lock))
    left = backport.packages_not_rebuilt(path, "lz4", "1.10.0-4+kiln1")
    assert left == ("dev/arm64: liblz4-1 1.10.0-4 (trixie)",)


def test_a_new_patch_is_checked_on_top_of_the_recipes_kept_patches(
    srcrepo: SourceRepo, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    (catalog / "recipes" / "patches" / "hello").mkdir(parents=True)
    first = b"Description: greet kiln\nOrigin: vendor, kiln\nCVE: none\n\n" + FIX_DIFF.replace(
        b"hello, safe world", b"hello kiln"
    )
    (catalog / "recipes" / "patches" / "hello" / "first.patch").write_bytes(first)
    (catalog / "recipes" / "hello.yaml").write_text(
        "source: hello\nversion: 1.0-1+deb13u1\npatches:\n  - path: patches/hello/first.patch\n"
    )
    on_top = b"--- a/hello.txt\n+++ b/hello.txt\n@@ -1 +1 @@\n-hello kiln\n+hello, safe kiln\n"
    work = tmp_path / "work"
    archive = _archive(srcrepo)
    # on Debian's tree alone the patch does not apply ...
    shutil.move(catalog / "recipes" / "hello.yaml", tmp_path / "hello.yaml")
    with pytest.raises(PatchRejectedError):
        backport_patches(
            "hello", "1.0-1+deb13u1", [PatchFile("second.patch", on_top, ())], [CVE],
            catalog_root=catalog, work=work, archive=archive,
        )  # fmt: skip
    shutil.move(tmp_path / "hello.yaml", catalog / "recipes" / "hello.yaml")
    # ... after the recipe's own patch it does: the recipe is staged with both, revision 2
    # (the build then stops at the build root: the fixture archive has no binary packages)
    with pytest.raises(EnvironmentProblem, match="could not create the trixie/amd64 build root"):
        backport_patches(
            "hello", "1.0-1+deb13u1", [PatchFile("second.patch", on_top, ())], [CVE],
            catalog_root=catalog, work=work, archive=archive,
        )  # fmt: skip
    staged = load_recipe(work / "recipes" / "hello.yaml")
    assert [p.name for p in staged.patches] == ["first.patch", "second.patch"]
    assert staged.recipe.revision == 2
    assert (catalog / "recipes" / "hello.yaml").read_text().count("second") == 0


def test_oversized_tarballs_are_refused(
    srcrepo: SourceRepo, unstable: ArchiveAccess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a source tarball longer than its signed index entry: refused while downloading
    orig = "/debian-security/pool/updates/main/h/hello/hello_1.0.orig.tar.gz"
    real = (srcrepo.root / orig.lstrip("/")).read_bytes()
    srcrepo.server.override(orig, real + b"\0" * 4096)
    with pytest.raises(IntegrityError, match=r"more than the \d+ bytes promised"):
        backport_patches(
            "hello", "1.0-1+deb13u1", [PatchFile("fix.patch", FIX_DIFF, ())], [CVE],
            catalog_root=tmp_path, work=tmp_path / "work", archive=_archive(srcrepo),
        )  # fmt: skip
    # unstable's packaging tarball whose signed size is over the bound: not even fetched
    monkeypatch.setattr(backport, "MAX_DEBIAN_TAR", 100)
    with pytest.raises(RemoteContentError, match=r"hello_1\.0-3\.debian\.tar\.xz is \d+ bytes"):
        backport.find_unstable_fix("hello", CVE, archive=unstable)
    assert SID_TAR.format(3) not in _server(unstable).paths()


def test_lock_changes_are_the_packages_that_moved(tmp_path: Path) -> None:
    base = Path(__file__).parents[2] / "images" / "base.lock.json"
    lock = json.loads(base.read_bytes())
    for package in lock["variants"]["dev"]["amd64"]["packages"]:
        if package["name"] == "liblz4-1":
            package.update(version="1.10.0-4+kiln1", suite="kiln")
    lock["variants"]["dev"]["amd64"]["packages"] = [
        p for p in lock["variants"]["dev"]["amd64"]["packages"] if p["name"] != "tzdata"
    ]
    new = tmp_path / "base.lock.json"
    new.write_text(json.dumps(lock))
    tzdata = next(
        p["version"]
        for p in json.loads(base.read_bytes())["variants"]["dev"]["amd64"]["packages"]
        if p["name"] == "tzdata"
    )
    assert backport.lock_changes(base, new, ["dev"], "amd64") == (
        ("liblz4-1", "1.10.0-4", "1.10.0-4+kiln1"),
        ("tzdata", tzdata, None),
    )
    assert backport.lock_changes(base, new, ["runtime"], "amd64") == ()


def test_concurrent_publishes_to_one_repository_keep_every_package(tmp_path: Path) -> None:
    """Factory workers backporting at once publish to one kiln repository: each publish
    regenerates the indexes from the whole pool, so without the lock a slower writer's
    index could drop a faster one's package."""
    debs = [
        build_deb(DebSpec(f"pkg{i}", "1.0-1+kiln1"), tmp_path / "debs" / f"pkg{i}.deb")
        for i in range(6)
    ]
    repo = tmp_path / "repo"
    home = tmp_path / "gnupg"
    backport.publish_debs(debs[:1], repo, gnupghome=home)  # the key, made once
    with ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(lambda d: backport.publish_debs([d], repo, gnupghome=home), debs[1:]))
    index = (repo / "dists" / "kiln" / "main" / "binary-amd64" / "Packages").read_text()
    assert sorted(re.findall(r"^Package: (\S+)$", index, flags=re.MULTILINE)) == [
        f"pkg{i}" for i in range(6)
    ]


def _finding(cve: str, package: str, **kw: object) -> Finding:
    fields: dict[str, object] = {
        "id": cve, "aliases": (), "package_ecosystem": "deb", "package_name": package,
        "package_version": "1.10.0-4", "package_purl": f"pkg:deb/debian/{package}@1.10.0-4",
        "source_name": "lz4", "source_version": "1.10.0-4", "locations": (),
        "status": FindingStatus.FIX_IN_UNSTABLE, "fixed_version": None,
        "severity": Severity.HIGH, "severity_source": "nvd", "cvss_vector": None,
        "cvss_score": None, "kev": True, "epss": 0.5, "title": "t", "urls": (), "matches": (),
        "unstable_version": "1.10.0-5",
    }  # fmt: skip
    fields.update(kw)
    return Finding(**fields)  # type: ignore[arg-type]


def test_cve_rows_are_one_per_vulnerability_and_package_sorted() -> None:
    rows = backport.cve_rows(
        [
            _finding("CVE-2025-62813", "liblz4-1"),
            _finding("CVE-2025-0001", "liblz4-1", fixed_version="1.10.0-4+deb13u1"),
            _finding("CVE-2025-62813", "liblz4-1"),  # the same, from another variant
        ]
    )
    assert [(r.id, r.package, r.fixed_version, r.severity, r.kev) for r in rows] == [
        ("CVE-2025-0001", "liblz4-1", "1.10.0-4+deb13u1", "high", True),
        ("CVE-2025-62813", "liblz4-1", "1.10.0-5", "high", True),  # unstable's version
    ]
