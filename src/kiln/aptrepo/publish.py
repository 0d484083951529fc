"""kiln's own apt repository: ``Packages``, ``Sources``, ``Release`` and signed ``InRelease``.

Writes the archive layout apt and kiln's repository client read
(https://wiki.debian.org/DebianRepository/Format): ``.deb`` and source files under
``pool/main/<prefix>/<source>/``, ``dists/<suite>/main/binary-<arch>/Packages{,.xz}``,
``dists/<suite>/main/source/Sources{,.xz}``, a ``Release`` listing every index with its
size and SHA256, clearsigned into ``InRelease`` and detached-signed into
``Release.gpg`` with gpg. The indexes are always regenerated from the whole pool, so
publishing is idempotent. Any static HTTP server can serve the directory.

The signing key is kiln's: kept in a GNUPGHOME (``$KILN_CACHE/gnupg`` by default,
created with an ed25519 key on first use); its public key is exported next to the
repository (``kiln-archive-keyring.gpg``) for ``Signed-By`` / kiln's ``keyring``.
"""

from __future__ import annotations

import hashlib
import lzma
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path

from debian.deb822 import Dsc, Packages, Release, Sources

from kiln.debian.deb import read_deb
from kiln.errors import EnvironmentProblem, InputError
from kiln.fileio import atomic_write

KEYRING_NAME = "kiln-archive-keyring.gpg"
DEFAULT_UID = "kiln repository signing key <kiln@localhost>"
_GPG_TIMEOUT = 120.0


@dataclass(frozen=True)
class SigningKey:
    """A GNUPGHOME holding kiln's repository key, and that key's fingerprint."""

    home: Path
    fingerprint: str


@dataclass(frozen=True)
class PublishedRepository:
    directory: Path
    suite: str
    release_sha256: str
    keyring: Path
    fingerprint: str
    packages: tuple[str, ...]  # name_version_arch of every .deb in the pool
    sources: tuple[str, ...]  # name_version of every source package in the pool


def _gpg(home: Path, *args: str, input_data: bytes | None = None) -> bytes:
    gpg = shutil.which("gpg")
    if gpg is None:
        raise EnvironmentProblem("gpg is not installed; kiln signs its repository with it",
                                 hint="apt-get install gpg")  # fmt: skip
    try:
        proc = subprocess.run(
            [gpg, "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback",
             "--passphrase", "", *args],
            input=input_data, capture_output=True, timeout=_GPG_TIMEOUT, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"could not run gpg: {exc}") from exc
    if proc.returncode != 0:
        raise EnvironmentProblem(
            f"gpg {args[0]} failed: {proc.stderr.decode('utf-8', 'replace').strip()[-500:]}"
        )
    return proc.stdout


