"""``kiln keygen``, ``kiln sign``, ``kiln attest``, ``kiln verify`` end to end."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from fixtures.registry import RunningRegistry
from kiln.attest import ImageDigests, ProvenanceInputs, provenance_predicate
from kiln.attest.policy_file import parse_duration
from kiln.cli.main import main
from kiln.errors import InputError
from kiln.registry import Reference, push_layout
from registry.helpers import client_for
from registry.layouts import write_layout

from .test_keyless import CI_VARIABLES

SPDX = {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "tiny"}


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("KILN_KEY_PASSWORD", "s3cret passphrase")
    assert main(["keygen", "--out", str(tmp_path / "keys" / "kiln")]) == 0
    return tmp_path / "keys" / "kiln.key", tmp_path / "keys" / "kiln.pub"


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    return write_layout(tmp_path / "tiny").path


def _attest_everything(
    layout: Path, key: Path, tmp_path: Path, inputs: ProvenanceInputs
) -> ImageDigests:
    digests = ImageDigests.from_layout(layout)
    assert main(["sign", str(layout), "--key", str(key)]) == 0
    sbom = tmp_path / "sbom.spdx.json"
    sbom.write_text(json.dumps(SPDX))
    assert main(["attest", str(layout), str(sbom), "--key", str(key)]) == 0
    provenance = tmp_path / "provenance.json"
    inputs = dataclasses.replace(inputs, image=digests)
    provenance.write_text(json.dumps(provenance_predicate(inputs)))
    assert main(["attest", str(layout), str(provenance), "--key", str(key)]) == 0
    return digests


def test_keygen_sign_attest_verify_a_layout(
    keys: tuple[Path, Path],
    layout: Path,
    tmp_path: Path,
    provenance_inputs: ProvenanceInputs,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = keys
    digests = _attest_everything(layout, private, tmp_path, provenance_inputs)
    written = sorted(p.name for p in (layout / "attestations").iterdir())
    assert written == [
        "image-signature-amd64.sigstore.json",
        "image-signature-arm64.sigstore.json",
        "image-signature-index.sigstore.json",
        "provenance.sigstore.json",
        "spdx.sigstore.json",
    ]
    capsys.readouterr()
    argv = ["verify", str(layout), "--key", str(public), "--require", "spdx"]
    argv += ["--builder-id", "https://kiln.dev/builders/test/v1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"verified {digests.index_digest}" in out
    assert "ok: SPDX SBOM" in out


def test_verify_failures_exit_1_with_the_reason(
    keys: tuple[Path, Path],
    layout: Path,
    tmp_path: Path,
    provenance_inputs: ProvenanceInputs,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, _ = keys
    _attest_everything(layout, private, tmp_path, provenance_inputs)
    assert main(["keygen", "--out", str(tmp_path / "other")]) == 0
    capsys.readouterr()
    assert main(["verify", str(layout), "--key", str(tmp_path / "other.pub")]) == 1
    assert "wrong key" in capsys.readouterr().err
    assert main(["verify", str(layout), "--key", str(keys[1]), "--require", "cyclonedx"]) == 1
    assert "missing CycloneDX SBOM attestation" in capsys.readouterr().err
    argv = ["verify", str(layout), "--key", str(keys[1]), "--max-age", "1d"]
    assert main(argv) == 1  # built 2026-11-20 per the injected provenance clock
    assert "image too old" in capsys.readouterr().err
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "requireAttestations: [spdx]\nbuilderIds: [https://kiln.dev/builders/ci/v1]\n"
    )
    assert main(["verify", str(layout), "--key", str(keys[1]), "--policy", str(policy)]) == 1
    assert (
        "builder id 'https://kiln.dev/builders/test/v1' is not allowed" in capsys.readouterr().err
    )
    argv = ["verify", str(layout), "--key", str(keys[1]), "--policy", str(policy)]
    assert main([*argv, "--builder-id", "https://kiln.dev/builders/test/v1"]) == 0


def test_signing_usage_errors(
    keys: tuple[Path, Path],
    layout: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private, _ = keys
    assert main(["sign", str(layout)]) == 2
    assert "either --key KEY or --keyless" in capsys.readouterr().err
    monkeypatch.delenv("KILN_KEY_PASSWORD")
    assert main(["sign", str(layout), "--key", str(private)]) == 2
    assert "encrypted and no passphrase" in capsys.readouterr().err
    password_file = tmp_path / "pw"
    password_file.write_text("s3cret passphrase\n")
    assert (
        main(["sign", str(layout), "--key", str(private), "--password-file", str(password_file)])
        == 0
    )
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"hello": "world"}')
    monkeypatch.setenv("KILN_KEY_PASSWORD", "s3cret passphrase")
    assert main(["attest", str(layout), str(unknown), "--key", str(private)]) == 2
    assert "cannot tell what kind of document" in capsys.readouterr().err
    assert main(["keygen", "--out", str(tmp_path / "keys" / "kiln")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_keyless_without_a_ci_identity_exits_3(
    layout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert main(["sign", str(layout), "--keyless"]) == 3
    assert "no ambient OIDC credential" in capsys.readouterr().err


def test_keygen_needs_a_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KILN_KEY_PASSWORD", raising=False)
    assert main(["keygen", "--out", str(tmp_path / "k")]) == 2
    assert "no passphrase" in capsys.readouterr().err
    assert not (tmp_path / "k.key").exists()


def test_verify_a_registry_reference(  # noqa: PLR0917 - pytest fixtures
    registry: RunningRegistry,
    keys: tuple[Path, Path],
    layout: Path,
    tmp_path: Path,
    provenance_inputs: ProvenanceInputs,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = keys
    _attest_everything(layout, private, tmp_path, provenance_inputs)
    client = client_for(registry)
    reference = Reference.parse(f"{registry.host}/kiln/cli-tiny:1.0")
    push_layout(client, layout, reference)
    # bundles kept locally (not yet attached) are checked against the registry's digest
    argv = [
        "verify",
        str(reference),
        "--key",
        str(public),
        "--bundles",
        str(layout / "attestations"),
    ]
    assert main(argv) == 0
    assert main(["verify", str(reference), "--key", str(public)]) == 1
    assert "unsigned image" in capsys.readouterr().err


def test_parse_duration() -> None:
    assert parse_duration("1w2d") == dt.timedelta(days=9)
    assert parse_duration("36h") == dt.timedelta(hours=36)
    for bad in ("", "5", "1y", "0d", "1d 2h"):
        with pytest.raises(InputError):
            parse_duration(bad)


def test_the_cli_names_every_attestation_kind() -> None:
    from kiln.attest.policy_file import ATTESTATION_NAMES
    from kiln.cli.attest import KIND_NAMES

    assert tuple(ATTESTATION_NAMES) == KIND_NAMES


def test_attest_refuses_an_unknown_type(
    keys: tuple[Path, Path], layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = tmp_path / "doc.json"
    document.write_text("{}")
    assert (
        main(["attest", str(layout), str(document), "--type", "sbom", "--key", str(keys[0])]) == 2
    )
    assert "attestation 'sbom' is neither one of" in capsys.readouterr().err
