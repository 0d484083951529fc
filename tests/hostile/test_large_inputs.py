"""Large SBOMs and dpkg status files are streamed (issue 13.10), and read as before.

The streamed paths must give exactly what the whole-document paths give; the limits
(package records, bytes) are refused with an input error naming the file. bench/
large_inputs.py measures time and peak memory on generated inputs of 10^4-10^6 records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kiln.errors import InputError
from kiln.inventory import dpkg as dpkg_module
from kiln.inventory import load_target
from kiln.inventory import sbom as sbom_module
from kiln.inventory.dpkg import parse_status, read_status_file


def _component(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "library",
        "bom-ref": f"c{i}",
        "name": f"pkg{i}",
        "version": "1.0-1",
        "purl": f"pkg:deb/debian/pkg{i}@1.0-1?arch=amd64&upstream=src{i}",
        **extra,
    }


DOCUMENTS: dict[str, dict[str, Any]] = {
    "cyclonedx, OS component last, nested": {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": [
            _component(1),
            _component(2, components=[_component(3), {"type": "library", "name": "x"}]),
            "not an object",
            {"type": "library", "name": "bad", "purl": "pkg:deb/debian/"},
            {"type": "library", "name": "py", "purl": "pkg:pypi/Requests@2.31.0"},
            {"type": "operating-system", "name": "debian", "version": "13"},
        ],
    },
    "spdx": {
        "SPDXID": "SPDXRef-DOCUMENT",
        "packages": [
            {
                "SPDXID": f"SPDXRef-{i}",
                "name": f"pkg{i}",
                "versionInfo": "2.0-1",
                "sourceInfo": f"built package from: src{i} 2.0-1",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": f"pkg:deb/debian/pkg{i}@2.0-1?distro=debian-12",
                    }
                ],
            }
            for i in range(5)
        ],
        "spdxVersion": "SPDX-2.3",  # the format key last: found by reading on
    },
    "in-toto statement": {
        "_type": "https://in-toto.io/Statement/v1",
        "predicateType": "https://cyclonedx.org/bom",
        "subject": [],
        "predicate": {"bomFormat": "CycloneDX", "components": [_component(7)]},
    },
}


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_a_streamed_sbom_reads_as_a_parsed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    path = tmp_path / "bom.json"
    path.write_text(json.dumps(DOCUMENTS[name], indent=1))
    whole = load_target(path)
    monkeypatch.setattr(sbom_module, "STREAM_ABOVE_BYTES", 0)
    streamed = load_target(path)
    assert whole.packages  # not trivially equal
    assert streamed == whole


@pytest.fixture
def streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sbom_module, "STREAM_ABOVE_BYTES", 0)


@pytest.mark.usefixtures("streaming")
def test_more_package_records_than_the_limit_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sbom_module, "MAX_SBOM_PACKAGES", 3)
    path = tmp_path / "bom.json"
    path.write_text(
        json.dumps({"bomFormat": "CycloneDX", "components": [_component(i) for i in range(4)]})
    )
    with pytest.raises(InputError, match="more than 3 package records") as caught:
        load_target(path)
    assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.usefixtures("streaming")
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"bomFormat": "CycloneDX", "components": [{"a": 1},', "the file is not JSON near byte"),
        ('{"bomFormat": "Other", "components": []}', "not an SBOM: neither SPDX"),
        ('{"spdxVersion": "SPDX-3.0", "packages": []}', "unsupported SPDX-3.0"),
        ('{"components": []}', "not an SBOM: neither SPDX"),
    ],
)
def test_a_malformed_streamed_sbom_is_an_input_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bom.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_target(path)


@pytest.mark.usefixtures("streaming")
def test_a_deeply_nested_streamed_sbom_is_refused_before_parsing(tmp_path: Path) -> None:
    # ijson builds an O(depth) path per event: 100,000 levels exhausted the memory
    path = tmp_path / "bom.json"
    deep = "[" * 100_000 + "]" * 100_000
    path.write_text(
        '{"bomFormat": "CycloneDX", "components": [{"purl": "pkg:deb/debian/a@1", '
        f'"licenses": {deep}}}]}}'
    )
    with pytest.raises(InputError, match="the file nests arrays/objects deeper than 128"):
        load_target(path)
    shallow = "[" * 20 + "]" * 20  # nesting that is not refused is read
    path.write_text(
        '{"bomFormat": "CycloneDX", "components": [{"purl": "pkg:deb/debian/a@1", '
        f'"licenses": {shallow}, "components": [[{shallow}]]}}]}}'
    )
    assert [p.name for p in load_target(path).packages] == ["a"]


STATUS = (
    "Package: one\r\nStatus: install ok installed\r\nVersion: 1.0-1\r\n\r\n"
    "Package: two\nStatus: install ok installed\nVersion: 2\nDescription: a\u2028b\n"
    " more\n\n# comment\nPackage: three\nStatus: deinstall ok config-files\nVersion: 3\n\n"
    "Package: four\nStatus: install ok installed\nVersion: 4\nSource: src (4a)\n\n"
)


@pytest.mark.parametrize("block", [1, 7, 4096, 1 << 20])
def test_a_streamed_status_file_reads_as_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(dpkg_module, "_READ_BLOCK", block)
    path = tmp_path / "status"
    path.write_bytes(STATUS.encode() * 50)
    whole_warnings: list[str] = []
    streamed_warnings: list[str] = []
    whole = parse_status(path.read_bytes(), "s", None, whole_warnings)
    streamed = read_status_file(path, "s", None, streamed_warnings)
    assert len(whole) == 100  # "two": its U+2028 breaks the line, the stanza is skipped
    assert len(whole_warnings) == 50
    assert (streamed, streamed_warnings) == (whole, whole_warnings)


@pytest.mark.parametrize("block", [5, 1 << 20])
def test_a_streamed_status_file_names_the_first_byte_that_is_not_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(dpkg_module, "_READ_BLOCK", block)
    path = tmp_path / "status"
    data = STATUS.encode() * 3
    path.write_bytes(data + b"Package: \xff\n")
    with pytest.raises(InputError, match=f"byte {len(data) + 9} is not UTF-8"):
        load_target(path)
    with pytest.raises(InputError, match=f"byte {len(data) + 9} is not UTF-8"):
        parse_status(path.read_bytes(), str(path), None, [])
