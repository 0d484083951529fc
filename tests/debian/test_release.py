"""Release verification and parsing: armor structure, gpgv status decisions, fields."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fixtures.debrepo import GpgKey, clearsign, detach_sign, release_text
from kiln.debian.release import (
    check_clearsigned_structure,
    check_release,
    interpret_gpgv_status,
    parse_release,
    verify_clearsigned,
    verify_detached,
    verify_release,
)
from kiln.errors import EnvironmentProblem, RemoteContentError, SignatureError

DATE = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
KEYRING = Path("/k.gpg")
FILES = {"main/binary-amd64/Packages.xz": b"xz", "main/binary-amd64/Packages": b"plain"}


def _release(
    *, valid_until: datetime | None = DATE + timedelta(days=7), by_hash: bool = True
) -> bytes:
    return release_text(
        suite="stable",
        codename="trixie",
        date=DATE,
        valid_until=valid_until,
        archs=("amd64",),
        by_hash=by_hash,
        files=FILES,
    )


def test_parse_release_fields() -> None:
    release = parse_release(_release(), source="R")
    assert (release.suite, release.codename) == ("stable", "trixie")
    assert release.date == "Sun, 01 Mar 2026 08:30:00 UTC"
    assert release.date_parsed == DATE
    assert release.valid_until == DATE + timedelta(days=7)
    assert release.acquire_by_hash is True
    assert release.architectures == ("amd64",)
    assert release.components == ("main",)
    entry = release.entry("main/binary-amd64/Packages", source="R")
    assert (entry.size, entry.sha256) == (5, hashlib.sha256(b"plain").hexdigest())
    with pytest.raises(RemoteContentError, match=r"does not list main/binary-arm64/Packages\.xz"):
        release.entry("main/binary-arm64/Packages.xz", source="R")


def test_parse_release_without_valid_until_or_by_hash() -> None:
    release = parse_release(_release(valid_until=None, by_hash=False), source="R")
    assert release.valid_until is None
    assert release.acquire_by_hash is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"Suite: stable\nCodename: trixie\nSHA256:\n", "no Date field"),
        (b"Suite: s\nDate: yesterday\nSHA256:\n", "Date 'yesterday' is not an RFC 2822 date"),
        (b"Suite: s\nDate: Sun, 01 Mar 2026 08:30:00 UTC\nMD5Sum:\n", "no SHA256 checksums"),
        (
            b"Suite: s\nDate: Sun, 01 Mar 2026 08:30:00 UTC\nSHA256:\n abc 12 main/x\n",
            "malformed SHA256 entry",
        ),
        (b"Date: Sun, 01 Mar 2026 08:30:00 UTC\nSHA256:\n", "neither Suite nor Codename"),
        (b"\xff\xfe", "malformed Release"),
    ],
)
def test_parse_release_refuses_malformed(text: bytes, message: str) -> None:
    with pytest.raises(RemoteContentError, match=message):
        parse_release(text, source="dists/x/InRelease")


def test_check_release_suite_and_expiry() -> None:
    release = parse_release(_release(), source="R")
    check_release(release, suite="trixie", now=DATE, source="R")
    check_release(release, suite="stable", now=DATE, source="R")
    with pytest.raises(RemoteContentError, match="asked for suite 'bookworm'"):
        check_release(release, suite="bookworm", now=DATE, source="R")
    with pytest.raises(RemoteContentError, match="expired at 2026-03-08T08:30:00"):
        check_release(release, suite="trixie", now=DATE + timedelta(days=8), source="R")


SIGNED = b"""-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Suite: stable
- -dash escaped
-----BEGIN PGP SIGNATURE-----

