"""Signing keys: kiln keygen's PEM files, keys openssl writes, and hostile key files."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kiln.attest import (
    EcdsaSigner,
    EcdsaVerifier,
    Signer,
    Verifier,
    generate_key_pair,
    load_signer,
    load_verifier,
    read_password,
    write_key_pair,
)
from kiln.errors import InputError

PASSWORD = b"correct horse battery staple"


def _openssl(*args: str) -> bytes:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    return subprocess.run(["openssl", *args], check=True, capture_output=True).stdout


def test_keygen_writes_an_encrypted_pkcs8_key_and_a_public_key(tmp_path: Path) -> None:
    private_path, public_path, pair = write_key_pair(tmp_path / "keys" / "kiln", PASSWORD)
    assert private_path.name == "kiln.key"
    assert public_path.name == "kiln.pub"
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert private_path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert public_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    signer = load_signer(private_path, password=PASSWORD)
    verifier = load_verifier(public_path)
    assert signer.key_id == verifier.key_id == pair.key_id
    assert verifier.verify(b"data", signer.sign(b"data"))
    assert not verifier.verify(b"other data", signer.sign(b"data"))


def test_openssl_reads_the_encrypted_key_with_the_passphrase(tmp_path: Path) -> None:
    private_path, _, _ = write_key_pair(tmp_path / "k", PASSWORD)
    pass_file = tmp_path / "pass"
    pass_file.write_bytes(PASSWORD + b"\n")
    text = _openssl(
        "pkey", "-in", str(private_path), "-passin", f"file:{pass_file}", "-noout", "-text"
    )
    assert b"P-256" in text or b"prime256v1" in text


def test_keygen_never_overwrites_and_refuses_an_empty_passphrase(tmp_path: Path) -> None:
    write_key_pair(tmp_path / "k", PASSWORD)
    before = (tmp_path / "k.key").read_bytes()
    with pytest.raises(InputError, match=r"k\.key already exists"):
        write_key_pair(tmp_path / "k", PASSWORD)
    assert (tmp_path / "k.key").read_bytes() == before
    with pytest.raises(InputError, match="passphrase is empty"):
        generate_key_pair(b"")


def test_wrong_or_missing_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    private_path, _, _ = write_key_pair(tmp_path / "k", PASSWORD)
    with pytest.raises(InputError, match="wrong passphrase") as wrong:
        load_signer(private_path, password=b"nope")
    assert str(private_path) in str(wrong.value)
    with pytest.raises(InputError, match="encrypted and no passphrase") as missing:
        load_signer(private_path, password=None)
    assert "KILN_KEY_PASSWORD" in (missing.value.hint or "")


def test_unencrypted_pkcs8_key_from_openssl_genpkey(tmp_path: Path) -> None:
    key = tmp_path / "openssl.key"
    key.write_bytes(_openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"))
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    public = tmp_path / "openssl.pub"
    public.write_bytes(_openssl("pkey", "-in", str(key), "-pubout"))
    # a passphrase in the environment for other keys does not get in the way
    signer = load_signer(key, password=b"set for another key")
    verifier = load_verifier(public)
    assert signer.key_id == verifier.key_id
    assert verifier.verify(b"payload", signer.sign(b"payload"))


def test_sec1_key_from_openssl_ecparam(tmp_path: Path) -> None:
    key = tmp_path / "sec1.key"
    key.write_bytes(_openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout"))
    assert key.read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert load_signer(key, password=None).sign(b"x")


def test_openssl_verifies_our_signatures(tmp_path: Path, signer: EcdsaSigner) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"signed by kiln\n")
    signature = tmp_path / "sig"
    signature.write_bytes(signer.sign(data.read_bytes()))
    public = tmp_path / "pub.pem"
    public.write_bytes(signer.public_key_pem())
    out = _openssl(
        "dgst", "-sha256", "-verify", str(public), "-signature", str(signature), str(data)
    )
    assert out.strip() == b"Verified OK"


def test_rsa_and_other_curves_are_refused(tmp_path: Path) -> None:
    rsa_key = tmp_path / "rsa.key"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(InputError, match="not an ECDSA key"):
        load_signer(rsa_key, password=None)
    p384 = tmp_path / "p384.pub"
    p384.write_bytes(
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InputError, match="secp384r1, not P-256"):
        load_verifier(p384)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a PEM private key"),
        (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "not a PEM private key",
        ),
        (b"\x00" * 70000, "larger than"),
    ],
)
def test_garbage_private_keys(tmp_path: Path, content: bytes, message: str) -> None:
    key = tmp_path / "bad.key"
    key.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_signer(key, password=None)


def test_public_key_errors(tmp_path: Path, signer: EcdsaSigner) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_verifier(tmp_path / "missing.pub")
    private = tmp_path / "private.pem"
    private.write_bytes(
        signer.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(InputError, match="this is a private key"):
        load_verifier(private)
    junk = tmp_path / "junk.pub"
    junk.write_text("hello\n")
    with pytest.raises(InputError, match="not a PEM public key"):
        load_verifier(junk)


def test_read_password_prefers_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"from-file\nsecond line ignored\n")
    assert read_password(secret, environ={"KILN_KEY_PASSWORD": "from-env"}) == b"from-file"
    assert read_password(None, environ={"KILN_KEY_PASSWORD": "from-env"}) == b"from-env"
    assert read_password(None, environ={}) is None
    with pytest.raises(InputError, match="does not exist"):
        read_password(tmp_path / "nope", environ={})


def test_local_keys_satisfy_the_plug_in_protocols(signer: EcdsaSigner) -> None:
    assert isinstance(signer, Signer)
    assert isinstance(signer.verifier(), Verifier)
    again = EcdsaVerifier.from_pem(signer.public_key_pem(), where="test")
    assert again.key_id == signer.key_id
    assert len(signer.key_id) == 64
