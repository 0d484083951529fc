"""Deterministic layer tarballs: order, headers, hard links, compression, layer split."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest
import zstandard

from assemble.helpers import EPOCH, member, pkg
from kiln.assemble.fs import USRMERGE, Entry, Plan, dir_entry, file_entry, symlink_entry
from kiln.assemble.layers import Compression, split_layers, write_layer
from kiln.assemble.plan import plan_from_packages
from kiln.errors import InputError


def _members(blob: Path, compression: str = "gzip") -> list[tarfile.TarInfo]:
    data = blob.read_bytes()
    if compression == "gzip":
        data = gzip.decompress(data)
    elif compression == "zstd":
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def _sample() -> Plan:
    return Plan.empty().with_entries(
        file_entry("usr/bin/b", b"bee", mode=0o755, uid=0, gid=0),
        file_entry("usr/bin-extra/x", b"x"),
        dir_entry("home/nonroot", mode=0o700, uid=65532, gid=65532),
        symlink_entry("bin", "usr/bin", package=USRMERGE),
        file_entry("usr/share/" + "d" * 120 + "/long", b"long name"),
        Entry("usr/bin/a", "hardlink", 0o755, link_target="usr/bin/b", package="p"),
    )


def test_layer_entries_are_sorted_normalised_and_dated(tmp_path: Path) -> None:
    plan = _sample()
    layer = write_layer(plan.sorted(), tmp_path / "blobs", epoch=EPOCH, lookup=plan.entries)
    infos = _members(layer.path)
    names = [i.name for i in infos]
    assert names[:2] == ["bin", "home"]
    assert names.index("usr/bin") < names.index("usr/bin/a") < names.index("usr/bin-extra")
    assert not any(n.startswith(("./", "/")) for n in names)
    for info in infos:
        assert info.mtime == EPOCH
        assert (info.uname, info.gname) == ("", "")
    home = next(i for i in infos if i.name == "home/nonroot")
    assert (home.uid, home.gid, home.mode) == (65532, 65532, 0o700)
    assert any(len(n) > 100 for n in names)  # PAX carries the long name


def test_hard_links_point_at_the_first_member_of_their_group(tmp_path: Path) -> None:
    plan = _sample()
    layer = write_layer(plan.sorted(), tmp_path / "blobs", epoch=EPOCH, lookup=plan.entries)
    infos = {i.name: i for i in _members(layer.path)}
    # usr/bin/a sorts first: it carries the content and usr/bin/b links to it
    assert infos["usr/bin/a"].isreg()
    assert infos["usr/bin/a"].size == 3
    assert infos["usr/bin/b"].islnk()
    assert infos["usr/bin/b"].linkname == "usr/bin/a"


def test_a_hard_link_whose_target_is_elsewhere_becomes_a_file(tmp_path: Path) -> None:
    plan = _sample()
    only_link = [e for e in plan.sorted() if e.path != "usr/bin/b"]
    layer = write_layer(only_link, tmp_path / "blobs", epoch=EPOCH, lookup=plan.entries)
    infos = {i.name: i for i in _members(layer.path)}
    assert infos["usr/bin/a"].isreg()
    assert infos["usr/bin/a"].size == 3


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_same_plan_same_bytes(tmp_path: Path, compression: Compression) -> None:
    plan = _sample()
    one = write_layer(plan.sorted(), tmp_path / "a", epoch=EPOCH, compression=compression)
    two = write_layer(plan.sorted(), tmp_path / "b", epoch=EPOCH, compression=compression)
    assert one.path.read_bytes() == two.path.read_bytes()
    assert (one.digest, one.diff_id) == (two.digest, two.diff_id)
    assert one.path.name == one.digest.split(":")[1]
    assert len(_members(one.path, compression)) == one.entries
    if compression == "none":
        assert one.digest == one.diff_id


def test_gzip_header_has_no_time_and_no_name(tmp_path: Path) -> None:
    layer = write_layer(_sample().sorted(), tmp_path, epoch=EPOCH)
    header = layer.path.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] == 0  # FLG: no FNAME, no FEXTRA, no FCOMMENT
    assert header[4:8] == b"\x00\x00\x00\x00"  # MTIME 0


def test_another_epoch_changes_the_digest(tmp_path: Path) -> None:
    a = write_layer(_sample().sorted(), tmp_path / "a", epoch=EPOCH)
    b = write_layer(_sample().sorted(), tmp_path / "b", epoch=EPOCH + 1)
    assert a.diff_id != b.diff_id


def test_split_puts_base_packages_and_usrmerge_links_in_the_first_layer() -> None:
    plan = plan_from_packages(
        [
            pkg("libc6", member("usr/lib/x86_64-linux-gnu/libc.so.6", content=b"c")),
            pkg("python3", member("usr/bin/python3", content=b"p")),
        ],
        arch="amd64",
    ).with_entries(file_entry("etc/passwd", b"root"))
    base, rest = split_layers(plan, frozenset({"libc6"}))
    base_paths = {e.path for e in base}
    rest_paths = {e.path for e in rest}
    assert {"usr/lib/x86_64-linux-gnu/libc.so.6", "bin", "lib64"} <= base_paths
    assert "usr/bin/python3" not in base_paths
    assert {"usr/bin/python3", "etc/passwd", "usr", "usr/bin"} <= rest_paths
    assert [e.path for e in base] == [e.path for e in sorted(base, key=lambda e: e.path.split("/"))]
    assert split_layers(plan) == [plan.sorted()]
    with pytest.raises(InputError, match="none of the base packages"):
        split_layers(Plan.empty().with_entries(file_entry("x", b"")), frozenset({"libc6"}))


def test_a_directory_goes_to_the_base_layer_only_above_base_files() -> None:
    """An empty directory (pruned man pages) is in the second layer whichever package it
    is attributed to, so the base layer does not depend on the image's other packages."""
    files = [
        file_entry("usr/lib/libc.so.6", b"c", package="libc6"),
        dir_entry("usr/lib", package="libc6"),
        dir_entry("usr/share/man/de/man5", package="libc6"),
    ]
    a = Plan.empty().with_entries(*files)
    b = Plan.empty().with_entries(*files[:2], dir_entry("usr/share/man/de/man5", package="adduser"))
    for plan in (a, b):
        base, rest = split_layers(plan, frozenset({"libc6"}))
        assert [e.path for e in base] == ["usr", "usr/lib", "usr/lib/libc.so.6"]
        assert "usr/share/man/de/man5" in [e.path for e in rest]
    assert split_layers(a, frozenset({"libc6"}))[0] == split_layers(b, frozenset({"libc6"}))[0]
