"""Signing keys: ECDSA P-256 key pairs in PEM, and the Signer/Verifier interfaces.

``Signer`` and ``Verifier`` are the only things the rest of kiln sees of a key, so a
KMS or HSM signer plugs in by implementing ``sign(data) -> signature``, ``key_id`` and
``public_key_pem()``. The local implementation signs with ECDSA over SHA-256 and
produces DER signatures: Sigstore's ``PKIX_ECDSA_P256_SHA_256`` key details, which
every Sigstore client verifies.

Keys on disk:
* ``kiln keygen`` writes ``PREFIX.key`` (PKCS#8, encrypted with the best available
  scheme under a passphrase) and ``PREFIX.pub`` (SubjectPublicKeyInfo PEM);
* an unencrypted PKCS#8 (or SEC1) PEM key, as
  ``openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`` writes it, is
  accepted too.

The key id is the lowercase hex SHA-256 of the DER SubjectPublicKeyInfo: it goes into
DSSE ``keyid`` and the bundle's ``publicKey.hint``. It only selects a key; trust always
comes from the key the verifier was given.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kiln.errors import InputError, Location

PASSWORD_ENV = "KILN_KEY_PASSWORD"  # noqa: S105 - the variable's name, not a password
KEY_SUFFIX = ".key"
PUB_SUFFIX = ".pub"
_MAX_KEY_FILE = 64 * 1024


@runtime_checkable
class Signer(Protocol):
    """Anything that signs bytes with one key: a local PEM key, a KMS, an HSM."""

    @property
    def key_id(self) -> str:
        """A stable, public identifier of the key (a hint for verifiers)."""
        ...

    def public_key_pem(self) -> bytes:
        """The public key as a PEM SubjectPublicKeyInfo."""
        ...

    def sign(self, data: bytes) -> bytes:
        """The signature over ``data``."""
        ...


@runtime_checkable
class Verifier(Protocol):
    """Checks signatures made by one key."""

    @property
    def key_id(self) -> str: ...

    def verify(self, data: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is a valid signature over ``data`` by this key."""
        ...


