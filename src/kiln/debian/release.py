"""Verify a suite's signed ``InRelease`` (or ``Release`` + ``Release.gpg``) and parse it.

Implements the trust root of Debian's archive (https://wiki.debian.org/DebianRepository/Format
and https://wiki.debian.org/SecureApt): the Release file is signed by the archive keys,
and lists the size and SHA256 of every index it covers. Signatures are checked with
``gpgv`` against the distro's keyring (debian-archive-keyring); only the text inside the
clearsigned part is used, after the armor has been checked to contain exactly one signed
message and nothing outside it (RFC 4880 §7, as apt's SplitClearSignedFile does).

Everything here is pure apart from running ``gpgv``: bytes in, verified values out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import MappingProxyType

from debian.deb822 import Release as _Deb822Release

from kiln.debian.model import ReleaseIdentity
from kiln.errors import EnvironmentProblem, RemoteContentError, SignatureError

_BEGIN_MESSAGE = b"-----BEGIN PGP SIGNED MESSAGE-----"
_BEGIN_SIGNATURE = b"-----BEGIN PGP SIGNATURE-----"
_END_SIGNATURE = b"-----END PGP SIGNATURE-----"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# OpenPGP hash algorithm ids apt refuses as too weak: MD5, SHA1, RIPEMD160.
_WEAK_HASHES = frozenset({"1", "2", "3"})
_GPGV_TIMEOUT = 60.0


@dataclass(frozen=True)
class ReleaseEntry:
    """One index listed in a Release file's ``SHA256`` field."""

    path: str  # relative to dists/<suite>/, e.g. main/binary-amd64/Packages.xz
    size: int
    sha256: str


@dataclass(frozen=True)
class Release:
    """The fields of a verified Release file kiln relies on."""

    suite: str
    codename: str
    date: str  # verbatim, as recorded in locks
    date_parsed: datetime
    valid_until: datetime | None
    acquire_by_hash: bool
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    files: Mapping[str, ReleaseEntry] = field(repr=False)

    def entry(self, path: str, *, source: str) -> ReleaseEntry:
        """The checksum entry for ``path``, or ``RemoteContentError`` if not listed."""
        try:
            return self.files[path]
        except KeyError:
            raise RemoteContentError(
                f"{source}: the signed Release does not list {path}",
                hint="the mirror does not publish this index; check the suite and architecture",
            ) from None


@dataclass(frozen=True)
class SignedContent:
    """Text whose signature ``gpgv`` accepted, with the fingerprints that signed it."""

    text: bytes
    signers: tuple[str, ...]


