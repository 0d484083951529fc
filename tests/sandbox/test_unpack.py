"""Rootless unpack of OCI layouts: whiteouts, modes, and hostile layers refused."""

from __future__ import annotations

import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.oci.layout import LayoutError
from kiln.sandbox import remove_rootfs, resolve_image, unpack_image
from sandbox.layouts import file, info, write_layout


def _unpack(tmp_path: Path, layers: list[list[tuple[tarfile.TarInfo, bytes | None]]]) -> Path:
    layout = write_layout(tmp_path / "layout", layers)
    unpacked = unpack_image(resolve_image(layout, arch="amd64"), tmp_path / "rootfs")
    return unpacked.rootfs


def test_layers_apply_in_order_with_whiteouts(tmp_path: Path) -> None:
    root = _unpack(
        tmp_path,
        [
            [
                (info("etc", tarfile.DIRTYPE, mode=0o755), None),
                file("etc/keep", b"1"),
                file("etc/gone", b"2"),
                (info("opt", tarfile.DIRTYPE, mode=0o755), None),
                file("opt/old", b"3"),
                file("bin-file", b"4"),
            ],
            [
                file("etc/.wh.gone", b""),
                file("opt/.wh..wh..opq", b""),
                file("opt/new", b"5"),
                file("etc/keep", b"updated"),
                (info("bin-file", tarfile.DIRTYPE, mode=0o755), None),
            ],
        ],
    )
    assert (root / "etc/keep").read_bytes() == b"updated"
    assert not (root / "etc/gone").exists()
    assert sorted(p.name for p in (root / "opt").iterdir()) == ["new"]
    assert (root / "bin-file").is_dir()
    for mount in ("proc", "dev", "tmp"):
        assert (root / mount).is_dir()


def test_modes_links_and_special_files(tmp_path: Path) -> None:
    root = _unpack(
        tmp_path,
        [
            [
                (info("usr", tarfile.DIRTYPE, mode=0o555), None),
                file("usr/su", b"x", mode=0o4755),
                (info("usr/su2", tarfile.LNKTYPE, linkname="usr/su"), None),
                (info("bin", tarfile.SYMTYPE, linkname="usr"), None),
                (info("escape", tarfile.SYMTYPE, linkname="../../../../etc/passwd"), None),
                (info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3), None),
                (info("tmp", tarfile.DIRTYPE, mode=0o1777), None),
            ]
        ],
    )
    su = os.lstat(root / "usr/su")
    assert stat.S_IMODE(su.st_mode) == 0o755  # setuid dropped
    assert os.path.samefile(root / "usr/su", root / "usr/su2")
    assert os.readlink(root / "bin") == "usr"
    assert os.readlink(root / "escape") == "../../../../etc/passwd"  # kept, never followed
    assert not (root / "dev/null").exists()
    assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.lstat(root / "usr").st_mode) == 0o755  # owner keeps rwx
    remove_rootfs(root)
    assert not root.exists()


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([file("../evil", b"x")], "leaves the root"),
        ([file("a/../../evil", b"x")], "leaves the root"),
        ([file("/etc/evil", b"x")], "absolute name"),
        (
            [(info("link", tarfile.SYMTYPE, linkname="/tmp"), None), file("link/evil", b"x")],
            "written through a symlink",
        ),
        ([(info("hl", tarfile.LNKTYPE, linkname="missing"), None)], "target not unpacked"),
        ([(info("hl", tarfile.LNKTYPE, linkname="../../etc/passwd"), None)], "leaves the root"),
        (
            [(info("d", tarfile.DIRTYPE), None), (info("hl", tarfile.LNKTYPE, linkname="d"), None)],
            "not a regular file",
        ),
    ],
)
def test_hostile_layers_are_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        _unpack(tmp_path, [members])
    assert not Path("/tmp/evil").exists()


