from __future__ import annotations

import base64
import hashlib

import pytest

from kiln.errors import IntegrityError, RemoteContentError
from kiln.upstream import canonical_sri, sri_sha512, verify_integrity


def test_sri_of_bytes_matches_npm_format() -> None:
    digest = base64.b64encode(hashlib.sha512(b"kiln").digest()).decode()
    assert sri_sha512(b"kiln") == f"sha512-{digest}"
    verify_integrity(b"kiln", sri_sha512(b"kiln"), source="t")


def test_mismatch_is_an_integrity_error_naming_both_hashes() -> None:
    with pytest.raises(IntegrityError, match=r"t: sha512 sha512-.* does not match"):
        verify_integrity(b"evil", sri_sha512(b"kiln"), source="t")


def test_several_values_and_other_algorithms() -> None:
    sri = f"sha1-AAAA {sri_sha512(b'x')}?opt"
    assert canonical_sri(sri, source="t") == sri_sha512(b"x")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "carries no sha512"),
        ("sha512-!!!", "not base64"),
        ("sha512-AAAA", "not a sha512 digest"),
        (f"{sri_sha512(b'a')} {sri_sha512(b'b')}", "different sha512"),
        ("", "carries no sha512"),
    ],
)
def test_bad_integrity_values_are_refused(value: str, message: str) -> None:
    with pytest.raises(RemoteContentError, match=message):
        canonical_sri(value, source="t")
