"""dpkg status / status.d parsing, against fixtures and this machine's real database."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from debian.deb822 import Deb822
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.builders import STATUS, write
from kiln.errors import InputError
from kiln.inventory import OsRelease, load_target
from kiln.inventory.dpkg import _FIELDS, _stanzas, parse_status, stanza_fields

BOOKWORM = OsRelease.from_parts("debian", "12")


def test_status_keeps_only_installed_and_reads_sources() -> None:
    warnings: list[str] = []
    packages = {p.name: p for p in parse_status(STATUS.encode(), "/status", BOOKWORM, warnings)}
    assert warnings == []
    assert sorted(packages) == ["bash", "libc6", "openssl", "zlib1g"]  # oldpkg: config-files
    assert (packages["libc6"].source_name, packages["libc6"].source_version) == (
        "glibc",
        "2.36-9+deb12u4",
    )
    assert (packages["bash"].source_name, packages["bash"].source_version) == (
        "bash",
        "5.2.15-2",
    )
    assert packages["openssl"].source_name == "openssl"  # no Source: the binary name
    assert packages["zlib1g"].version == "1:1.2.13.dfsg-1"
    assert packages["libc6"].purl == (
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc"
    )
    assert packages["bash"].purl == (
        "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12&upstream=bash%405.2.15-2"
    )
    assert packages["openssl"].purl == (
        "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"
    )
    assert packages["libc6"].locations == ("/status",)


def test_broken_stanzas_are_skipped_with_a_warning_naming_the_line() -> None:
    text = (
        "Package: good\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: all\n\n"
        "Package: broken\nStatus: install ok installed\nthis line has no colon\nVersion: 1\n\n"
        "Package: noversion\nStatus: install ok installed\nArchitecture: all\n\n"
        "Package: badversion\nStatus: install ok installed\nVersion: 1.0 beta\n\n"
        "Package: badstatus\nStatus: installed\nVersion: 1\n\n"
        " Package: continuation-first\nVersion: 1\n\n"
        "Package: nostatus\nVersion: 1\n"
    )
    warnings: list[str] = []
    packages = parse_status(text.encode(), "/var/lib/dpkg/status", None, warnings)
    assert [p.name for p in packages] == ["good"]
    assert warnings == [
        "/var/lib/dpkg/status:8: malformed line in stanza, stanza skipped",
        "/var/lib/dpkg/status:11: package noversion has no Version, skipped",
        "/var/lib/dpkg/status:15: package badversion has invalid Version '1.0 beta', skipped",
        "/var/lib/dpkg/status:19: malformed Status 'installed', stanza skipped",
        "/var/lib/dpkg/status:23: malformed line in stanza, stanza skipped",
        "/var/lib/dpkg/status:26: stanza without Status field, skipped",
    ]


def test_status_file_target(tmp_path: Path) -> None:
    path = write(tmp_path, "status", STATUS)
    inventory = load_target(path)
    assert inventory.distro is None
    assert [p.name for p in inventory.packages] == ["bash", "libc6", "openssl", "zlib1g"]
    assert inventory.packages[0].purl.startswith("pkg:deb/debian/bash@")
    assert inventory.target == str(path)


def test_status_d_directory_target(tmp_path: Path) -> None:
    status_d = tmp_path / "status.d"
    write(
        status_d, "libc6", "Package: libc6\nVersion: 2.36-9\nArchitecture: amd64\nSource: glibc\n"
    )
    write(status_d, "libc6.md5sums", "0123456789abcdef  lib/x86_64-linux-gnu/libc.so.6\n")
    write(status_d, "tzdata", "Package: tzdata\nStatus: install ok installed\nVersion: 2024a-0\n")
    inventory = load_target(status_d)
    assert [(p.name, p.source_name) for p in inventory.packages] == [
        ("libc6", "glibc"),
        ("tzdata", "tzdata"),
    ]
    assert inventory.warnings == ()
    assert inventory.packages[0].locations == (str(status_d / "libc6"),)


def test_non_utf8_status_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "status", b"Package: a\nVersion: \xff\xfe\n")
    with pytest.raises(InputError, match="not UTF-8"):
        load_target(path)


def test_garbage_file_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.txt", "just some notes\nwithout any structure\n")
    with pytest.raises(InputError, match="not an image, SBOM or dpkg status file"):
        load_target(path)


HOST_STATUS = Path("/var/lib/dpkg/status")


@pytest.mark.skipif(not HOST_STATUS.is_file(), reason="no dpkg database on this machine")
def test_this_machines_dpkg_status_parses_cleanly_and_agrees_with_dpkg_query() -> None:
    inventory = load_target(HOST_STATUS)
    assert inventory.warnings == ()
    listed = subprocess.run(
        [
            "dpkg-query",
            "--admindir=/var/lib/dpkg",
            "-W",
            "-f=${db:Status-Status} ${Package} ${Version} ${Architecture} ${source:Package} "
            "${source:Version}\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    expected = {tuple(line.split()[1:]) for line in listed if line.startswith("installed ")}
    ours = {
        (p.name, p.version, p.arch, p.source_name, p.source_version) for p in inventory.packages
    }
    assert ours == expected
    assert len(ours) > 100


def test_dpkg_admin_directory_target(tmp_path: Path) -> None:
    admin = tmp_path / "dpkg"
    write(admin, "status", STATUS)
    write(admin, "status.d/tzdata", "Package: tzdata\nVersion: 2024a-0\nArchitecture: all\n")
    (admin / "info").mkdir()
    inventory = load_target(admin)
    assert inventory.warnings == ()
    assert [p.name for p in inventory.packages] == ["bash", "libc6", "openssl", "tzdata", "zlib1g"]


def _deb822_fields(lines: list[str]) -> dict[str, str]:
    """What python-debian makes of a stanza's kept lines: the reference."""
    return dict(Deb822(lines, fields=_FIELDS))


