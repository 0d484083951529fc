"""References and digests: the grammar, and a clear error for every malformed part."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from kiln.errors import InputError
from kiln.registry import Descriptor, Digest, Reference, is_loopback

HEX = hashlib.sha256(b"x").hexdigest()


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("127.0.0.1:5000/kiln/python:3.13", "127.0.0.1:5000", "kiln/python", "3.13", None),
        ("localhost/python", "localhost", "python", "latest", None),
        ("reg.example.test/a/b/c", "reg.example.test", "a/b/c", "latest", None),
        (f"[::1]:5000/x@sha256:{HEX}", "[::1]:5000", "x", None, f"sha256:{HEX}"),
        (f"localhost:1/x:t@sha256:{HEX}", "localhost:1", "x", "t", f"sha256:{HEX}"),
        (
            "localhost:5000/a.b_c__d-e--f:v1.2-dev",
            "localhost:5000",
            "a.b_c__d-e--f",
            "v1.2-dev",
            None,
        ),
    ],
)
def test_parse_valid_references(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)
    assert (str(ref.digest) if ref.digest else None) == digest
    assert Reference.parse(str(ref)) == ref


def test_identifier_prefers_digest() -> None:
    ref = Reference.parse(f"localhost/x:t@sha256:{HEX}")
    assert ref.identifier == f"sha256:{HEX}"
    assert ref.with_tag("u").identifier == "u"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("python:3", "has no '/'"),
        ("library/python", "does not start with a registry host"),
        ("localhost:5000", "has no '/'"),
        ("localhost:5000/", "has no repository"),
        ("localhost:5000/Python", "repository 'Python' is not valid"),
        ("localhost:5000/a//b", "is not valid"),
        ("localhost:5000/a:-bad", "tag '-bad' is not valid"),
        ("localhost:5000/a:" + "t" * 129, "is not valid"),
        ("localhost:99999/a", "invalid port '99999'"),
        ("[::1/a", "unclosed '['"),
        ("[fe80::zz]:5/a", "not an IPv6 address"),
        ("bad_host.test/a", "invalid host name"),
        ("localhost/a@sha256:abc", "has 3 hex digits; sha256 needs 64"),
        (f"localhost/a@md5:{HEX[:32]}", "kiln accepts sha256 and sha512"),
    ],
)
def test_malformed_references_are_refused_naming_the_part(text: str, expected: str) -> None:
    with pytest.raises(InputError) as caught:
        Reference.parse(text)
    assert expected in caught.value.diagnostics()


def test_overlong_name_is_refused() -> None:
    with pytest.raises(InputError, match="longer than 255"):
        Reference.parse("localhost/" + "/".join(["abcdefghij"] * 30) + ":t")


def test_digest_parse_and_of() -> None:
    assert Digest.parse(f"sha256:{HEX}") == Digest.of(b"x")
    sha512 = Digest.of(b"x", "sha512")
    assert len(sha512.encoded) == 128
    assert Digest.parse(str(sha512)) == sha512
    assert Digest.of(b"x").fallback_tag == f"sha256-{HEX}"
    assert sha512.fallback_tag == f"sha512-{sha512.encoded[:64]}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sha256", "no ':'"),
        (f"sha256:{HEX.upper()}", "other than lowercase hex"),
        (f"sha256:{HEX}0", "65 hex digits"),
        (f"sha512:{HEX}", "sha512 needs 128"),
        (f"SHA256:{HEX}", "algorithm 'SHA256'"),
    ],
)
def test_malformed_digests(text: str, expected: str) -> None:
    with pytest.raises(InputError, match=expected):
        Digest.parse(text)


def test_descriptor_refuses_a_bad_digest_from_remote_json() -> None:
    with pytest.raises(ValidationError, match="sha256 needs 64"):
        Descriptor.model_validate({"mediaType": "x", "digest": "sha256:00", "size": 1})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Descriptor.model_validate({"mediaType": "x", "digest": f"sha256:{HEX}", "size": -1})


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.8.9.10", True),
        ("[::1]:5000", True),
        ("10.0.0.1:5000", False),
        ("reg.example.test", False),
        ("localhost.example.test", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