iHUEARYIAB0WIQ
-----END PGP SIGNATURE-----
"""


def test_clearsign_structure_accepts_a_single_message() -> None:
    check_clearsigned_structure(SIGNED, source="S")
    check_clearsigned_structure(SIGNED + b"\n\n", source="S")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"Suite: stable\n", "not signed"),
        (b"junk\n" + SIGNED, "unsigned text before"),
        (SIGNED + b"Suite: evil\n", "unsigned text after"),
        (SIGNED + SIGNED, "unsigned text after"),
        (SIGNED.replace(b"- -dash", b"-----BEGIN PGP SIGNED MESSAGE-----"), "unexpected armor"),
        (SIGNED.replace(b"Hash: SHA256", b"Hash SHA256"), "malformed clearsign armor header"),
        (SIGNED.split(b"-----END")[0], "truncated"),
        (
            SIGNED.replace(b"iHUEARYIAB0WIQ", b"-----BEGIN PGP SIGNATURE-----"),
            "malformed signature",
        ),
    ],
)
def test_clearsign_structure_refuses(data: bytes, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        check_clearsigned_structure(data, source="S")


GOOD = (
    "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 6ED0E7B82643E131 Debian\n"
    "[GNUPG:] VALIDSIG 4CB5 2026-11-21 1795252580 0 4 0 1 8 01 B8B8\n"
)


@pytest.mark.parametrize(
    ("status", "result"),
    [
        (GOOD, ("B8B8",)),
        # Debian signs with several keys: an unknown one next to a good one is fine.
        ("[GNUPG:] NEWSIG\n[GNUPG:] ERRSIG AAAA 1 8 01 0 9\n[GNUPG:] NO_PUBKEY AAAA\n" + GOOD,
         ("B8B8",)),
    ],
)  # fmt: skip
def test_gpgv_status_accepts(status: str, result: tuple[str, ...]) -> None:
    assert interpret_gpgv_status(status, keyring=KEYRING, source="S") == result


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (GOOD + "[GNUPG:] NEWSIG\n[GNUPG:] BADSIG AAAA x\n", "BAD signature"),
        ("[GNUPG:] NEWSIG\n[GNUPG:] ERRSIG AAAA 1 8 01 0 9\n[GNUPG:] NO_PUBKEY AAAA\n",
         "key AAAA, which is not in the keyring /k.gpg"),
        ("[GNUPG:] NEWSIG\n[GNUPG:] EXPKEYSIG AAAA x\n"
         "[GNUPG:] VALIDSIG 4CB5 2026-11-21 1795252580 0 4 0 1 8 01 B8B8\n", "expired keys"),
        ("[GNUPG:] NEWSIG\n[GNUPG:] REVKEYSIG AAAA x\n", "revoked key"),
        (GOOD.replace(" 8 01 ", " 2 01 "), "weak digest"),
        ("[GNUPG:] NODATA 1\n", "not signed"),
        ("", "no valid signature"),
    ],
)  # fmt: skip
def test_gpgv_status_refuses(status: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        interpret_gpgv_status(status, keyring=KEYRING, source="S")


def test_verify_with_real_gpgv(debrepo_key: GpgKey, tmp_path: Path) -> None:
    text = _release()
    signed = clearsign(debrepo_key, text, workdir=tmp_path)
    content = verify_clearsigned(signed, keyring=debrepo_key.keyring, source="InRelease")
    assert content.text == text
    assert content.signers == (debrepo_key.fingerprint,)
    detached = detach_sign(debrepo_key, text, workdir=tmp_path)
    assert verify_detached(text, detached, keyring=debrepo_key.keyring, source="R").text == text
    with pytest.raises(SignatureError, match="BAD signature"):
        verify_detached(text + b"X: y\n", detached, keyring=debrepo_key.keyring, source="R")
    with pytest.raises(SignatureError, match="empty detached signature"):
        verify_detached(text, b"", keyring=debrepo_key.keyring, source="R")
    with pytest.raises(SignatureError, match="not signed"):
        verify_detached(text, b"garbage", keyring=debrepo_key.keyring, source="R")


def test_verify_release_identity(debrepo_key: GpgKey, tmp_path: Path) -> None:
    signed = clearsign(debrepo_key, _release(), workdir=tmp_path)
    verified = verify_release(
        suite="trixie",
        base_url="http://mirror.invalid/debian",
        keyring=debrepo_key.keyring,
        now=DATE,
        inrelease=signed,
        source="InRelease",
    )
    assert verified.identity.codename == "trixie"
    assert verified.identity.base_url == "http://mirror.invalid/debian"
    assert verified.signers == (debrepo_key.fingerprint,)
    with pytest.raises(SignatureError, match=r"no InRelease and no Release\.gpg"):
        verify_release(
            suite="trixie", base_url="u", keyring=debrepo_key.keyring, now=DATE,
            release=_release(), source="Release",
        )  # fmt: skip


def test_missing_keyring_is_an_environment_problem(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="does not exist"):
        verify_clearsigned(SIGNED, keyring=tmp_path / "none.gpg", source="S")


def test_verified_release_record_round_trip(debrepo_key: GpgKey, tmp_path: Path) -> None:
    from kiln.debian.release import VerifiedRelease

    signed = clearsign(debrepo_key, _release(), workdir=tmp_path)
    verified = verify_release(
        suite="trixie", base_url="u", keyring=debrepo_key.keyring, now=DATE,
        inrelease=signed, source="InRelease",
    )  # fmt: skip
    again = VerifiedRelease.from_json(verified.to_json())
    assert again.identity == verified.identity
    assert again.signers == verified.signers
    assert again.release.valid_until == verified.release.valid_until
    assert dict(again.release.files) == dict(verified.release.files)
    for garbage in (b"", b"[]", b'{"release": {}}', verified.to_json()[:-5]):
        with pytest.raises(ValueError, match="not a verified Release record"):
            VerifiedRelease.from_json(garbage)
