"""The bundle signer a command signs with: a private key file, or keyless (Sigstore).

``kiln sign``, ``kiln attest``, ``kiln publish``, ``kiln vuln`` and ``kiln source`` (and
the factory) choose the signer the same way: exactly one of a key (decrypted with the
passphrase from ``KILN_KEY_PASSWORD`` or a password file) or the CI's ambient OIDC
identity.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kiln.errors import InputError

if TYPE_CHECKING:
    from kiln.attest import BundleSigner

# kiln.attest (cryptography, sigstore) loads only when a signer is made.
# ruff: noqa: PLC0415


def bundle_signer(key: Path | None, keyless: bool, password_file: Path | None) -> BundleSigner:
    """The signer for ``--key KEY`` (with ``--password-file``) or ``--keyless``.

    Raises ``InputError`` unless exactly one of the two was given.
    """
    from kiln.attest import KeyBundleSigner, load_signer, read_password

    if keyless == (key is not None):
        raise InputError("say how to sign: either --key KEY or --keyless")
    if key is not None:
        return KeyBundleSigner(load_signer(key, password=read_password(password_file)))
    from kiln.attest.keyless import KeylessBundleSigner

    return KeylessBundleSigner.from_ambient()
