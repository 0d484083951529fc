"""Tests for the safe .deb reader: real dpkg-deb output, the apt cache, hostile archives, fuzz."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln.debian.deb import (
    DEFAULT_LIMITS,
    Conffile,
    DebFormatError,
    DebLimits,
    DebMember,
    MemberType,
    changelog_paths,
    iter_data,
    read_changelog,
    read_control,
    read_deb,
)
from kiln.errors import InputError, RemoteContentError

DPKG_DEB = shutil.which("dpkg-deb")
needs_dpkg_deb = pytest.mark.skipif(DPKG_DEB is None, reason="dpkg-deb is not installed")

CHANGELOG = """\
hello (2.10-3) unstable; urgency=medium

  * Fix CVE-2099-0001 in greeting.

 -- Jane Doe <jane@example.org>  Sat, 02 Mar 2024 10:00:00 +0000

hello (2.10-2) unstable; urgency=low

  * Older entry.

 -- Jane Doe <jane@example.org>  Mon, 01 Jan 2024 00:00:00 +0000
"""
CHANGELOG_EPOCH = 1709373600  # Sat, 02 Mar 2024 10:00:00 +0000

CONTROL = """\
Package: hello
Version: 2.10-3
Architecture: amd64
Maintainer: Jane Doe <jane@example.org>
Installed-Size: 10
Description: greet the world
 A longer description.
