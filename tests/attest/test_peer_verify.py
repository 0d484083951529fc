"""Peer check: Sigstore's JavaScript verifier (@sigstore/verify) accepts kiln's bundles.

``tests/attest/node`` pins @sigstore/verify, @sigstore/bundle and @sigstore/core
(package.json + package-lock.json); ``npm ci`` installs them on first use (npm is
reachable in CI). ``verify.js`` builds trust material from the PEM public key, keyed
by the bundle's ``publicKey.hint``, and verifies with ``tlogThreshold: 0`` and
``timestampThreshold: 0``: kiln's key-signed bundles carry no Rekor entry and no
timestamp, and with the defaults (1 each) the verifier refuses them
("expected 1 timestamps, got 0", then "expected 1 tlog entries, got 0").
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kiln.attest import (
    EcdsaSigner,
    ProvenanceInputs,
    image_signature_statement,
    provenance_statement,
    sign_statement,
)

from .helpers import IMAGE, tamper_payload

NODE_DIR = Path(__file__).parent / "node"
INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture(scope="module")
def node_verifier() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the Sigstore JS peer check")
    if not (NODE_DIR / "node_modules" / "@sigstore" / "verify").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return NODE_DIR / "verify.js"


def _run(script: Path, bundle: bytes, public_pem: bytes, tmp_path: Path) -> tuple[int, Any]:
    bundle_path = tmp_path / "bundle.sigstore.json"
    bundle_path.write_bytes(bundle)
    key_path = tmp_path / "key.pub"
    key_path.write_bytes(public_pem)
    done = subprocess.run(
        ["node", str(script), str(bundle_path), str(key_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


def test_sigstore_js_verifies_our_image_signature(
    node_verifier: Path, signer: EcdsaSigner, tmp_path: Path
) -> None:
    statement = image_signature_statement("tiny", IMAGE.index_digest, media_type=INDEX)
    code, result = _run(
        node_verifier, sign_statement(statement, signer), signer.public_key_pem(), tmp_path
    )
    assert (code, result["ok"]) == (0, True), result
    assert result["hint"] == signer.key_id
    assert result["statement"] == json.loads(statement.to_json())


def test_sigstore_js_verifies_our_provenance(
    node_verifier: Path,
    signer: EcdsaSigner,
    provenance_inputs: ProvenanceInputs,
    tmp_path: Path,
) -> None:
    statement = provenance_statement(provenance_inputs)
    code, result = _run(
        node_verifier, sign_statement(statement, signer), signer.public_key_pem(), tmp_path
    )
    assert code == 0, result
    assert result["statement"]["predicateType"] == "https://slsa.dev/provenance/v1"


def test_sigstore_js_rejects_a_tampered_payload(
    node_verifier: Path, signer: EcdsaSigner, tmp_path: Path
) -> None:
    statement = image_signature_statement("tiny", IMAGE.index_digest, media_type=INDEX)
    forged = tamper_payload(
        sign_statement(statement, signer),
        {"subject": [{"name": "tiny", "digest": {"sha256": "0" * 64}}]},
    )
    payload = json.loads(base64.b64decode(json.loads(forged)["dsseEnvelope"]["payload"]))
    assert payload["subject"][0]["digest"]["sha256"] == "0" * 64  # the forgery took
    code, result = _run(node_verifier, forged, signer.public_key_pem(), tmp_path)
    assert (code, result["ok"], result["code"]) == (1, False, "SIGNATURE_ERROR")


def test_sigstore_js_rejects_the_wrong_key(
    node_verifier: Path, signer: EcdsaSigner, other_signer: EcdsaSigner, tmp_path: Path
) -> None:
    statement = image_signature_statement("tiny", IMAGE.index_digest, media_type=INDEX)
    code, result = _run(
        node_verifier, sign_statement(statement, signer), other_signer.public_key_pem(), tmp_path
    )
    assert (code, result["ok"], result["code"]) == (1, False, "SIGNATURE_ERROR")