def test_layout_errors_name_what_is_wrong(tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "layout", [[file("a", b"x")]])
    with pytest.raises(InputError, match=r"no linux/arm64 manifest \(it has: amd64"):
        resolve_image(layout, arch="arm64")
    with pytest.raises(InputError, match="no image tagged 'nope'"):
        resolve_image(layout, tag="nope", arch="amd64")
    with pytest.raises(LayoutError, match="not an OCI image layout: it has no oci-layout"):
        resolve_image(tmp_path, arch="amd64")
    top = json.loads((layout / "index.json").read_text())
    index_digest = top["manifests"][0]["digest"].split(":")[1]
    (layout / "blobs/sha256" / index_digest).write_bytes(b"{}")
    with pytest.raises(LayoutError, match="does not match its descriptor") as caught:
        resolve_image(layout, arch="amd64")
    assert caught.value.exit_code == 2  # the one code of a damaged layout, in every command


def _first_layer(layout: Path) -> Path:
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    manifest = json.loads((layout / "blobs/sha256" / entry["digest"][7:]).read_bytes())
    layer: str = manifest["layers"][0]["digest"]
    return layout / "blobs/sha256" / layer[7:]


def test_a_layer_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "layout", [[file("a", b"x" * 4096)]])
    blob = _first_layer(layout)
    data = bytearray(blob.read_bytes())
    data[-5] ^= 0xFF  # in gzip's trailer (the size): same length, the tar still reads
    blob.write_bytes(bytes(data))
    image = resolve_image(layout, arch="amd64")  # the layer is read when unpacked
    with pytest.raises(LayoutError, match=r"layer #0 sha256:[0-9a-f]{64} does not match"):
        unpack_image(image, tmp_path / "rootfs")


def test_a_layer_of_the_wrong_size_is_refused_before_reading(tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "layout", [[file("a", b"x")]])
    with _first_layer(layout).open("ab") as blob:
        blob.write(b"\0" * 10)
    image = resolve_image(layout, arch="amd64")
    with pytest.raises(LayoutError, match="bytes, the descriptor says"):
        unpack_image(image, tmp_path / "rootfs")
    assert not (tmp_path / "rootfs" / "a").exists()


def test_unpack_target_must_be_empty(tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "layout", [[file("a", b"x")]])
    dest = tmp_path / "rootfs"
    dest.mkdir()
    (dest / "junk").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        unpack_image(resolve_image(layout, arch="amd64"), dest)


def test_modification_times_are_the_layers(tmp_path: Path) -> None:
    """Guile trusts a compiled .go only if it is not older than its .scm (Python's .pyc
    likewise): files written in layer order with "now" as their time broke Guile."""
    epoch = 1_762_632_000  # what kiln stamps on every member
    source = info("usr/share/guile/boot-9.scm", mtime=epoch)
    source.size = 2
    compiled = info("usr/lib/guile/ccache/boot-9.go", mtime=epoch)
    compiled.size = 2
    root = _unpack(
        tmp_path,
        [
            [
                (info("usr", tarfile.DIRTYPE, mode=0o755, mtime=epoch), None),
                (info("usr/lib", tarfile.DIRTYPE, mode=0o755, mtime=epoch), None),
                (info("usr/lib/guile", tarfile.DIRTYPE, mode=0o755, mtime=epoch), None),
                (info("usr/lib/guile/ccache", tarfile.DIRTYPE, mode=0o555, mtime=epoch), None),
                (compiled, b"go"),
                (info("usr/share", tarfile.DIRTYPE, mode=0o755, mtime=epoch), None),
                (info("usr/share/guile", tarfile.DIRTYPE, mode=0o755, mtime=epoch), None),
                (source, b"ss"),
                (info("usr/bin", tarfile.DIRTYPE, mode=0o755, mtime=epoch), None),
                (info("usr/bin/guile", tarfile.SYMTYPE, linkname="guile-3.0", mtime=epoch), None),
            ]
        ],
    )
    for path in ("usr/share/guile/boot-9.scm", "usr/lib/guile/ccache/boot-9.go", "usr/lib/guile"):
        assert os.lstat(root / path).st_mtime == epoch, path
    assert os.lstat(root / "usr/bin/guile").st_mtime == epoch  # the link itself
    assert os.lstat(root / "usr/lib/guile/ccache").st_mtime == epoch  # read-only dir too
