"""Subresource Integrity values as the npm registry publishes them (``dist.integrity``).

https://www.w3.org/TR/SRI/#the-integrity-attribute: ``<algorithm>-<base64 digest>``,
several separated by whitespace. kiln accepts only sha512 (what npm has published
since npm 5) and checks every sha512 value given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from kiln.errors import IntegrityError, RemoteContentError


def sha512_of(integrity: str, *, source: str) -> bytes:
    """The sha512 digest an SRI string promises; ``RemoteContentError`` if it has none."""
    digests = []
    for token in integrity.split():
        algorithm, _, value = token.partition("-")
        if algorithm != "sha512":
            continue
        value = value.split("?", 1)[0]  # SRI options are ignored
        try:
            digest = base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise RemoteContentError(f"{source}: integrity {token!r} is not base64") from exc
        if len(digest) != hashlib.sha512().digest_size:
            raise RemoteContentError(f"{source}: integrity {token!r} is not a sha512 digest")
        digests.append(digest)
    if not digests:
        raise RemoteContentError(
            f"{source}: integrity {integrity!r} carries no sha512 digest",
            hint="kiln locks npm tarballs by sha512 only (sha1 shasums are not accepted)",
        )
    if len(set(digests)) != 1:
        raise RemoteContentError(f"{source}: integrity lists different sha512 digests")
    return digests[0]


def canonical_sri(integrity: str, *, source: str) -> str:
    """The single ``sha512-<base64>`` value an SRI string promises (for the lock)."""
    return "sha512-" + base64.b64encode(sha512_of(integrity, source=source)).decode()


def sri_sha512(data: bytes) -> str:
    """The canonical SRI string of ``data`` (``sha512-<base64>``)."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def verify_integrity(data: bytes, integrity: str, *, source: str) -> None:
    """Raise ``IntegrityError`` unless ``data`` hashes to the promised sha512."""
    wanted = sha512_of(integrity, source=source)
    actual = hashlib.sha512(data).digest()
    if not hmac.compare_digest(actual, wanted):
        raise IntegrityError(
            f"{source}: sha512 {sri_sha512(data)} does not match the locked integrity {integrity}",
            hint="this is corruption or an attack; kiln does not retry it",
        )