def ensure_signing_key(home: Path, *, uid: str = DEFAULT_UID) -> SigningKey:
    """kiln's signing key in ``home``; generated (ed25519, no expiry) if there is none."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.chmod(0o700)
    fingerprint = _first_secret_key(home)
    if fingerprint is None:
        _gpg(home, "--quick-gen-key", uid, "ed25519", "sign", "never")
        fingerprint = _first_secret_key(home)
    if fingerprint is None:
        raise EnvironmentProblem(f"gpg created no signing key in {home}")
    return SigningKey(home, fingerprint)


def _first_secret_key(home: Path) -> str | None:
    listing = _gpg(home, "--with-colons", "--list-secret-keys").decode()
    for line in listing.splitlines():
        if line.startswith("fpr:"):
            return line.split(":")[9]
    return None


def pool_path(source: str, file_name: str) -> str:
    prefix = source[:4] if source.startswith("lib") else source[0]
    return f"pool/main/{prefix}/{source}/{file_name}"


def add_to_pool(directory: Path, files: Sequence[Path]) -> list[Path]:
    """Copy .deb files and source packages (.dsc with its files) into the pool."""
    added = []
    for path in files:
        if path.suffix == ".deb":
            control = read_deb(path, name=path.name, read_content=False).control
            source = str(control.stanza().get("Source", control.package)).split(" ", 1)[0]
            targets = [(path, pool_path(source, path.name))]
        elif path.suffix == ".dsc":
            dsc = Dsc(path.read_text(encoding="utf-8"))
            source = str(dsc["Source"])
            targets = [(path, pool_path(source, path.name))]
            for entry in dsc.get("Checksums-Sha256", []):
                part = path.parent / entry["name"]
                if not part.is_file():
                    raise InputError(f"{path}: lists {entry['name']}, which is not next to it")
                if hashlib.sha256(part.read_bytes()).hexdigest() != entry["sha256"]:
                    raise InputError(f"{path}: {entry['name']} does not match its sha256")
                targets.append((part, pool_path(source, entry["name"])))
        else:
            raise InputError(f"{path}: only .deb and .dsc files can be published")
        for src, relative in targets:
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            added.append(target)
    return added


def publish(
    directory: Path,
    files: Sequence[Path] = (),
    *,
    key: SigningKey,
    date: datetime,
    suite: str = "kiln",
    archs: Sequence[str] = ("amd64", "arm64"),
    origin: str = "kiln",
) -> PublishedRepository:
    """Add ``files`` to the pool, regenerate every index and sign the Release."""
    if date.tzinfo is None:
        raise ValueError("publish needs a timezone-aware date")
    add_to_pool(directory, files)
    debs = sorted((directory / "pool").rglob("*.deb")) if (directory / "pool").is_dir() else []
    dscs = sorted((directory / "pool").rglob("*.dsc")) if (directory / "pool").is_dir() else []
    stanzas: dict[str, list[str]] = {arch: [] for arch in archs}
    names = []
    for deb in debs:
        stanza, arch = _packages_stanza(deb, directory)
        names.append(deb.stem)
        for target in archs if arch == "all" else [arch]:
            if target in stanzas:
                stanzas[target].append(stanza)
    indexes: dict[str, bytes] = {}
    for arch in archs:
        text = "\n".join(stanzas[arch]).encode()
        indexes[f"main/binary-{arch}/Packages"] = text
        indexes[f"main/binary-{arch}/Packages.xz"] = lzma.compress(text, format=lzma.FORMAT_XZ)
    source_text = "\n".join(_sources_stanza(dsc, directory) for dsc in dscs).encode()
    indexes["main/source/Sources"] = source_text
    indexes["main/source/Sources.xz"] = lzma.compress(source_text, format=lzma.FORMAT_XZ)
    dists = directory / "dists" / suite
    for relative, content in indexes.items():
        atomic_write(dists / relative, content)
    release = _release(indexes, suite=suite, archs=archs, date=date, origin=origin)
    signed = _gpg(key.home, "--local-user", key.fingerprint, "--digest-algo", "SHA512",
                  "--clearsign", input_data=release)  # fmt: skip
    detached = _gpg(key.home, "--local-user", key.fingerprint, "--digest-algo", "SHA512",
                    "--armor", "--detach-sign", input_data=release)  # fmt: skip
    atomic_write(dists / "Release", release)
    atomic_write(dists / "Release.gpg", detached)
    atomic_write(dists / "InRelease", signed)
    keyring = directory / KEYRING_NAME
    atomic_write(keyring, _gpg(key.home, "--export", key.fingerprint))
    return PublishedRepository(
        directory=directory,
        suite=suite,
        release_sha256=hashlib.sha256(signed).hexdigest(),
        keyring=keyring,
        fingerprint=key.fingerprint,
        packages=tuple(names),
        sources=tuple(d.stem for d in dscs),
    )


def _packages_stanza(deb: Path, directory: Path) -> tuple[str, str]:
    data = deb.read_bytes()
    control = read_deb(deb, name=deb.name, read_content=False).control
    stanza = Packages(str(control.stanza().dump()))
    description = stanza.pop("Description", None)
    stanza["Filename"] = deb.relative_to(directory).as_posix()
    stanza["Size"] = str(len(data))
    stanza["SHA256"] = hashlib.sha256(data).hexdigest()
    if description is not None:
        stanza["Description"] = description
    return str(stanza.dump()), str(stanza["Architecture"])


def _sources_stanza(dsc_path: Path, directory: Path) -> str:
    dsc = Dsc(dsc_path.read_text(encoding="utf-8"))
    stanza = Sources()
    stanza["Package"] = str(dsc["Source"])
    for name, value in dsc.items():
        if name not in ("Source", "Checksums-Sha256", "Checksums-Sha1", "Files", "Hash"):
            stanza[name] = value
    data = dsc_path.read_bytes()
    entries = [{"sha256": hashlib.sha256(data).hexdigest(), "size": str(len(data)),
                "name": dsc_path.name}]  # fmt: skip
    entries += [dict(e) for e in dsc.get("Checksums-Sha256", [])]
    stanza["Checksums-Sha256"] = entries  # type: ignore[assignment]
    stanza["Directory"] = dsc_path.parent.relative_to(directory).as_posix()
    return str(stanza.dump())


def _release(
    indexes: dict[str, bytes], *, suite: str, archs: Sequence[str], date: datetime, origin: str
) -> bytes:
    release = Release()
    release["Origin"] = origin
    release["Label"] = origin
    release["Suite"] = suite
    release["Codename"] = suite
    release["Date"] = format_datetime(date, usegmt=True).replace("GMT", "UTC")
    release["Architectures"] = " ".join(archs)
    release["Components"] = "main"
    release["Acquire-By-Hash"] = "no"
    release["Description"] = "packages rebuilt from source by kiln"
    release["SHA256"] = [  # type: ignore[assignment]
        {"sha256": hashlib.sha256(c).hexdigest(), "size": str(len(c)), "name": p}
        for p, c in sorted(indexes.items())
    ]
    return str(release.dump()).encode()