"""


# ------------------------------------------------------------------ builders


def ar(members: list[tuple[str, bytes]], *, name_suffix: str = "") -> bytes:
    """An ar archive as dpkg-deb writes it (names padded with spaces, even offsets)."""
    out = [b"!<arch>\n"]
    for name, data in members:
        field = (name + name_suffix).ljust(16)
        header = f"{field}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode("ascii")
        out += [header, data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


Entry = tuple[tarfile.TarInfo, bytes | None]


def entry(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes | None = None,
    *,
    mode: int = 0o644,
    link: str = "",
    uid: int = 0,
    gid: int = 0,
    size: int | None = None,
) -> Entry:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.uname, info.gname = "root", "root"
    info.mtime = 1700000000
    info.linkname = link
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    if data is not None:
        info.size = len(data) if size is None else size
    return info, data


def tar(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def compress(data: bytes, kind: str) -> bytes:
    match kind:
        case "gz":
            return gzip.compress(data, mtime=0)
        case "xz":
            return lzma.compress(data, format=lzma.FORMAT_XZ)
        case "lzma":
            return lzma.compress(data, format=lzma.FORMAT_ALONE)
        case "bz2":
            return bz2.compress(data)
        case "zst":
            return zstandard.ZstdCompressor().compress(data)
        case "none":
            return data
    raise AssertionError(kind)


def ext(kind: str) -> str:
    return "" if kind == "none" else "." + kind


def control_tar(control: str = CONTROL, extra: list[Entry] | None = None) -> bytes:
    return tar(
        [entry("./", tarfile.DIRTYPE, mode=0o755), entry("./control", data=control.encode())]
        + (extra or [])
    )


def data_entries() -> list[Entry]:
    return [
        entry("./", tarfile.DIRTYPE, mode=0o755),
        entry("./usr/", tarfile.DIRTYPE, mode=0o755),
        entry("./usr/bin/", tarfile.DIRTYPE, mode=0o755),
        entry("./usr/bin/hello", data=b"#!/bin/sh\necho hello\n", mode=0o755),
    ]


def make_deb(
    data: bytes | list[Entry] | None = None,
    *,
    compression: str = "gz",
    control: bytes | None = None,
    debian_binary: bytes = b"2.0\n",
) -> bytes:
    data_tar = (
        tar(data_entries()) if data is None else data if isinstance(data, bytes) else tar(data)
    )
    return ar(
        [
            ("debian-binary", debian_binary),
            ("control.tar.gz", compress(control if control is not None else control_tar(), "gz")),
            (f"data.tar{ext(compression)}", compress(data_tar, compression)),
        ]
    )


def rejects(
    deb: bytes, *fragments: str, limits: DebLimits = DEFAULT_LIMITS, allow_devices: bool = False
) -> DebFormatError:
    with pytest.raises(DebFormatError) as caught:
        read_deb(deb, name="evil.deb", limits=limits, allow_devices=allow_devices)
    text = str(caught.value)
    assert text.startswith("evil.deb"), text
    for fragment in fragments:
        assert fragment in text, text
    return caught.value


# ------------------------------------------------------- real dpkg-deb builds


def _write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)


@pytest.fixture(scope="module")
def package_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hello")
    _write(root / "DEBIAN/control", CONTROL)
    _write(root / "DEBIAN/conffiles", "/etc/hello.conf\nremove-on-upgrade /etc/old.conf\n")
    _write(root / "DEBIAN/postinst", "#!/bin/sh\nexit 0\n", 0o755)
    _write(
        root / "DEBIAN/md5sums",
        "0123456789abcdef0123456789abcdef  usr/bin/hello\n",
    )
    _write(root / "usr/bin/hello", b"\x7fELF fake binary\n" * 100, 0o755)
    _write(root / "usr/bin/sudo-ish", b"setuid\n", 0o4755)
    _write(root / "etc/hello.conf", "greeting=hi\n")
    (root / "var/tmp-ish").mkdir(parents=True)
    (root / "var/tmp-ish").chmod(0o1777)
    (root / "usr/bin/hi").symlink_to("hello")
    (root / "usr/bin/alt").symlink_to("/etc/alternatives/hello")
    os.link(root / "usr/bin/hello", root / "usr/bin/hello-again")
    _write(
        root / "usr/share/doc/hello/changelog.Debian.gz", gzip.compress(CHANGELOG.encode(), mtime=0)
    )
    if os.geteuid() == 0:
        os.chown(root / "etc/hello.conf", 12345, 54321)
    for path in root.rglob("*"):
        if path.is_dir() and path.name != "tmp-ish":
            path.chmod(0o755)
    return root


DPKG_COMPRESSIONS = {"gzip": "gz", "xz": "xz", "zstd": "zst", "none": "none"}


@pytest.fixture(scope="module", params=sorted(DPKG_COMPRESSIONS))
def built(
    request: pytest.FixtureRequest, package_tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    if DPKG_DEB is None:
        pytest.skip("dpkg-deb is not installed")
    out = tmp_path_factory.mktemp("out") / f"hello_{request.param}.deb"
    owner = [] if os.geteuid() == 0 else ["--root-owner-group"]
    subprocess.run(
        [DPKG_DEB, *owner, f"-Z{request.param}", "--build", str(package_tree), str(out)],
        check=True,
        capture_output=True,
    )
    return out, DPKG_COMPRESSIONS[request.param]


@needs_dpkg_deb
def test_reads_what_dpkg_deb_built(built: tuple[Path, str], package_tree: Path) -> None:
    path, compression = built
    package = read_deb(path)

    assert package.name == path.name
    assert package.data_compression == compression
    members = {m.path: m for m in package.members}
    assert set(members) == {
        "etc",
        "etc/hello.conf",
        "usr",
        "usr/bin",
        "usr/bin/hello",
        "usr/bin/sudo-ish",
        "usr/bin/hi",
        "usr/bin/alt",
        "usr/bin/hello-again",
        "usr/share",
        "usr/share/doc",
        "usr/share/doc/hello",
        "usr/share/doc/hello/changelog.Debian.gz",
        "var",
        "var/tmp-ish",
    }
    hello = members["usr/bin/hello"]
    assert (hello.type, hello.mode, hello.size) == (MemberType.FILE, 0o755, 1700)
    assert package.contents["usr/bin/hello"] == (package_tree / "usr/bin/hello").read_bytes()
    assert members["usr/bin/sudo-ish"].mode == 0o4755
    assert members["var/tmp-ish"] == DebMember(
        path="var/tmp-ish",
        type=MemberType.DIR,
        mode=0o1777,
        uid=0,
        gid=0,
        uname="root",
        gname="root",
        size=0,
        mtime=members["var/tmp-ish"].mtime,
    )
    assert members["usr/bin/hi"].link_target == "hello"
    assert members["usr/bin/alt"].link_target == "/etc/alternatives/hello"  # kept, exposed
    link = members["usr/bin/hello-again"]
    assert (link.type, link.link_target) == (MemberType.HARDLINK, "usr/bin/hello")
    assert package.contents.get("usr/bin/hello-again") is None
    conf = members["etc/hello.conf"]
    if os.geteuid() == 0:
        assert (conf.uid, conf.gid) == (12345, 54321)
    else:
        assert (conf.uid, conf.gid, conf.uname, conf.gname) == (0, 0, "root", "root")

    control = package.control
    assert (control.package, control.version, control.architecture) == ("hello", "2.10-3", "amd64")
    assert control.fields["Description"].startswith("greet the world")
    assert control.stanza()["maintainer"] == "Jane Doe <jane@example.org>"
    assert control.conffiles == (
        Conffile("/etc/hello.conf"),
        Conffile("/etc/old.conf", ("remove-on-upgrade",)),
    )
    assert dict(control.md5sums) == {"usr/bin/hello": "0123456789abcdef0123456789abcdef"}
    assert control.maintainer_scripts == ("postinst",)
    assert control.files["postinst"] == b"#!/bin/sh\nexit 0\n"
    assert {m.path: m.mode for m in control.members}["postinst"] == 0o755

    changelog = package.changelog()
    assert changelog is not None
    assert changelog.path == "usr/share/doc/hello/changelog.Debian.gz"
    assert (changelog.version, changelog.timestamp) == ("2.10-3", CHANGELOG_EPOCH)
    assert "CVE-2099-0001" in changelog.text


class _Unseekable(io.RawIOBase):
    """A pipe-like stream: reads in small pieces, cannot seek."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    # RawIOBase takes any writable buffer; this test stream is only handed these two
    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buffer), 777))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@needs_dpkg_deb
