"""Upstream repository discovery, offline: URL normalisation, hostile packaging files,
the mirror layouts and the resolution order (real git repositories built by the tests;
a clone that fails is a real ``git clone`` of a missing local folder)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from kiln.errors import InputError, RemoteContentError
from kiln.research.discover import (
    Candidate,
    Discovery,
    Packaging,
    UpstreamNotFoundError,
    copyright_urls,
    discover,
    find_in_mirrors,
    metadata_urls,
    mirror_dirs,
    normalise_url,
    open_upstream,
    read_packaging_tar,
    upstream_version,
)
from research.conftest import Upstream, git


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("https://github.com/jqlang/jq", "https://github.com/jqlang/jq.git"),
        ("https://github.com/jqlang/jq.git", "https://github.com/jqlang/jq.git"),
        ("https://github.com/jqlang/jq/issues", "https://github.com/jqlang/jq.git"),
        ("https://github.com/jqlang/jq/tree/master/src", "https://github.com/jqlang/jq.git"),
        ("git://github.com/jqlang/jq.git", "https://github.com/jqlang/jq.git"),
        ("git@github.com:jqlang/jq.git", "https://github.com/jqlang/jq.git"),
        ("http://www.github.com/urllib3/urllib3/", "https://github.com/urllib3/urllib3.git"),
        ("https://jqlang.github.io/jq", "https://github.com/jqlang/jq.git"),
        ("https://jqlang.github.io/jq/manual/", "https://github.com/jqlang/jq.git"),
        ("https://gitlab.com/group/sub/repo", "https://gitlab.com/group/sub/repo.git"),
        ("https://gitlab.com/group/sub/repo/-/issues/3", "https://gitlab.com/group/sub/repo.git"),
        (
            "https://gitlab.gnome.org/GNOME/libxml2/-/tree/master",
            "https://gitlab.gnome.org/GNOME/libxml2.git",
        ),
        (
            "https://gitlab.gnome.org/GNOME/libxml2.git",
            "https://gitlab.gnome.org/GNOME/libxml2.git",
        ),
        (
            "https://salsa.debian.org/debian/jq.git -b debian/latest",
            "https://salsa.debian.org/debian/jq.git",
        ),
        ("https://codeberg.org/o/r/issues", "https://codeberg.org/o/r.git"),
        ("https://git.sr.ht/~sircmpwn/scdoc/tree", "https://git.sr.ht/~sircmpwn/scdoc"),
        ("https://git.savannah.gnu.org/git/acl.git", "https://git.savannah.gnu.org/git/acl.git"),
        ("git://git.example.org/pub/x.git", "git://git.example.org/pub/x.git"),
        # cgit and gitweb browse pages, Savannah's project pages
        ("https://git.savannah.gnu.org/cgit/tar.git", "https://git.savannah.gnu.org/git/tar.git"),
        (
            "https://git.savannah.gnu.org/cgit/tar.git/tree/src/extract.c",
            "https://git.savannah.gnu.org/git/tar.git",
        ),
        ("https://savannah.gnu.org/projects/tar/", "https://git.savannah.gnu.org/git/tar.git"),
        ("https://savannah.nongnu.org/p/acl", "https://git.savannah.nongnu.org/git/acl.git"),
        (
            "https://git.kernel.org/pub/scm/utils/dash/dash.git/log/",
            "https://git.kernel.org/pub/scm/utils/dash/dash.git",
        ),
        (
            "https://sourceware.org/git/?p=glibc.git;a=summary",
            "https://sourceware.org/git/glibc.git",
        ),
        (
            "https://git.example.org/gitweb.cgi?p=tools/x.git;a=commit;h=abc",
            "https://git.example.org/tools/x.git",
        ),
        ("https://git.example.org/?p=../../etc.git", None),
        ("https://git.example.org/?p=x", None),  # not a repository name
        # not repositories, or not safe to hand to git
        ("https://www.libarchive.org/", None),
        ("https://urllib3.readthedocs.org", None),
        ("https://github.com/jqlang", None),
        ("file:///etc/x.git", None),
        ("ext::sh -c touch% /tmp/pwned", None),
        ("https://user:secret@github.com/o/r.git", None),
        ("https://github.com/o/../r", None),
        ("https://github.com/o/r\x1b[31m", None),
        ("-uhttps://github.com/o/r", None),
        ("ssh://git@example.org/x.git", None),
        ("https://" + "a" * 600 + ".org/x.git", None),
        ("", None),
        (42, None),
        (None, None),
    ],
)
def test_normalise_url(raw: object, url: str | None) -> None:
    assert normalise_url(raw) == url


def test_upstream_version() -> None:
    assert upstream_version("1.7.1-6+deb13u4") == "1.7.1"
    assert upstream_version("1:3.7.4+dfsg-4+deb13u1") == "3.7.4"
    assert upstream_version("2.3.0") == "2.3.0"
    assert upstream_version("1.2~rc1+ds-1") == "1.2~rc1"
    assert upstream_version("2.12.7+dfsg+really2.9.14-2.1+deb13u3") == "2.9.14"
    assert upstream_version("1:1.3.dfsg+really1.3.1-1+deb13u1") == "1.3.1"


def test_no_candidate_at_all_says_what_was_read() -> None:
    """A mirror lacking the packaging tarball: only the index's fields were read."""
    bare = Packaging(
        "z", "1.3-1", "z 1.3-1 (trixie)", homepage="http://z.example.net/",
        notes=("z 1.3-1 (trixie): z_1.3-1.debian.tar.xz is missing from the mirror",),
    )  # fmt: skip
    found = discover(bare)
    assert found.candidates == []
    with pytest.raises(UpstreamNotFoundError) as caught, open_upstream(found):
        pass
    assert caught.value.details == [
        "no repository URL in z 1.3-1 (trixie), its Homepage or Vcs-Git",
        "note: z 1.3-1 (trixie): z_1.3-1.debian.tar.xz is missing from the mirror",
    ]


