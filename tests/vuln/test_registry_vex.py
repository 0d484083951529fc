"""VEX that travels with the image: `kiln vex attach` then `kiln scan REF --key`.

Runs against Debian's real docker-registry (no referrers API: the tag fallback carries
the attestation). Only VEX signed by the given key and about the scanned image may
change a finding; an unsigned, foreign or malformed one is set aside and said so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fixtures.registry import RunningRegistry, registry
from kiln.attest import Subject, make_statement
from kiln.attest.policy import CheckedBundle
from kiln.attest.predicates import OPENVEX_0_2, SPDX_2_3
from kiln.cli.main import main
from kiln.vuln.vex.attested import vex_from_attestations

from .conftest import make_layout, make_rootfs
from .test_cli import cli_db

__all__ = ["cli_db", "registry"]

CVE = "CVE-2018-18074"  # requests 2.19.0 in the test rootfs


def _vex(path: Path, product: str = "pkg:pypi/requests") -> Path:
    argv = ["vex", "create", "--vuln", CVE, "--product", product, "--status", "not_affected",
            "--justification", "vulnerable_code_not_in_execute_path",
            "--timestamp", "2024-01-01T00:00:00Z", "-o", str(path)]  # fmt: skip
    assert main(argv) == 0
    return path


def _scan(target: str, db: str, tmp: Path, *extra: str) -> dict[str, Any]:
    out = tmp / "scan.json"
    assert main(["scan", target, "--db", db, "--format", "json", "-o", str(out), *extra]) == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def _status(doc: dict[str, Any]) -> str:
    return str(next(f for f in doc["findings"] if f["id"] == CVE)["status"])


def test_signed_vex_in_the_registry_applies_only_with_its_key(
    registry: RunningRegistry,
    cli_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KILN_KEY_PASSWORD", "vex")
    for name in ("vendor", "stranger"):
        assert main(["keygen", "--out", str(tmp_path / name)]) == 0
    layout = make_layout(make_rootfs(tmp_path / "rootfs"), tmp_path / "layout")
    ref = f"{registry.host}/vex/app:1.0"
    assert main(["registry", "push", str(layout), ref]) == 0

    # nothing attached yet: the finding stands, and the report says VEX was not read
    unkeyed = _scan(ref, cli_db, tmp_path)
    assert _status(unkeyed) != "not_affected"  # "fixed": a fix exists upstream
    assert any("give --key" in w for w in unkeyed["warnings"]), unkeyed["warnings"]

    vex = _vex(tmp_path / "vex.json")
    assert main(["vex", "attach", ref, str(vex), "--key", str(tmp_path / "vendor.key")]) == 0

    trusted = _scan(ref, cli_db, tmp_path, "--key", str(tmp_path / "vendor.pub"))
    assert _status(trusted) == "not_affected"
    assert any("1 VEX statement(s)" in w for w in trusted["warnings"]), trusted["warnings"]

    # the same attestation under another key: set aside, the finding stands
    other = _scan(ref, cli_db, tmp_path, "--key", str(tmp_path / "stranger.pub"))
    assert _status(other) == _status(unkeyed)
    assert any("not signed by the given key" in w for w in other["warnings"]), other["warnings"]


def test_attach_refuses_a_document_that_is_not_vex(
    registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_KEY_PASSWORD", "vex")
    assert main(["keygen", "--out", str(tmp_path / "k")]) == 0
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"spdxVersion": "SPDX-2.3"}')
    ref = f"{registry.host}/vex/none:1"
    assert main(["vex", "attach", ref, str(bogus), "--key", str(tmp_path / "k.key")]) == 2


def test_local_target_with_key_is_refused(cli_db: str, tmp_path: Path) -> None:
    root = make_rootfs(tmp_path / "rootfs")
    argv = ["scan", str(root), "--db", cli_db, "--key", str(tmp_path / "k.pub")]
    assert main(argv) == 2


# ------------------------------------------------------------------ the pure selection

IMAGE = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def _openvex() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_vex_doc())
    return doc


def _vex_doc() -> str:
    return json.dumps(
        {
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://kiln.dev/vex/test",
            "author": "kiln",
            "timestamp": "2024-01-01T00:00:00Z",
            "version": 1,
            "statements": [
                {
                    "vulnerability": {"name": CVE},
                    "products": [{"@id": "pkg:pypi/requests"}],
                    "status": "not_affected",
                    "justification": "vulnerable_code_not_in_execute_path",
                }
            ],
        }
    )


def _bundle(
    digest: str, predicate_type: str, predicate: dict[str, Any], *, signed: bool = True
) -> CheckedBundle:
    statement = make_statement([Subject.of("app", digest)], predicate_type, predicate)
    return CheckedBundle(f"referrer-{digest[-4:]}", statement=statement, signed=signed)


def test_only_signed_vex_about_the_image_is_taken() -> None:
    bundles = [
        _bundle(IMAGE, OPENVEX_0_2, _openvex()),
        _bundle(IMAGE, OPENVEX_0_2, _openvex(), signed=False),
        _bundle(OTHER, OPENVEX_0_2, _openvex()),
        _bundle(IMAGE, SPDX_2_3, {"spdxVersion": "SPDX-2.3"}),  # not VEX: skipped silently
        _bundle(IMAGE, OPENVEX_0_2, {"@context": "https://openvex.dev/ns/v0.2.0"}),
        CheckedBundle("broken", problem="not JSON"),
    ]
    taken = vex_from_attestations(bundles, {IMAGE})
    assert [s.vulnerability for s in taken.statements] == [CVE]
    reasons = "\n".join(taken.set_aside)
    assert len(taken.set_aside) == 4, reasons
    assert "not signed by the given key" in reasons
    assert "about another image" in reasons
    assert "not valid OpenVEX" in reasons
    assert "broken: unreadable attestation (not JSON)" in reasons