def test_every_source_kind_and_entry_point_agree(built: tuple[Path, str]) -> None:
    path, _ = built
    raw = path.read_bytes()
    reference = read_deb(path)
    with path.open("rb") as handle:
        from_file = read_deb(handle)
    # _Unseekable is a stream but no typing.BinaryIO (a class, not a protocol): arg-type
    from_pipe = read_deb(_Unseekable(raw), name="pipe.deb")  # type: ignore[arg-type]
    for package in (
        read_deb(raw),
        read_deb(bytearray(raw)),
        read_deb(memoryview(raw)),
        from_file,
        from_pipe,
    ):
        assert package.members == reference.members
        assert dict(package.contents) == dict(reference.contents)
        assert package.control.text == reference.control.text
    streamed = list(iter_data(_Unseekable(raw)))  # type: ignore[arg-type]  # as above
    assert [m for m, _ in streamed] == list(reference.members)
    assert {m.path: c for m, c in streamed if c is not None} == dict(reference.contents)
    assert read_control(_Unseekable(raw)).fields == reference.control.fields  # type: ignore[arg-type]  # as above
    assert read_control(path).md5sums == reference.control.md5sums
    changelog = read_changelog(raw)
    assert changelog is not None
    assert changelog.timestamp == CHANGELOG_EPOCH


@needs_dpkg_deb
def test_read_content_selects_what_is_kept(built: tuple[Path, str]) -> None:
    path, _ = built
    only_conf = read_deb(path, read_content=lambda m: m.path.startswith("etc/"))
    assert set(only_conf.contents) == {
        "etc/hello.conf",
        "usr/share/doc/hello/changelog.Debian.gz",  # changelogs are always kept
    }
    streamed = {m.path: c for m, c in iter_data(path, read_content=False)}
    assert all(content is None for content in streamed.values())


# ------------------------------------------------------------- real packages


def _dpkg_listing(path: Path) -> dict[str, tuple[str, str | None]]:
    """path -> (type char, link target) from ``dpkg-deb --contents``."""
    out = subprocess.run(
        [DPKG_DEB or "dpkg-deb", "--contents", str(path)], check=True, capture_output=True
    ).stdout.decode("utf-8", "surrogateescape")
    listing: dict[str, tuple[str, str | None]] = {}
    for line in out.splitlines():
        perms, _owner, _size, _date, _time, rest = line.split(None, 5)
        target = None
        if perms[0] == "l":
            rest, target = rest.split(" -> ", 1)
        elif perms[0] == "h":
            rest, target = rest.split(" link to ", 1)
            target = target.removeprefix("./")
        path_ = rest.removeprefix("./").removesuffix("/")
        if path_:
            listing[path_] = (perms[0], target)
    return listing


def _cached_debs() -> list[Path]:
    cache = Path("/var/cache/apt/archives")
    debs = sorted(cache.glob("*.deb"), key=lambda p: p.stat().st_size) if cache.is_dir() else []
    return [p for p in debs if 20_000 < p.stat().st_size < 3_000_000][:3]