def test_metadata_fields_in_order_lists_and_non_strings() -> None:
    data = (
        b"Bug-Database: https://github.com/o/r/issues\n"
        b"Repository:\n  - https://github.com/o/r.git\n  - {nested: 1}\n"
        b"Repository-Browse: 17\n"
        b"Name: r\n"
    )
    found, notes = metadata_urls(data, where="m")
    assert found == [
        ("Repository", "https://github.com/o/r.git"),
        ("Bug-Database", "https://github.com/o/r/issues"),
    ]
    assert any("Repository is not a string (CommentedMap)" in n for n in notes)
    assert any("Repository-Browse is not a string (int)" in n for n in notes)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"Repository: [unclosed\n", "not read"),
        (b"- just\n- a list\n", "not a mapping"),
        (b"a: &x https://github.com/o/r\nRepository: *x\n", "not read"),
        (b"Repository: \xff\xfe\n", "not read"),
        (b"", "not a mapping"),
    ],
)
def test_hostile_metadata_is_a_note_not_an_error(data: bytes, says: str) -> None:
    found, notes = metadata_urls(data, where="pkg: debian/upstream/metadata")
    assert found == []
    assert len(notes) == 1
    assert notes[0].startswith("pkg: debian/upstream/metadata")
    assert says in notes[0]


def test_copyright_header_urls_and_free_text() -> None:
    dep5 = (
        b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        b"Upstream-Name: r\n"
        b"Upstream-Contact: Someone <someone@example.org>, https://gitlab.com/g/r/-/issues\n"
        b"Source: https://github.com/o/r/releases\n"
        b"  (tarballs), git://git.example.org/r.git\n"
        b"\n"
        b"Files: *\nCopyright: x\nLicense: MIT\nComment: https://github.com/not/header\n"
    )
    found, notes = copyright_urls(dep5, where="c")
    assert notes == []
    assert found == [
        ("Source", "https://github.com/o/r/releases"),
        ("Source", "git://git.example.org/r.git"),
        ("Upstream-Contact", "https://gitlab.com/g/r/-/issues"),
    ]
    found, notes = copyright_urls(b"This is r, (c) 1999 https://github.com/o/r\n", where="c")
    assert found == []
    assert "not machine-readable" in notes[0]


def _tar(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:xz") as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                archive.addfile(info, io.BytesIO(member[1]))
    return out.getvalue()


def test_packaging_tar_reads_only_the_two_files_and_refuses_escapes() -> None:
    link = tarfile.TarInfo("debian/copyright")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
    data = _tar(
        [("debian/changelog", b"x"), ("./debian/upstream/metadata", b"Repository: u\n"), link]
    )
    files, notes = read_packaging_tar(data, display="p.debian.tar.xz")
    assert files == {"debian/upstream/metadata": b"Repository: u\n"}
    assert notes == ["p.debian.tar.xz: debian/copyright is not a regular file: not read"]
    with pytest.raises(RemoteContentError, match="leads outside the tree"):
        read_packaging_tar(_tar([("../debian/copyright", b"x")]), display="p")
    with pytest.raises(RemoteContentError, match="not a readable tar archive"):
        read_packaging_tar(b"not a tarball at all", display="p")


def _packaging(**files: bytes) -> Packaging:
    return Packaging(
        "r", "1.1-2", "r_1.1-2.debian.tar.xz",
        homepage="https://o.github.io/r/", vcs_git="https://salsa.debian.org/debian/r.git",
        files={f"debian/{k.replace('_', '/')}": v for k, v in files.items()},
    )  # fmt: skip


def test_discover_orders_dedupes_and_keeps_vcs_git_last() -> None:
    found = discover(
        _packaging(
            upstream_metadata=b"Repository: https://github.com/o/r.git\n"
            b"Bug-Database: https://gitlab.com/mirror/r/-/issues\n",
            copyright=b"Format: x\nSource: https://github.com/o/r\n",
        )
    )
    assert [c.url for c in found.candidates] == [
        "https://github.com/o/r.git",
        "https://gitlab.com/mirror/r.git",
        "https://salsa.debian.org/debian/r.git",
    ]
    first = found.candidates[0]
    assert first.origins == (
        "debian/upstream/metadata Repository",
        "Homepage",
        "debian/copyright Source",
    )
    assert not first.packaging
    assert found.candidates[-1].packaging
    assert found.candidates[-1].origins == ("Vcs-Git",)


def _bare(source: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(dest)], check=True, timeout=60)
    return dest


