"""Bad and hostile layouts: each gives a clear error (or a documented fallback), never a crash.

Layouts are written by hand (``sandbox.layouts``) so the layers can hold what kiln's
assembler would never produce.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from kiln.errors import InputError
from kiln.oci.layout import LayoutError
from kiln.sbom import generate_cyclonedx, generate_spdx, read_sbom_input
from sandbox.layouts import Member, file, info, write_layout

OS_RELEASE = b'ID=debian\nVERSION_ID="13"\nPRETTY_NAME="Debian GNU/Linux 13 (trixie)"\n'
STANZA = b"Package: hello\nVersion: 2.10-3\nArchitecture: amd64\nMaintainer: A <a@b.c>\n"
EPOCH = 1_700_000_000
HEADER_DEP5 = b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"


def _layout(tmp_path: Path, *layers: list[Member]) -> Path:
    return write_layout(tmp_path / "layout", list(layers))


def _base(*extra: Member) -> list[Member]:
    return [
        file("etc/os-release", OS_RELEASE),
        file("var/lib/dpkg/status.d/hello", STANZA),
        *extra,
    ]


def test_a_minimal_foreign_image_works_with_source_date_epoch(tmp_path: Path) -> None:
    layout = _layout(tmp_path, _base())
    inp = read_sbom_input(layout, source_date_epoch=EPOCH)
    assert [(p.name, p.version, p.license) for p in inp.packages] == [("hello", "2.10-3", None)]
    assert inp.image.created.timestamp() == EPOCH
    assert inp.image.name == "layout"  # no title annotation, no ref name on the image
    assert inp.image.supplier == "kiln"  # no vendor annotation: the caller's default
    assert inp.files == ()  # not a kiln image: passwd etc. are not kiln's
    generate_spdx(inp)
    generate_cyclonedx(inp)


def test_no_creation_time_is_a_clear_error(tmp_path: Path) -> None:
    layout = _layout(tmp_path, _base())
    with pytest.raises(InputError, match="records no creation time") as caught:
        read_sbom_input(layout)
    assert caught.value.hint is not None
    assert "SOURCE_DATE_EPOCH" in caught.value.hint


def test_malformed_status_stanza_is_refused(tmp_path: Path) -> None:
    broken = b"Package: broken\nVersion 1.0\nArchitecture: amd64\n"
    layout = _layout(tmp_path, _base(file("var/lib/dpkg/status.d/broken", broken)))
    with pytest.raises(InputError, match="dpkg database is malformed") as caught:
        read_sbom_input(layout, source_date_epoch=EPOCH)
    assert caught.value.details == [
        "/var/lib/dpkg/status.d/broken:2: malformed line in stanza, stanza skipped"
    ]


def test_invalid_version_is_refused(tmp_path: Path) -> None:
    bad = b"Package: bad\nVersion: not a version!\nArchitecture: amd64\n"
    layout = _layout(tmp_path, _base(file("var/lib/dpkg/status.d/bad", bad)))
    with pytest.raises(InputError, match="malformed") as caught:
        read_sbom_input(layout, source_date_epoch=EPOCH)
    assert "invalid Version" in caught.value.details[0]


def test_missing_os_release_is_a_clear_error(tmp_path: Path) -> None:
    layout = _layout(tmp_path, [file("var/lib/dpkg/status.d/hello", STANZA)])
    with pytest.raises(InputError, match=r"no /etc/os-release or /usr/lib/os-release"):
        read_sbom_input(layout, source_date_epoch=EPOCH)


def test_os_release_without_id_is_a_clear_error(tmp_path: Path) -> None:
    layout = _layout(
        tmp_path,
        [file("etc/os-release", b"NAME=x\n"), file("var/lib/dpkg/status.d/hello", STANZA)],
    )
    with pytest.raises(InputError, match="/etc/os-release in the image has no ID field"):
        read_sbom_input(layout, source_date_epoch=EPOCH)


def test_os_release_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    loop = [
        (info("etc/os-release", b"2", linkname="/etc/a"), None),
        (info("etc/a", b"2", linkname="os-release"), None),
        (info("usr/lib/os-release", b"2", linkname="../../etc/os-release"), None),
        file("var/lib/dpkg/status.d/hello", STANZA),
    ]
    layout = _layout(tmp_path, loop)
    with pytest.raises(InputError, match="no /etc/os-release"):
        read_sbom_input(layout, source_date_epoch=EPOCH)


def test_no_dpkg_database_is_a_clear_error(tmp_path: Path) -> None:
    layout = _layout(tmp_path, [file("etc/os-release", OS_RELEASE)])
    with pytest.raises(InputError, match="has no dpkg database"):
        read_sbom_input(layout, source_date_epoch=EPOCH)


def test_whiteouts_and_removed_packages_are_honoured(tmp_path: Path) -> None:
    gone = b"Package: gone\nVersion: 1\nArchitecture: amd64\n"
    purged = b"Package: purged\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: all\n"
    lower = _base(file("var/lib/dpkg/status.d/gone", gone))
    upper = [
        file("var/lib/dpkg/status.d/.wh.gone", b""),
        file("var/lib/dpkg/status.d/purged", purged),
    ]
    layout = _layout(tmp_path, lower, upper)
    inp = read_sbom_input(layout, source_date_epoch=EPOCH)
    assert [p.name for p in inp.packages] == ["hello"]


def test_a_layer_escaping_the_root_is_refused(tmp_path: Path) -> None:
    layout = _layout(tmp_path, _base(file("../../etc/evil", b"x")))
    with pytest.raises(InputError, match="escapes the root filesystem"):
        read_sbom_input(layout, source_date_epoch=EPOCH)


def test_a_corrupted_layer_is_a_layout_error(tmp_path: Path) -> None:
    layout = _layout(tmp_path, _base())
    index = json.loads((layout / "index.json").read_bytes())
    manifest_digest = next(
        m["digest"] for m in index["manifests"] if m["mediaType"].endswith("manifest.v1+json")
    )
    manifest = json.loads((layout / "blobs/sha256" / manifest_digest[7:]).read_bytes())
    blob = layout / "blobs/sha256" / manifest["layers"][0]["digest"][7:]
    data = bytearray(blob.read_bytes())
    data[-5] ^= 0xFF  # inside gzip's trailer: the tar still reads, the digest does not match
    blob.write_bytes(bytes(data))
    with pytest.raises(LayoutError, match="does not match its descriptor") as caught:
        read_sbom_input(layout, source_date_epoch=EPOCH)
    assert caught.value.exit_code == 2  # as in kiln test, scan and publish


def test_not_a_layout_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not an OCI image layout"):
        read_sbom_input(tmp_path, source_date_epoch=EPOCH)


def test_unknown_platform_lists_what_is_there(tmp_path: Path) -> None:
    layout = _layout(tmp_path, _base())
    with pytest.raises(InputError, match="no image for platform linux/arm64") as caught:
        read_sbom_input(layout, platform="linux/arm64", source_date_epoch=EPOCH)
    assert caught.value.hint is not None
    assert "linux/amd64" in caught.value.hint


def test_copyright_files_that_are_not_machine_readable_give_noassertion(tmp_path: Path) -> None:
    layout = _layout(
        tmp_path,
        _base(
            file("usr/share/doc/hello/copyright", b"\xff\xfe binary garbage \x00\x01"),
        ),
    )
    inp = read_sbom_input(layout, source_date_epoch=EPOCH)
    assert inp.packages[0].license is None
    assert b'"licenseDeclared": "NOASSERTION"' in generate_spdx(inp)


def test_odd_but_valid_dpkg_fields_still_give_valid_documents(tmp_path: Path) -> None:
    stanzas = {
        "libstdc++6": (
            b"Package: libstdc++6\nVersion: 14.2.0-19\nArchitecture: amd64\n"
            b"Source: gcc-14 (14.2.0-19!)\nMaintainer: Weird (Name) <>\n"
            b"Homepage: https://exa mple.invalid/<x>\nDepends: libc6, missing-pkg | other\n"
        ),
        "g++": (
            b"Package: g++\nVersion: 4:14.2.0-1\nArchitecture: amd64\n"
            b"Maintainer: \xc3\x89milie <e@x>\nHomepage: javascript:alert(1)\n"
        ),
    }
    layout = _layout(
        tmp_path,
        [
            file("etc/os-release", OS_RELEASE),
            *(file(f"var/lib/dpkg/status.d/{n}", s) for n, s in stanzas.items()),
            file(
                "usr/share/doc/g++/copyright",
                HEADER_DEP5 + b"\nFiles: *\nCopyright: x\nLicense: MIT\n",
            ),
        ],
    )
    inp = read_sbom_input(layout, source_date_epoch=EPOCH)
    assert [p.name for p in inp.packages] == ["g++", "libstdc++6"]
    assert inp.packages[1].source_version == "14.2.0-19!"
    assert inp.packages[1].depends == ()
    spdx = json.loads(generate_spdx(inp))  # generate_spdx validates with spdx-tools
    ids = [p["SPDXID"] for p in spdx["packages"]]
    assert len(set(ids)) == len(ids)
    assert all("homepage" not in p for p in spdx["packages"])
    bom = generate_cyclonedx(inp)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(bom.decode()) is None