def _check_against_dpkg(path: Path) -> None:
    package = read_deb(path)
    kinds = {
        MemberType.FILE: "-",
        MemberType.DIR: "d",
        MemberType.SYMLINK: "l",
        MemberType.HARDLINK: "h",
        MemberType.FIFO: "p",
    }
    ours = {m.path: (kinds[m.type], m.link_target) for m in package.members}
    assert ours == _dpkg_listing(path)
    fields = subprocess.run(
        [DPKG_DEB or "dpkg-deb", "--field", str(path), "Package", "Version"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"Package: {package.control.package}\n" in fields
    assert f"Version: {package.control.version}\n" in fields
    for member in package.members:
        if member.is_file:
            assert len(package.contents[member.path]) == member.size


@needs_dpkg_deb
@pytest.mark.skipif(not _cached_debs(), reason="no .deb in the apt cache")
def test_real_debs_from_the_apt_cache_match_dpkg_deb() -> None:
    for path in _cached_debs():
        _check_against_dpkg(path)


@pytest.mark.network
@needs_dpkg_deb
def test_real_deb_downloaded_with_apt(tmp_path: Path) -> None:
    subprocess.run(["apt-get", "download", "hello"], cwd=tmp_path, check=True, capture_output=True)
    (path,) = tmp_path.glob("hello_*.deb")
    _check_against_dpkg(path)
    assert read_deb(path).changelog() is not None


# ------------------------------------------------------------ other formats


@pytest.mark.parametrize("compression", ["gz", "xz", "lzma", "bz2", "zst", "none"])
def test_every_compression_reads(compression: str) -> None:
    package = read_deb(make_deb(compression=compression))
    assert package.data_compression == compression
    assert package.contents["usr/bin/hello"] == b"#!/bin/sh\necho hello\n"


def test_gnu_ar_names_and_underscore_members_are_accepted() -> None:
    raw = ar(
        [
            ("debian-binary", b"2.1\nfuture line\n"),
            ("_extra", b"ignored"),
            ("control.tar.gz", compress(control_tar(), "gz")),
            ("data.tar.xz", compress(tar(data_entries()), "xz")),
            ("_signature", b"x"),
        ],
        name_suffix="/",
    )
    assert read_deb(raw).member("usr/bin/hello") is not None


def test_fifos_are_allowed_and_devices_only_on_request() -> None:
    fifo = read_deb(
        make_deb(
            [
                *data_entries(),
                entry("./run/", tarfile.DIRTYPE),
                entry("./run/pipe", tarfile.FIFOTYPE),
            ]
        )
    )
    assert fifo.member("run/pipe") == DebMember(
        path="run/pipe",
        type=MemberType.FIFO,
        mode=0o644,
        uid=0,
        gid=0,
        uname="root",
        gname="root",
        size=0,
        mtime=1700000000,
    )
    device = make_deb([entry("./dev/", tarfile.DIRTYPE), entry("./dev/null", tarfile.CHRTYPE)])
    member = read_deb(device, allow_devices=True).member("dev/null")
    assert member is not None
    assert (member.type, member.devmajor, member.devminor) == (MemberType.CHAR, 1, 3)


def test_error_is_remote_content_error_with_location() -> None:
    error = rejects(b"nope", "not an ar archive")
    assert isinstance(error, RemoteContentError)
    assert error.location is not None
    assert error.location.file == "evil.deb"


def test_limits_are_validated() -> None:
    with pytest.raises(Exception, match="must be positive"):
        DebLimits(max_member_size=0)


def test_changelog_paths() -> None:
    assert changelog_paths("hello", "amd64") == (
        "usr/share/doc/hello/changelog.Debian.amd64.gz",
        "usr/share/doc/hello/changelog.Debian.gz",
        "usr/share/doc/hello/changelog.gz",
    )
    assert changelog_paths("hello") == changelog_paths("hello", "amd64")[1:]


def test_binnmu_changelog_is_found_and_native_changelog_used_as_fallback() -> None:
    binnmu = (
        "hello (2.10-3+b1) unstable; urgency=low, binary-only=yes\n\n  * Rebuild.\n\n"
        " -- B <b@example.org>  Sun, 03 Mar 2024 10:00:00 +0000\n"
    )
    doc = "./usr/share/doc/hello/"
    package = read_deb(
        make_deb(
            [
                entry("./", tarfile.DIRTYPE),
                entry(doc, tarfile.DIRTYPE),
                entry(doc + "changelog.Debian.amd64.gz", data=gzip.compress(binnmu.encode())),
                entry(doc + "changelog.gz", data=gzip.compress(CHANGELOG.encode())),
            ]
        )
    )
    logs = package.changelogs()
    assert [log.version for log in logs] == ["2.10-3+b1", "2.10-3"]
    main = package.changelog()
    assert main is not None
    assert main.path.endswith("/changelog.gz")
    assert read_deb(make_deb()).changelog() is None


# ------------------------------------------------------------- hostile .debs


def test_rejects_bad_ar_magic() -> None:
    rejects(b"!<arch>X" + make_deb()[8:], "not an ar archive")


def test_rejects_missing_debian_binary() -> None:
    raw = ar(
        [
            ("control.tar.gz", compress(control_tar(), "gz")),
            ("data.tar.gz", compress(tar(data_entries()), "gz")),
        ]
    )
    rejects(raw, "control.tar.gz", "expected 'debian-binary'")
    rejects(ar([]), "no debian-binary")


@pytest.mark.parametrize("content", [b"3.0\n", b"2.0", b"1.0\n", b"", b"2.x\n", b"\x002.0\n"])
def test_rejects_wrong_debian_binary(content: bytes) -> None:
    rejects(make_deb(debian_binary=content), "debian-binary", "format version")


def test_rejects_unknown_compression() -> None:
    raw = ar(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", compress(control_tar(), "gz")),
            ("data.tar.lz4", b"\x04\x22\x4d\x18"),
        ]
    )
    rejects(raw, "data.tar.lz4", "unknown compression 'lz4'")


def test_rejects_compression_that_does_not_match_the_name() -> None:
    raw = ar(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", compress(control_tar(), "gz")),
            ("data.tar.xz", compress(tar(data_entries()), "gz")),
        ]
    )
    rejects(raw, "data.tar.xz", "corrupt xz stream")


