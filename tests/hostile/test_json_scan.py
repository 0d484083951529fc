"""kiln scan and kiln db update on deeply nested JSON: an input error naming the file.

Issue 13.3: nested SPDX/CycloneDX documents, package.json files in an image and OSV
records crashed with RecursionError (a traceback, exit 1).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.errors import InputError
from kiln.inventory import load_target
from kiln.vuln.feeds import FEEDS, from_bytes

DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize(
    "document",
    [
        b'{"bomFormat": "CycloneDX", "components": ' + DEEP + b"}",
        b'{"spdxVersion": "SPDX-2.3", "packages": [{"externalRefs": ' + DEEP + b"}]}",
        b'{"_type": "https://in-toto.io/Statement/v1", "predicate": ' + DEEP + b"}",
    ],
)
def test_a_deeply_nested_sbom_is_an_input_error(
    tmp_path: Path, document: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    sbom = tmp_path / "bom.json"
    sbom.write_bytes(document)
    with pytest.raises(InputError, match="the file nests arrays/objects deeper than 128"):
        load_target(sbom)
    assert main(["scan", str(sbom)]) == 2
    assert f"{sbom}: the file nests arrays/objects deeper than 128 levels" in (
        capsys.readouterr().err
    )


def test_a_deeply_nested_package_json_in_a_rootfs_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "app/node_modules/deep").mkdir(parents=True)
    (tmp_path / "app/node_modules/deep/package.json").write_bytes(DEEP)
    inventory = load_target(tmp_path)
    assert inventory.packages == ()
    assert any("package.json: the file nests" in w for w in inventory.warnings)


def test_a_deeply_nested_osv_record_is_a_feed_format_error() -> None:
    feed = FEEDS["osv"]()
    with pytest.raises(InputError, match=r"x\.json: the OSV record nests"):
        list(feed.records(from_bytes("x.json", b'{"id": "X", "affected": ' + DEEP + b"}")))


def test_a_deeply_nested_tracker_export_is_refused_before_parsing() -> None:
    # 60 KB nested 30,000 levels took ijson 2.2 GB of paths before the fix
    export = b'{"pkg": {"CVE-1": {"releases": ' + b"[" * 30000 + b"]" * 30000 + b"}}}"
    feed = FEEDS["debian-tracker"]()
    with pytest.raises(InputError, match=r"t\.json: \$: not a Debian tracker export: it nests"):
        list(feed.records(from_bytes("t.json", export)))