def _agree_with_deb822(text: str) -> int:
    stanzas = 0
    for _, lines, _bad in _stanzas(text):
        try:
            expected = _deb822_fields(lines)
        except ValueError:  # python-debian refuses the value (see the U+2028 test)
            continue
        assert stanza_fields(lines) == expected, lines
        stanzas += 1
    return stanzas


def test_a_line_separator_inside_a_field_is_a_warning_not_a_crash() -> None:
    # U+2028 ends a line for str.splitlines but stays in the value; Deb822 then
    # rejected its own value with ValueError, which escaped as a traceback.
    text = "Package: a\n b\u2028 c\nVersion: 1\nStatus: install ok installed\n"
    with pytest.raises(ValueError, match="blank lines"):
        _deb822_fields(next(_stanzas(text))[1])
    warnings: list[str] = []
    assert parse_status(text.encode(), "/s", None, warnings) == []
    assert warnings == ["/s:1: missing or invalid Package 'a\\n b\\u2028\\n c', stanza skipped"]


@pytest.mark.skipif(not HOST_STATUS.is_file(), reason="no dpkg database on this machine")
def test_fields_are_read_as_deb822_reads_them_on_this_machine() -> None:
    text = HOST_STATUS.read_text()
    assert _agree_with_deb822(text) > 100
    crlf = text.replace("\n", "\r\n")
    assert _agree_with_deb822(crlf) > 100
    packages = parse_status(text.encode(), "s", None, [])
    assert parse_status(crlf.encode(), "s", None, []) == packages


def test_continuations_repeats_crlf_and_odd_whitespace() -> None:
    text = (
        "Package: one\r\nStatus: install ok\r\n installed\r\nVersion: 1.0-1\r\n"
        "Description: x\r\n more text\r\n\r\n"
        "Package: two\nVersion: 1\nVersion:   2.0-1  \nStatus: install ok installed\n"
        "Source:\n glibc\n\n"
        "Package : three\nVersion: 1\nStatus: install ok installed\n\n"
        "Package: four\nVersion: 1\n\u00a0Status: install ok installed\n"
        "Status: install ok installed\nArchitecture: all\n\u3000Package: five\n\n"
        "# a comment\npackage: six\nVersion: 1\nStatus: install ok installed\n"
    )
    assert _agree_with_deb822(text) == 5
    warnings: list[str] = []
    packages = parse_status(text.encode(), "/s", None, warnings)
    # "install ok\n installed" has three words, as dpkg's parser would read it
    assert [(p.name, p.version, p.source_name, p.arch) for p in packages] == [
        ("one", "1.0-1", "one", None),
        ("two", "2.0-1", "glibc", None),  # the last Version wins
        ("four", "1", "four", "all"),
    ]
    assert warnings == [
        "/s:15: missing or invalid Package '', stanza skipped",  # "Package :" is no field
        "/s:27: missing or invalid Package '', stanza skipped",  # field names are exact
    ]


_LINE = st.tuples(
    st.sampled_from(["Package", "Version", "Status", "Source", "Architecture", "package", "X"]),
    st.sampled_from([":", " :", ":\t", "::", ""]),
    st.text(alphabet=" \t\u00a0\u3000\r\x0b\x00ab1.:-+()~\\#", max_size=12),
    st.sampled_from(["", " ", "\t", "\u00a0", "#"]),
    st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\u2028"]),
).map(lambda t: t[3] + t[0] + t[1] + t[2] + t[4])


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=12))
def test_hostile_stanzas_read_as_deb822_reads_them(lines: list[str]) -> None:
    text = "".join(lines)
    _agree_with_deb822(text)
    warnings: list[str] = []
    for package in parse_status(text.encode(), "/s", None, warnings):
        assert package.name
        assert package.version
    assert all(w.startswith("/s:") for w in warnings)