@pytest.mark.parametrize("name", ["../etc/passwd", "./usr/../../etc/passwd", "usr/bin/.."])
def test_rejects_path_traversal(name: str) -> None:
    rejects(make_deb([entry(name, data=b"x")]), "data.tar.gz", repr(name), "'..'")


@pytest.mark.parametrize("name", ["/etc/passwd", "//etc/passwd"])
def test_rejects_absolute_names(name: str) -> None:
    rejects(make_deb([entry(name, data=b"x")]), "absolute path")


def test_rejects_unnormalised_names() -> None:
    rejects(make_deb([entry("./usr//bin", tarfile.DIRTYPE)]), "not a normalised path")


@pytest.mark.parametrize("target", ["../../etc/shadow", "/etc/shadow", "./usr/../../etc/shadow"])
def test_rejects_hard_links_outside_the_package(target: str) -> None:
    rejects(
        make_deb([*data_entries(), entry("./usr/bin/x", tarfile.LNKTYPE, link=target)]),
        "hard link",
        "usr/bin/x",
    )


@pytest.mark.parametrize("target", ["./usr/bin/later", "./usr/bin/missing", "./usr/bin"])
def test_rejects_hard_links_to_no_earlier_file(target: str) -> None:
    raw = make_deb(
        [
            *data_entries(),
            entry("./usr/bin/x", tarfile.LNKTYPE, link=target),
            entry("./usr/bin/later", data=b"late"),
        ]
    )
    rejects(raw, "hard link './usr/bin/x'", "not an earlier regular file")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_rejects_device_nodes_unless_allowed(kind: bytes) -> None:
    raw = make_deb([entry("./dev/", tarfile.DIRTYPE), entry("./dev/sda", kind)])
    rejects(raw, "./dev/sda", "device node")
    assert read_deb(raw, allow_devices=True).member("dev/sda") is not None


def test_rejects_members_over_the_size_limit() -> None:
    raw = make_deb([entry("./big", data=b"a" * 5000)])
    rejects(raw, "'./big' is 5000 bytes", limits=DebLimits(max_member_size=4096))
    assert read_deb(raw, limits=DebLimits(max_member_size=5000)).contents["big"] == b"a" * 5000


def test_rejects_total_decompression_past_the_size_limit() -> None:
    raw = make_deb([entry(f"./f{i}", data=os.urandom(3000)) for i in range(10)])
    rejects(
        raw,
        "data.tar.gz",
        "decompresses to more than the 20000-byte limit",
        limits=DebLimits(max_data_size=20_000),
    )