def key_id_of(public_key: ec.EllipticCurvePublicKey) -> str:
    """The hex SHA-256 of the DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _require_p256(key: object, where: str) -> None:
    if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        raise InputError(
            f"{where}: the key is a {type(key).__name__.lstrip('_')}, not an ECDSA key",
            hint="kiln signs with ECDSA P-256 keys: run `kiln keygen` or "
            "`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`",
        )
    if not isinstance(key.curve, ec.SECP256R1):
        raise InputError(
            f"{where}: the key is on curve {key.curve.name}, not P-256 (secp256r1)",
            hint="Sigstore verifiers expect PKIX_ECDSA_P256_SHA_256 keys",
        )


@dataclass(frozen=True)
class EcdsaVerifier:
    """Verifies ECDSA P-256 / SHA-256 DER signatures with one public key."""

    public_key: ec.EllipticCurvePublicKey

    def __post_init__(self) -> None:
        _require_p256(self.public_key, "public key")

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def public_key_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    @classmethod
    def from_pem(cls, pem: bytes, *, where: str) -> EcdsaVerifier:
        """Parse a PEM public key (SubjectPublicKeyInfo); ``where`` names it in errors."""
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise InputError(
                f"{where}: not a PEM public key ({exc})",
                hint="pass the PREFIX.pub file `kiln keygen` wrote, or "
                "`openssl pkey -in KEY -pubout`",
            ) from exc
        _require_p256(key, where)
        return cls(cast(ec.EllipticCurvePublicKey, key))


@dataclass(frozen=True)
class EcdsaSigner:
    """Signs with a local ECDSA P-256 private key (SHA-256, DER signatures)."""

    private_key: ec.EllipticCurvePrivateKey

    def __post_init__(self) -> None:
        _require_p256(self.private_key, "private key")

    @property
    def key_id(self) -> str:
        return key_id_of(self.private_key.public_key())

    def public_key_pem(self) -> bytes:
        return self.verifier().public_key_pem()

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))

    def verifier(self) -> EcdsaVerifier:
        return EcdsaVerifier(self.private_key.public_key())

    @classmethod
    def generate(cls) -> EcdsaSigner:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: bytes, *, password: bytes | None, where: str) -> EcdsaSigner:
        """Parse a PEM private key, encrypted (needs ``password``) or not.

        A password given for an unencrypted key is ignored: the variable may be set
        for other keys in the same environment.
        """
        try:
            try:
                key = serialization.load_pem_private_key(pem, password=password)
            except TypeError as exc:
                if password is None:
                    raise InputError(
                        f"{where}: the private key is encrypted and no passphrase was given",
                        hint=f"set {PASSWORD_ENV} or pass --password-file",
                    ) from exc
                key = serialization.load_pem_private_key(pem, password=None)
        except ValueError as exc:
            if b"ENCRYPTED" in pem:
                raise InputError(
                    f"{where}: cannot decrypt the private key: wrong passphrase?",
                    hint=f"the passphrase comes from {PASSWORD_ENV} or --password-file",
                ) from exc
            raise InputError(
                f"{where}: not a PEM private key ({exc})",
                hint="kiln reads PKCS#8 or SEC1 PEM keys (`kiln keygen` writes one)",
            ) from exc
        except UnsupportedAlgorithm as exc:
            raise InputError(f"{where}: unsupported key algorithm ({exc})") from exc
        _require_p256(key, where)
        return cls(cast(ec.EllipticCurvePrivateKey, key))


@dataclass(frozen=True)
class KeyPair:
    """PEM bytes of a freshly generated key pair."""

    private_pem: bytes  # PKCS#8, encrypted
    public_pem: bytes  # SubjectPublicKeyInfo
    key_id: str


def generate_key_pair(password: bytes) -> KeyPair:
    """A new ECDSA P-256 key pair; the private key encrypted under ``password``."""
    if not password:
        raise InputError(
            "refusing to write an unencrypted private key: the passphrase is empty",
            hint=f"set {PASSWORD_ENV} or pass --password-file",
        )
    signer = EcdsaSigner.generate()
    private_pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    return KeyPair(private_pem, signer.public_key_pem(), signer.key_id)


def _read_small(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE + 1)
    except FileNotFoundError as exc:
        raise InputError(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if len(data) > _MAX_KEY_FILE:
        raise InputError(f"{what} {path} is larger than {_MAX_KEY_FILE} bytes: not a key file")
    return data


def read_password(
    password_file: Path | None, *, environ: Mapping[str, str] | None = None
) -> bytes | None:
    """The passphrase: from ``password_file`` (first line) if given, else the environment."""
    if password_file is not None:
        text = _read_small(password_file, "password file")
        line = text.splitlines()[0] if text else b""
        return line or None
    env = os.environ if environ is None else environ
    value = env.get(PASSWORD_ENV)
    return value.encode() if value else None


def load_signer(path: Path, *, password: bytes | None) -> EcdsaSigner:
    """Read a private key file (``--key``)."""
    return EcdsaSigner.from_pem(
        _read_small(path, "private key"), password=password, where=str(path)
    )


def load_verifier(path: Path) -> EcdsaVerifier:
    """Read a public key file (``kiln verify --key``)."""
    data = _read_small(path, "public key")
    if b"PRIVATE KEY" in data:
        raise InputError(
            "this is a private key; verification takes the public key",
            location=Location(str(path)),
            hint="pass PREFIX.pub, or derive it with `openssl pkey -in KEY -pubout`",
        )
    return EcdsaVerifier.from_pem(data, where=str(path))


def write_key_pair(prefix: Path, password: bytes) -> tuple[Path, Path, KeyPair]:
    """Write ``PREFIX.key`` (mode 0600) and ``PREFIX.pub``; never overwrite either."""
    private_path = prefix.with_name(prefix.name + KEY_SUFFIX)
    public_path = prefix.with_name(prefix.name + PUB_SUFFIX)
    for existing in (private_path, public_path):
        if existing.exists():
            raise InputError(
                f"{existing} already exists; refusing to overwrite a key",
                hint="choose another --out PREFIX or move the old key away",
            )
    pair = generate_key_pair(password)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pair.private_pem)
    public_path.write_bytes(pair.public_pem)
    return private_path, public_path, pair
