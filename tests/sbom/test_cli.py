"""``kiln sbom`` end to end: formats, --output, --lock, --platform and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.sbom import generate_cyclonedx, generate_spdx, read_sbom_input
from sbom.conftest import Image


def test_writes_spdx_with_the_lock(image: Image, tmp_path: Path) -> None:
    lock = tmp_path / "tiny.lock.json"
    lock.write_bytes(image.lock.to_json())
    out = tmp_path / "sbom.spdx.json"
    code = main(
        ["sbom", str(image.layout), "--format", "spdx-json", "--lock", str(lock), "-o", str(out)]
    )
    assert code == 0
    assert out.read_bytes() == generate_spdx(read_sbom_input(image.layout, lock=image.lock))


def test_writes_cyclonedx_to_stdout(
    image: Image, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert main(["sbom", str(image.layout), "--format", "cyclonedx-json"]) == 0
    assert capsysbinary.readouterr().out == generate_cyclonedx(read_sbom_input(image.layout))


def test_platform_and_supplier_options(image: Image, tmp_path: Path) -> None:
    out = tmp_path / "bom.json"
    code = main(
        [
            "sbom",
            str(image.layout),
            "-f",
            "cyclonedx-json",
            "--platform",
            "linux/amd64",
            "--supplier",
            "ignored: the image has a vendor annotation",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    assert json.loads(out.read_bytes())["metadata"]["supplier"]["name"] == "kiln tests"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml"], "unknown SBOM format 'xml'"),
        (["--platform", "linux/riscv64"], "no image for platform linux/riscv64"),
        (
            ["--lock", "/nonexistent/x.lock.json"],
            "lock file /nonexistent/x.lock.json does not exist",
        ),
    ],
)
def test_bad_input_exits_2_with_a_message(
    image: Image, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sbom", str(image.layout), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_layout_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sbom", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_source_date_epoch_dates_a_layout_without_a_creation_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sandbox.layouts import file, write_layout

    layout = write_layout(
        tmp_path / "layout",
        [
            [
                file("etc/os-release", b"ID=debian\nVERSION_ID=13\n"),
                file("var/lib/dpkg/status.d/a", b"Package: a\nVersion: 1\nArchitecture: all\n"),
            ]
        ],
    )
    assert main(["sbom", str(layout)]) == 2
    assert "SOURCE_DATE_EPOCH" in capsys.readouterr().err
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "x.json"
    assert main(["sbom", str(layout), "-o", str(out)]) == 0
    assert json.loads(out.read_bytes())["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    assert main(["sbom", str(layout)]) == 2
    assert "SOURCE_DATE_EPOCH='yesterday'" in capsys.readouterr().err
