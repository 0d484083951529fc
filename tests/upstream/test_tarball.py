from __future__ import annotations

import gzip
import tarfile

import pytest

from kiln.assemble import DataMember
from kiln.errors import RemoteContentError
from kiln.upstream import read_npm_tarball

from .conftest import Member, make_tgz, package_tgz


def _read(data: bytes) -> dict[str, DataMember]:
    members = read_npm_tarball(data, name="demo", version="1.0.0", source="demo@1.0.0")
    return {m.path: m for m in members}


def test_members_are_stripped_of_the_top_directory_and_sorted() -> None:
    tgz = package_tgz(
        "demo",
        "1.0.0",
        extra=[
            Member("package/lib", kind=tarfile.DIRTYPE, mode=0o755),
            Member("package/lib/alias.js", kind=tarfile.SYMTYPE, link="index.js"),
            Member("package/run.sh", b"x", mode=0o4755),
        ],
    )
    members = read_npm_tarball(tgz, name="demo", version="1.0.0", source="demo@1.0.0")
    paths = [m.path for m in members]
    assert paths == sorted(paths)
    by_path = {m.path: m for m in members}
    assert by_path["lib/index.js"].content == b"module.exports = 1;\n"
    assert by_path["lib/alias.js"].kind == "symlink"
    assert by_path["run.sh"].mode == 0o755  # setuid dropped, permission bits kept


def test_npm_tarballs_with_another_top_directory_are_read() -> None:
    tgz = make_tgz([Member("node/package.json", b'{"name": "demo", "version": "1.0.0"}')])
    assert list(_read(tgz)) == ["package.json"]


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (Member("/etc/passwd", b"x"), "absolute name"),
        (Member("package/../../etc/passwd", b"x"), r"leaves the package \('\.\.'\)"),
        (Member("package/esc", kind=tarfile.SYMTYPE, link="../../etc"), "leads out of the package"),
        (Member("package/abs", kind=tarfile.SYMTYPE, link="/etc/shadow"), "absolute path"),
        (Member("package/hard", kind=tarfile.LNKTYPE, link="package/package.json"), "hard link"),
        (Member("package/dev", kind=tarfile.CHRTYPE), "device node"),
        (Member("package/fifo", kind=tarfile.FIFOTYPE), "device node, fifo"),
    ],
)
def test_hostile_members_are_refused_naming_the_member(member: Member, message: str) -> None:
    tgz = package_tgz("demo", "1.0.0", extra=[member])
    with pytest.raises(RemoteContentError, match=f"demo@1.0.0: member .*{message}"):
        _read(tgz)


def test_a_symlink_to_a_sibling_directory_inside_the_package_is_kept() -> None:
    tgz = package_tgz(
        "demo", "1.0.0", extra=[Member("package/lib/up", kind=tarfile.SYMTYPE, link="../bin")]
    )
    assert _read(tgz)["lib/up"].link_target == "../bin"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not gzip at all", "not a gzipped tar archive"),
        (gzip.compress(b"\x00" * 10, mtime=0), "corrupt tar archive|not a gzipped tar"),
        (package_tgz("demo", "1.0.0")[:-40], "corrupt tar archive|not a gzipped tar"),
        (make_tgz([Member("package/index.js", b"")]), "has no package.json"),
        (make_tgz([Member("package/package.json", b"{nope")]), "package.json is not JSON"),
        (make_tgz([Member("package/package.json", b"[]")]), "not a JSON object"),
        (package_tgz("other", "1.0.0"), "names other@1.0.0, not the locked demo@1.0.0"),
        (package_tgz("demo", "6.6.6"), "names demo@6.6.6, not the locked demo@1.0.0"),
    ],
    ids=[
        "not-gzip",
        "zeros",
        "truncated",
        "no-manifest",
        "bad-json",
        "not-object",
        "other-name",
        "other-version",
    ],
)
def test_bad_archives_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(RemoteContentError, match=message):
        _read(data)