@pytest.mark.parametrize("compression", ["gz", "xz", "bz2", "zst"])
def test_rejects_decompression_bombs_by_ratio(compression: str) -> None:
    bomb = make_deb([entry("./zeros", data=b"\0" * (8 << 20))], compression=compression)
    limits = DebLimits(max_ratio=100, ratio_grace=1 << 20)
    rejects(bomb, f"data.tar{ext(compression)}", "compression ratio exceeds 100:1", limits=limits)
    rejects(bomb, "ratio", limits=DebLimits(max_ratio=100, ratio_grace=0))


def test_rejects_trailing_garbage_after_the_last_ar_member() -> None:
    rejects(make_deb() + b"junk", "trailing garbage")
    rejects(make_deb() + b"x" * 60, "malformed ar member header")


def test_rejects_unexpected_members() -> None:
    extra = ar([("data.tar.gz", compress(tar(data_entries()), "gz"))])[8:]
    rejects(make_deb() + extra, "data.tar.gz", "unexpected ar member")
    swapped = ar(
        [
            ("debian-binary", b"2.0\n"),
            ("data.tar.gz", compress(tar(data_entries()), "gz")),
            ("control.tar.gz", compress(control_tar(), "gz")),
        ]
    )
    rejects(swapped, "data.tar.gz", "expected control.tar")
    rejects(
        ar([("debian-binary", b"2.0\n"), ("control.tar.gz", compress(control_tar(), "gz"))]),
        "no data.tar member",
    )


@pytest.mark.parametrize("compression", ["gz", "xz", "bz2", "zst", "lzma"])
def test_rejects_trailing_garbage_in_the_compressed_stream(compression: str) -> None:
    payload = compress(tar(data_entries()), compression) + b"garbage!"
    raw = ar(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", compress(control_tar(), "gz")),
            (f"data.tar{ext(compression)}", payload),
        ]
    )
    rejects(raw, f"data.tar{ext(compression)}", "trailing garbage after the end")


def test_rejects_a_second_tar_hidden_after_the_end_marker() -> None:
    hidden = tar(data_entries()) + tar([entry("./etc/evil", data=b"boo")])
    rejects(make_deb(hidden), "data.tar.gz", "not a tar header")
    rejects(make_deb(hidden, compression="none"), "data.tar", "not a tar header")


def test_rejects_a_tar_without_end_marker() -> None:
    body = tar(data_entries())
    end = body.rindex(b"echo hello\n") + 512  # after the last member's data block
    rejects(make_deb(body[: end - end % 512]), "no end-of-archive marker")


@pytest.mark.parametrize("cut", [1, 7, 30, 61, 100, 200, 400, 600])
def test_rejects_truncated_archives(cut: int) -> None:
    raw = make_deb(compression="none")
    rejects(raw[:-cut])


@pytest.mark.parametrize("compression", ["gz", "xz", "bz2", "zst", "lzma"])
def test_rejects_truncated_compressed_streams(compression: str) -> None:
    payload = compress(tar(data_entries()), compression)[:-9]
    raw = ar(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", compress(control_tar(), "gz")),
            (f"data.tar{ext(compression)}", payload),
        ]
    )
    rejects(raw, f"data.tar{ext(compression)}")


def test_rejects_duplicate_paths() -> None:
    raw = make_deb([*data_entries(), entry("./usr/bin/hello", data=b"second")])
    rejects(raw, "duplicate path 'usr/bin/hello'")
    rejects(make_deb([entry("./", tarfile.DIRTYPE), entry(".", tarfile.DIRTYPE)]), "archive root")


def test_keeps_symlink_targets_but_refuses_paths_below_them() -> None:
    raw = make_deb(
        [
            entry("./", tarfile.DIRTYPE),
            entry("./lib", tarfile.SYMTYPE, link="/etc"),
            entry("./up", tarfile.SYMTYPE, link="../../../etc/shadow"),
        ]
    )
    package = read_deb(raw)
    targets = {m.path: m.link_target for m in package.members}
    assert targets == {"lib": "/etc", "up": "../../../etc/shadow"}
    below = make_deb(
        [entry("./lib", tarfile.SYMTYPE, link="/etc"), entry("./lib/passwd", data=b"x")]
    )
    rejects(below, "'./lib/passwd' lies below 'lib'", "symlink")
    nested = make_deb([entry("./a", tarfile.SYMTYPE, link="/"), entry("./a/b/c", data=b"x")])
    rejects(nested, "lies below 'a'")
    reversed_ = make_deb(
        [entry("./lib/passwd", data=b"x"), entry("./lib", tarfile.SYMTYPE, link="/etc")]
    )
    rejects(reversed_, "'./lib' is not a directory")
    rejects(make_deb([entry("./s", tarfile.SYMTYPE, link="")]), "empty or invalid target")


