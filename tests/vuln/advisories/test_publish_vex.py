"""The advisory store's OpenVEX, signed and attached on publish, read back by kiln.

Against Debian's real docker-registry (tag fallback for referrers): an image is pushed,
``pipeline.publish.openvex_attestation`` (what ``attestations_for`` adds when given the
store) signs the image's OpenVEX from the store and it is attached like every other
attestation; ``kiln scan REF --key`` then applies it, and the attestation verifies
against a policy that requires VEX.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.conftest import Env, env
from cli.test_publish_cli import SPEC_WITH_VERSION
from fixtures.registry import RunningRegistry, registry
from kiln.attest import (
    EcdsaVerifier,
    ImageDigests,
    attach_attestations,
    fetch_bundles,
    verify_image,
)
from kiln.attest.policy import RequiredAttestations
from kiln.attest.predicates import OPENVEX_0_2
from kiln.cli.main import main
from kiln.pipeline.publish import openvex_attestation
from kiln.pipeline.signing import bundle_signer
from kiln.registry import Digest, RegistryClient
from kiln.vuln.advisories import AdvisoryEvent, AdvisoryStore, EventKind

from ..conftest import make_layout, make_rootfs
from ..test_cli import cli_db

__all__ = ["cli_db", "env", "registry"]

CVE = "CVE-2018-18074"  # requests 2.19.0 in the test rootfs
FP = {
    "justification": "vulnerable_code_not_in_execute_path",
    "impact_statement": "the image never sends credentials through requests redirects",
}


def _status(ref: str, db: str, tmp: Path, *extra: str) -> tuple[str, list[str]]:
    out = tmp / "scan.json"
    assert main(["scan", ref, "--db", db, "--format", "json", "-o", str(out), *extra]) == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    status = next(f for f in doc["findings"] if f["id"] == CVE)["status"]
    return str(status), list(doc["warnings"])


def test_published_advisory_vex_silences_the_finding_with_the_key(
    registry: RunningRegistry,
    cli_db: str,
    store: AdvisoryStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KILN_KEY_PASSWORD", "vex")
    assert main(["keygen", "--out", str(tmp_path / "vendor")]) == 0
    layout = make_layout(make_rootfs(tmp_path / "rootfs"), tmp_path / "layout")
    ref = f"{registry.host}/advisories/app:1.0"
    assert main(["registry", "push", str(layout), ref]) == 0
    digests = ImageDigests.from_layout(layout, name="app")
    signer = bundle_signer(tmp_path / "vendor.key", False, None)

    # no determination for the image yet: nothing to attest
    store.append(AdvisoryEvent("app", CVE, EventKind.DETECTION, "pkg:pypi/requests"))
    assert openvex_attestation(store, digests, signer) is None
    before, _ = _status(ref, cli_db, tmp_path, "--key", str(tmp_path / "vendor.pub"))
    assert before != "not_affected"

    store.append(AdvisoryEvent("app", CVE, EventKind.FALSE_POSITIVE, "pkg:pypi/requests", FP))
    attestation = openvex_attestation(store, digests, signer)
    assert attestation is not None
    assert attestation.predicate_type == OPENVEX_0_2
    assert attestation.attach_to == (digests.index_digest, *digests.manifests.values())
    with RegistryClient.for_host(registry.host) as client:
        attach_attestations(client, "advisories/app", [attestation])
        bundles = fetch_bundles(
            client, "advisories/app", Digest.parse(digests.index_digest, what="image")
        )
    verifier = EcdsaVerifier.from_pem((tmp_path / "vendor.pub").read_bytes(), where="vendor.pub")
    verify_image(bundles, digests.index_digest, verifier, RequiredAttestations((OPENVEX_0_2,)))

    after, warnings = _status(ref, cli_db, tmp_path, "--key", str(tmp_path / "vendor.pub"))
    assert after == "not_affected"
    assert any("1 VEX statement(s)" in w for w in warnings), warnings


def test_kiln_publish_attests_the_images_vex_from_kilns_database(
    env: Env,
    registry: RunningRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`kiln publish` with a determination for the runtime image only: that image carries
    a VEX attestation `kiln verify --require vex` accepts; the -dev image has none."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    monkeypatch.setenv("KILN_KEY_PASSWORD", "vex")
    monkeypatch.setenv("KILN_DB", str(tmp_path / "kiln.db"))
    assert main(["keygen", "--out", str(tmp_path / "kiln")]) == 0
    argv = [
        "advisories",
        "record",
        "demo",
        "CVE-2025-0001",
        "false-positive-determination",
        "--package",
        "libssl3",
        "--data",
        "justification=component_not_present",
        "--data",
        "impact_statement=the image has no libssl3",
    ]
    assert main(argv) == 0
    env.spec.write_text(SPEC_WITH_VERSION)
    destination = f"{registry.host}/advisories-{tmp_path.name[-12:].lower()}"
    publish = [
        "publish",
        str(env.spec),
        "--registry",
        destination,
        "--key",
        str(tmp_path / "kiln.key"),
        "--output",
        str(tmp_path / "out"),
    ]
    assert main(publish) == 0
    pub = str(tmp_path / "kiln.pub")
    capsys.readouterr()
    assert main(["verify", f"{destination}/demo:latest", "--key", pub, "--require", "vex"]) == 0
    assert main(["verify", f"{destination}/demo:latest-dev", "--key", pub, "--require", "vex"]) == 1
    assert "openvex" in capsys.readouterr().err.lower()


def test_kiln_scan_vex_reads_the_exported_document(
    cli_db: str, store: AdvisoryStore, store_url: str, tmp_path: Path
) -> None:
    rootfs = make_rootfs(tmp_path / "rootfs")
    before, _ = _status(str(rootfs), cli_db, tmp_path)
    assert before != "not_affected"
    store.append(AdvisoryEvent("app", CVE, EventKind.FALSE_POSITIVE, "pkg:pypi/requests", FP))
    vex = tmp_path / "app.openvex.json"
    assert main(["advisories", "openvex", "app", "-o", str(vex), "--db", store_url]) == 0
    after, _ = _status(str(rootfs), cli_db, tmp_path, "--vex", str(vex))
    assert after == "not_affected"