@dataclass(frozen=True)
class VerifiedRelease:
    """A suite's Release after signature, suite and freshness checks."""

    release: Release
    identity: ReleaseIdentity
    signers: tuple[str, ...]

    def to_json(self) -> bytes:
        """Serialise (for kiln's cache of verification results)."""
        r = self.release
        return json.dumps(
            {
                "release": {
                    "suite": r.suite,
                    "codename": r.codename,
                    "date": r.date,
                    "date_parsed": r.date_parsed.isoformat(),
                    "valid_until": r.valid_until.isoformat() if r.valid_until else None,
                    "acquire_by_hash": r.acquire_by_hash,
                    "architectures": list(r.architectures),
                    "components": list(r.components),
                    "files": [[e.path, e.size, e.sha256] for e in r.files.values()],
                },
                "identity": dataclasses.asdict(self.identity),
                "signers": list(self.signers),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> VerifiedRelease:
        """Read what ``to_json`` wrote; ``ValueError`` if it is not that."""
        try:
            doc = json.loads(data)
            r = doc["release"]
            release = Release(
                suite=r["suite"],
                codename=r["codename"],
                date=r["date"],
                date_parsed=datetime.fromisoformat(r["date_parsed"]),
                valid_until=datetime.fromisoformat(r["valid_until"]) if r["valid_until"] else None,
                acquire_by_hash=bool(r["acquire_by_hash"]),
                architectures=tuple(r["architectures"]),
                components=tuple(r["components"]),
                files=MappingProxyType({p: ReleaseEntry(p, int(n), h) for p, n, h in r["files"]}),
            )
            return cls(release, ReleaseIdentity(**doc["identity"]), tuple(doc["signers"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a verified Release record: {exc}") from exc


def check_clearsigned_structure(data: bytes, *, source: str) -> None:
    """Refuse anything but exactly one clearsigned message with nothing around it.

    gpgv happily verifies a signed block surrounded by unsigned text; whoever parses the
    file afterwards might read that text. apt refuses such files and so do we.
    """
    lines = data.split(b"\n")
    if not data.startswith(_BEGIN_MESSAGE):
        if _BEGIN_MESSAGE in data:
            raise SignatureError(
                f"{source}: unsigned text before the clearsigned message",
                hint="the file was altered; only a file that is entirely signed is accepted",
            )
        raise SignatureError(
            f"{source}: not signed (no OpenPGP clearsigned message)",
            hint="kiln refuses unsigned indexes; check the mirror URL",
        )
    state = "header"
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip(b"\r")
        if state == "header":
            if not line.strip():
                state = "text"
            elif not re.match(rb"^[A-Za-z-]+: ", line):
                raise SignatureError(f"{source}:{number}: malformed clearsign armor header")
        elif state == "text":
            if line == _BEGIN_SIGNATURE:
                state = "signature"
            elif line.startswith(b"-") and not line.startswith(b"- "):
                raise SignatureError(
                    f"{source}:{number}: unexpected armor line {line[:40]!r} in signed text",
                    hint="a second signed message or a forged armor line was inserted",
                )
        elif state == "signature":
            if line == _END_SIGNATURE:
                state = "trailer"
            elif line.startswith(b"-----"):
                raise SignatureError(f"{source}:{number}: malformed signature block")
        elif line.strip():
            raise SignatureError(
                f"{source}:{number}: unsigned text after the signature",
                hint="the file was altered; only a file that is entirely signed is accepted",
            )
    if state != "trailer":
        raise SignatureError(f"{source}: truncated clearsigned message (no complete signature)")


def verify_clearsigned(data: bytes, *, keyring: Path, source: str) -> SignedContent:
    """Verify an ``InRelease`` file; return only the signed text."""
    check_clearsigned_structure(data, source=source)
    with tempfile.TemporaryDirectory(prefix="kiln-gpgv-") as tmp:
        signed = Path(tmp) / "InRelease"
        signed.write_bytes(data)
        output = Path(tmp) / "content"
        signers = _run_gpgv(
            ["--output", str(output), str(signed)], keyring=keyring, home=tmp, source=source
        )
        try:
            text = output.read_bytes()
        except FileNotFoundError:
            raise SignatureError(f"{source}: gpgv produced no signed content") from None
    return SignedContent(text, signers)


def verify_detached(
    content: bytes, signature: bytes, *, keyring: Path, source: str
) -> SignedContent:
    """Verify a ``Release`` file against its detached ``Release.gpg``."""
    if not signature.strip():
        raise SignatureError(f"{source}: not signed (empty detached signature)")
    with tempfile.TemporaryDirectory(prefix="kiln-gpgv-") as tmp:
        data = Path(tmp) / "Release"
        data.write_bytes(content)
        sig = Path(tmp) / "Release.gpg"
        sig.write_bytes(signature)
        signers = _run_gpgv([str(sig), str(data)], keyring=keyring, home=tmp, source=source)
    return SignedContent(content, signers)


def _run_gpgv(args: list[str], *, keyring: Path, home: str, source: str) -> tuple[str, ...]:
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise EnvironmentProblem(
            "gpgv is not installed; kiln needs it to verify Debian's signatures",
            hint="apt-get install gpgv",
        )
    if not keyring.is_file():
        raise EnvironmentProblem(
            f"keyring {keyring} does not exist",
            hint="apt-get install debian-archive-keyring, or point the distro at its keyring",
        )
    try:
        proc = subprocess.run(
            [
                gpgv,
                "--homedir",
                home,
                "--status-fd",
                "1",
                "--keyring",
                str(keyring.resolve()),
                *args,
            ],
            capture_output=True,
            timeout=_GPGV_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"could not run gpgv: {exc}") from exc
    return interpret_gpgv_status(
        proc.stdout.decode("utf-8", "replace"), keyring=keyring, source=source
    )


def interpret_gpgv_status(status: str, *, keyring: Path, source: str) -> tuple[str, ...]:
    """Decide from gpgv's ``--status-fd`` lines (gnupg doc/DETAILS) whether to trust.

    Accept when at least one signature is good (GOODSIG + VALIDSIG, strong hash, key
    neither expired nor revoked) and none is bad; signatures by keys missing from the
    keyring are ignored when another good one exists (Debian signs with several keys).
    Returns the fingerprints of the good signers.
    """
    good: list[str] = []
    bad: list[str] = []
    unknown: list[str] = []
    expired: list[str] = []
    revoked: list[str] = []
    weak: list[str] = []
    no_data = False
    current: dict[str, str] = {}

    def close() -> None:
        if not current:
            return
        if "GOODSIG" in current and "VALIDSIG" in current:
            fingerprint, hash_algo = current["VALIDSIG"].split("|")
            if hash_algo in _WEAK_HASHES:
                weak.append(fingerprint)
            else:
                good.append(fingerprint)
        current.clear()

    for line in status.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "[GNUPG:]":
            continue
        keyword, args = words[1], words[2:]
        match keyword:
            case "NEWSIG":
                close()
                current["NEWSIG"] = ""
            case "GOODSIG":
                current["GOODSIG"] = args[0] if args else ""
            case "VALIDSIG":
                if len(args) >= 8:
                    current["VALIDSIG"] = f"{args[-1] if len(args) >= 10 else args[0]}|{args[7]}"
            case "BADSIG":
                bad.append(args[0] if args else "?")
                current.clear()
            case "ERRSIG" | "NO_PUBKEY":
                if args and args[0] not in unknown:
                    unknown.append(args[0])
                current.clear()
            case "EXPKEYSIG":
                expired.append(args[0] if args else "?")
                current.clear()
            case "REVKEYSIG":
                revoked.append(args[0] if args else "?")
                current.clear()
            case "NODATA":
                no_data = True
            case _:
                pass
    close()
    if bad:
        raise SignatureError(
            f"{source}: BAD signature (key {', '.join(bad)}): the signed content was altered",
            hint="this is corruption or an attack; do not use this mirror until it is explained",
        )
    if good:
        return tuple(good)
    if revoked:
        raise SignatureError(f"{source}: signed by a revoked key ({', '.join(revoked)})")
    if expired:
        raise SignatureError(
            f"{source}: signed only by expired keys ({', '.join(expired)})",
            hint="update debian-archive-keyring",
        )
    if weak:
        raise SignatureError(f"{source}: signed only with a weak digest (MD5/SHA1/RIPEMD160)")
    if unknown:
        raise SignatureError(
            f"{source}: signed by key {', '.join(unknown)}, which is not in the keyring {keyring}",
            hint=(
                "the index is signed by a key kiln does not trust; check the mirror, "
                "or update debian-archive-keyring if Debian rotated its keys"
            ),
        )
    if no_data:
        raise SignatureError(f"{source}: not signed (no OpenPGP signature data)")
    raise SignatureError(f"{source}: no valid signature found")


def parse_release(text: bytes, *, source: str) -> Release:
    """Parse the (already verified) text of a Release file."""
    try:
        fields = _Deb822Release(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RemoteContentError(f"{source}: malformed Release file: {exc}") from exc
    if "Date" not in fields:
        raise RemoteContentError(f"{source}: the Release file has no Date field")
    date_text = str(fields["Date"]).strip()
    date = _parse_date(date_text, field_name="Date", source=source)
    valid_until = None
    if "Valid-Until" in fields:
        valid_until = _parse_date(
            str(fields["Valid-Until"]).strip(), field_name="Valid-Until", source=source
        )
    if "SHA256" not in fields:
        raise RemoteContentError(
            f"{source}: the Release file has no SHA256 checksums",
            hint="kiln (like apt) refuses repositories without strong checksums",
        )
    files: dict[str, ReleaseEntry] = {}
    for item in fields["SHA256"]:
        path, size, digest = item.get("name", ""), item.get("size", ""), item.get("sha256", "")
        if not path or not size.isdigit() or not _SHA256_RE.match(digest):
            raise RemoteContentError(
                f"{source}: malformed SHA256 entry in Release: {path or '?'} {size} {digest}"
            )
        files[path] = ReleaseEntry(path, int(size), digest)
    suite = str(fields.get("Suite", "")).strip()
    codename = str(fields.get("Codename", "")).strip()
    if not suite and not codename:
        raise RemoteContentError(f"{source}: the Release file has neither Suite nor Codename")
    return Release(
        suite=suite,
        codename=codename,
        date=date_text,
        date_parsed=date,
        valid_until=valid_until,
        acquire_by_hash=str(fields.get("Acquire-By-Hash", "no")).strip().lower() == "yes",
        architectures=tuple(str(fields.get("Architectures", "")).split()),
        components=tuple(str(fields.get("Components", "")).split()),
        files=MappingProxyType(files),
    )


def _parse_date(text: str, *, field_name: str, source: str) -> datetime:
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError) as exc:  # year 2200000000 overflows
        raise RemoteContentError(
            f"{source}: {field_name} {text!r} is not an RFC 2822 date"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def check_release(release: Release, *, suite: str, now: datetime, source: str) -> None:
    """Refuse a Release for another suite (substitution) or past its ``Valid-Until``."""
    if suite not in (release.codename, release.suite):
        raise RemoteContentError(
            f"{source}: asked for suite {suite!r} but the signed Release is for "
            f"{release.codename or release.suite!r}",
            hint="a mirror serving another suite's index is an attack or a misconfiguration",
        )
    if release.valid_until is not None and now > release.valid_until:
        raise RemoteContentError(
            f"{source}: the signed Release expired at {release.valid_until.isoformat()} "
            f"(Valid-Until), it is now {now.isoformat(timespec='seconds')}",
            hint="the mirror is stale or replaying old metadata; try another mirror",
        )


def verify_release(
    *,
    suite: str,
    base_url: str,
    keyring: Path,
    now: datetime,
    inrelease: bytes | None = None,
    release: bytes | None = None,
    release_gpg: bytes | None = None,
    source: str,
) -> VerifiedRelease:
    """Verify a suite's signed Release from ``InRelease`` or ``Release`` + ``Release.gpg``."""
    if inrelease is not None:
        signed = verify_clearsigned(inrelease, keyring=keyring, source=source)
        digest = hashlib.sha256(inrelease).hexdigest()
    elif release is not None:
        if release_gpg is None:
            raise SignatureError(
                f"{source}: not signed (no InRelease and no Release.gpg)",
                hint="kiln refuses unsigned indexes; check the mirror URL",
            )
        signed = verify_detached(release, release_gpg, keyring=keyring, source=source)
        digest = hashlib.sha256(release).hexdigest()
    else:
        raise RemoteContentError(f"{source}: neither InRelease nor Release was found")
    parsed = parse_release(signed.text, source=source)
    check_release(parsed, suite=suite, now=now, source=source)
    identity = ReleaseIdentity(
        suite=suite,
        codename=parsed.codename or parsed.suite,
        date=parsed.date,
        inrelease_sha256=digest,
        base_url=base_url,
    )
    return VerifiedRelease(parsed, identity, signed.signers)