def test_rejects_unsupported_tar_types() -> None:
    rejects(make_deb([entry("./v", b"V")]), "unsupported tar type")


@pytest.mark.parametrize(
    ("control", "fragment"),
    [
        (tar([entry("./md5sums", data=b"")]), "no 'control' file"),
        (control_tar("Version: 1\nArchitecture: all\n"), "Package is missing"),
        (control_tar(CONTROL.replace("hello", "../x", 1)), "not a valid name"),
        (control_tar(CONTROL.replace("2.10-3", "not a version!")), "Version"),
        (control_tar(CONTROL + "\nPackage: second\n"), "2 stanzas"),
        (tar([entry("./control", data=b"Package: \xff\n")]), "not valid UTF-8"),
        (control_tar(extra=[entry("./sub/", tarfile.DIRTYPE)]), "not a plain top-level file"),
        (control_tar(extra=[entry("./md5sums", data=b"xyz  usr/bin/x\n")]), "md5sums line 1"),
        (control_tar(extra=[entry("./conffiles", data=b"etc/relative\n")]), "conffiles line 1"),
    ],
)
def test_rejects_bad_control_archives(control: bytes, fragment: str) -> None:
    rejects(make_deb(control=control), "control.tar.gz", fragment)


def test_rejects_oversized_control() -> None:
    big = control_tar(extra=[entry("./templates", data=os.urandom(40_000))])
    rejects(
        make_deb(control=big), "control.tar.gz", "limit", limits=DebLimits(max_control_size=30_000)
    )


def test_rejects_too_many_members() -> None:
    raw = make_deb([entry(f"./f{i}", data=b"") for i in range(20)])
    rejects(raw, "more than 10 members", limits=DebLimits(max_members=10))


def test_iter_data_raises_at_the_end_for_late_problems() -> None:
    stream = iter_data(make_deb() + b"junk", name="late.deb")
    seen = [next(stream)[0].path for _ in range(3)]
    assert seen == ["usr", "usr/bin", "usr/bin/hello"]
    with pytest.raises(DebFormatError, match="trailing garbage"):
        next(stream)


# -------------------------------------------------------------------- fuzzing

FUZZ_LIMITS = DebLimits(
    max_member_size=1 << 16,
    max_data_size=1 << 18,
    max_control_size=1 << 16,
    max_ratio=50,
    ratio_grace=1 << 14,
    max_members=200,
)
_SEEDS = [make_deb(compression=c) for c in ("gz", "xz", "zst", "bz2", "none")]


def _survives(raw: bytes) -> None:
    try:
        read_deb(raw, name="fuzz.deb", limits=FUZZ_LIMITS)
    except DebFormatError as error:
        message = str(error)
    else:
        return
    assert message.startswith("fuzz.deb")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    _survives(raw)
    _survives(b"!<arch>\n" + raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(_SEEDS),
    edits=st.lists(
        st.tuples(st.integers(0, 1 << 16), st.integers(0, 255), st.sampled_from("sit")),
        min_size=1,
        max_size=6,
    ),
)
def test_fuzz_mutated_debs(seed: bytes, edits: list[tuple[int, int, str]]) -> None:
    raw = bytearray(seed)
    for position, value, how in edits:
        at = position % (len(raw) + 1)
        if how == "s" and at < len(raw):
            raw[at] = value
        elif how == "i":
            raw.insert(at, value)
        else:
            del raw[at:]
    _survives(bytes(raw))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.binary(max_size=4096), compression=st.sampled_from(["gz", "none", "zst"]))
def test_fuzz_tar_payloads(payload: bytes, compression: str) -> None:
    # arbitrary bytes where the tar goes, to drive tarfile itself; and tar-like noise
    _survives(make_deb(payload, compression=compression))
    _survives(make_deb(tar(data_entries())[:512] + payload, compression=compression))


def test_a_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open"):
        read_deb(tmp_path / "absent.deb")


def test_rejects_negative_owners() -> None:
    rejects(make_deb([entry("./f", data=b"x", uid=-1)]), "'./f' has a negative owner -1:0")