def test_mirror_layouts_and_a_mirror_of_another_origin(upstream: Upstream, tmp_path: Path) -> None:
    flat, nested = tmp_path / "flat", tmp_path / "nested"
    _bare(upstream.work, flat / "r.git")
    _bare(upstream.work, nested / "gitlab.com" / "g" / "sub" / "r.git")
    url = "https://gitlab.com/g/sub/r.git"
    assert find_in_mirrors(url, [nested, flat]) == (nested / "gitlab.com/g/sub/r.git", [])
    assert find_in_mirrors(url, [flat]) == (flat / "r.git", [])
    assert find_in_mirrors("https://github.com/o/R.git", [flat]) == (flat / "r.git", [])
    git(flat / "r.git", "config", "remote.origin.url", "https://github.com/someone/r")
    path, notes = find_in_mirrors(url, [flat])
    assert path is None
    assert notes == [
        f"mirror {flat / 'r.git'} is a clone of https://github.com/someone/r.git, not {url}: "
        "skipped"
    ]
    assert mirror_dirs({"KILN_RESEARCH_MIRRORS": f"{flat}::{nested}"}) == [flat, nested]
    assert mirror_dirs({}) == []


def test_open_upstream_tries_in_order_and_says_why(upstream: Upstream, tmp_path: Path) -> None:
    mirror = tmp_path / "mirrors"
    _bare(upstream.work, mirror / "r.git")
    missing = (tmp_path / "nowhere" / "x.git").as_uri()
    found = Discovery(
        _packaging(),
        [Candidate(missing, ("Homepage",)), Candidate("https://github.com/o/r.git", ("x",))],
        [],
    )
    with open_upstream(found, mirrors=[mirror]) as (repo, used):
        assert repo.resolve("v1.1") is not None
        assert used.candidate.url == "https://github.com/o/r.git"
        assert used.location == str(mirror / "r.git")
        assert [url for url, _ in used.tried] == [missing]
        assert "cannot clone" in used.tried[0][1]
    with pytest.raises(UpstreamNotFoundError) as caught, open_upstream(found, mirrors=[]):
        pass
    assert caught.value.exit_code == 3
    assert len(caught.value.details) == 2
    assert caught.value.details[0].startswith(f"{missing}: cannot clone")
    assert caught.value.details[1].startswith("https://github.com/o/r.git: ")


def test_an_error_inside_the_block_is_not_a_failed_candidate(
    upstream: Upstream, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirrors"
    _bare(upstream.work, mirror / "r.git")
    found = Discovery(_packaging(), [Candidate("https://github.com/o/r.git", ("x",))], [])
    with (
        pytest.raises(InputError, match="the caller's own"),
        open_upstream(found, mirrors=[mirror]),
    ):
        raise InputError("the caller's own")


def test_vcs_git_is_used_only_with_upstream_history(upstream: Upstream, tmp_path: Path) -> None:
    """Debian's packaging repository counts only with upstream's release tag of 1.1."""
    mirror = tmp_path / "mirrors"
    packaging_only = tmp_path / "packaging"
    packaging_only.mkdir()
    git(packaging_only, "init", "-q", "-b", "debian/latest")
    (packaging_only / "debian").mkdir()
    (packaging_only / "debian" / "changelog").write_text("r (1.1-2) unstable\n")
    git(packaging_only, "add", ".")
    git(packaging_only, "commit", "-q", "-m", "packaging")
    for tag in ("debian/1.1-2", "upstream/1.1"):
        git(packaging_only, "tag", tag)
    _bare(packaging_only, mirror / "salsa.debian.org" / "debian" / "r.git")
    vcs = Candidate("https://salsa.debian.org/debian/r.git", ("Vcs-Git",), packaging=True)
    with (
        pytest.raises(UpstreamNotFoundError) as caught,
        open_upstream(Discovery(_packaging(), [vcs], []), mirrors=[mirror]),
    ):
        pass
    assert caught.value.details == [
        "https://salsa.debian.org/debian/r.git: Debian packaging only: no upstream tag of 1.1"
    ]
    # the same name with upstream's history (its v1.1 tag) is taken
    other = tmp_path / "other"
    _bare(upstream.work, other / "r.git")
    with open_upstream(Discovery(_packaging(), [vcs], []), mirrors=[other]) as (repo, used):
        assert used.candidate is vcs
        assert repo.resolve("v1.1") is not None
