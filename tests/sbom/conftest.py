"""A tiny kiln image built by kiln's own assembler from .debs made with ``dpkg-deb``.

The packages cover what the SBOM must get right: a binary whose source package differs
(``libssl3t64`` from ``openssl``), an epoch and a binNMU source version (``zlib1g``),
machine-readable copyright files with SPDX ids, DEP-5 names and a non-SPDX licence
(``public-domain``), a free-form copyright file, an ``Architecture: all`` package, a
``Depends`` chain, and the CA bundle, accounts and image.json kiln generates.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from assemble.helpers import EPOCH, FileSpec, build_deb, make_input
from kiln.assemble import ImageFacts, build_image, package_input
from kiln.debian.deb import read_deb
from kiln.resolve.lockfile import ArchLock, Lock, LockedPackage

OS_RELEASE = (
    b'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nNAME="Debian GNU/Linux"\n'
    b'VERSION_ID="13"\nVERSION="13 (trixie)"\nVERSION_CODENAME=trixie\nID=debian\n'
)
DEP5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"


def dep5(*paragraphs: tuple[str, str], extra: str = "") -> bytes:
    body = "".join(
        f"\nFiles: {files}\nCopyright: 2024 Someone\nLicense: {lic}\n" for files, lic in paragraphs
    )
    return (DEP5 + "Upstream-Name: test\n" + body + extra).encode()


def _pem(name: str) -> bytes:
    return f"-----BEGIN CERTIFICATE-----\n{name}\n-----END CERTIFICATE-----\n".encode()


@dataclass(frozen=True)
class DebSpec:
    name: str
    version: str
    files: dict[str, FileSpec]
    fields: dict[str, str]
    arch: str = "amd64"


PACKAGES = (
    DebSpec(
        "base-files",
        "13.8",
        {
            "usr/lib/os-release": OS_RELEASE,
            "etc/os-release": "->../usr/lib/os-release",
            "usr/share/doc/base-files/copyright": dep5(("*", "GPL-2+")),
        },
        {},
    ),
    DebSpec(
        "libc6",
        "2.41-12",
        {
            "usr/lib/x86_64-linux-gnu/libc.so.6": b"not really libc\n",
            "usr/share/doc/libc6/copyright": dep5(
                ("*", "LGPL-2.1+"),
                ("timezone/*", "public-domain"),
                extra="\nLicense: public-domain\n The tz database is in the public domain.\n",
            ),
        },
        {"Source": "glibc", "Multi-Arch": "same"},
    ),
    DebSpec(
        "libssl3t64",
        "3.5.1-1+deb13u1",
        {
            "usr/lib/x86_64-linux-gnu/libssl.so.3": b"not really a library\n",
            "usr/share/doc/libssl3t64/copyright": dep5(("*", "Apache-2.0")),
        },
        {"Source": "openssl", "Depends": "libc6 (>= 2.34), libzstd1 | zlib1g"},
    ),
    DebSpec(
        "zlib1g",
        "1:1.3.dfsg+really1.3.1-1+b1",
        {
            "usr/lib/x86_64-linux-gnu/libz.so.1": b"not really zlib\n",
            "usr/share/doc/zlib1g/copyright": b"This is zlib. Copyright Jean-loup and Mark.\n",
        },
        {"Source": "zlib (1:1.3.dfsg+really1.3.1-1)", "Depends": "libc6 (>= 2.14)"},
    ),
    DebSpec(
        "ca-certificates",
        "20250419",
        {
            "usr/share/ca-certificates/mozilla/Test_Root.crt": _pem("Test_Root"),
            "usr/share/doc/ca-certificates/copyright": dep5(
                ("*", "GPL-2+"), ("mozilla/*", "MPL-2.0")
            ),
        },
        {"Provides": "ca-certificates-bundle"},
        arch="all",
    ),
    DebSpec(
        "libexpat1",
        "2.7.1-2",
        {
            "usr/lib/x86_64-linux-gnu/libexpat.so.1": b"not really expat\n",
            "usr/share/doc/libexpat1/copyright": dep5(("*", "Expat or BSD-3-clause")),
        },
        {"Source": "expat", "Homepage": "https://libexpat.github.io/"},
    ),
)


@dataclass(frozen=True)
class Image:
    layout: Path
    lock: Lock


def build_test_image(
    work: Path,
    *,
    name: str = "tiny",
    version: str = "1.2.3",
    record_lock: bool = True,
    arches: tuple[str, ...] = ("amd64",),
    variant: str = "runtime",
) -> Image:
    """Build the fixture packages into ``work/out/<name>`` with a matching lock.

    ``record_lock=False`` leaves the lock digest out of the image's image.json; a ``dev``
    variant records the packages in ``/var/lib/dpkg/status`` instead of ``status.d/``.
    """
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is needed (make apt)")
    inputs = []
    locked = []
    for arch in arches:
        (work / arch).mkdir(parents=True, exist_ok=True)
        debs = []
        for spec in PACKAGES:
            deb_arch = "all" if spec.arch == "all" else arch
            with mock.patch.dict(os.environ, {"SOURCE_DATE_EPOCH": str(EPOCH)}):
                # dpkg-deb clamps member mtimes to it: rebuilt .debs are byte-identical
                deb = build_deb(
                    work / arch,
                    spec.name,
                    spec.files,
                    version=spec.version,
                    arch=deb_arch,
                    fields=spec.fields,
                )
            debs.append(package_input(read_deb(deb)))
            source, _, rest = spec.fields.get("Source", spec.name).partition(" (")
            data = deb.read_bytes()
            pool_name = f"{spec.name}_{spec.version.partition(':')[2] or spec.version}"
            locked.append(
                LockedPackage(
                    name=spec.name,
                    version=spec.version,
                    arch=deb_arch,
                    source=source,
                    source_version=rest.rstrip(")") or spec.version,
                    filename=f"pool/main/{source[0]}/{source}/{pool_name}_{deb_arch}.deb",
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    suite="trixie",
                )
            )
        inputs.append(debs)
    unique = {(p.name, p.arch): p for p in locked}
    lock = Lock(
        image=name,
        distro="debian-13",
        spec_sha256="0" * 64,
        releases=(),
        variants={
            variant: {
                arch: ArchLock(
                    packages=tuple(p for p in unique.values() if p.arch in (arch, "all"))
                )
                for arch in arches
            }
        },
    )
    facts = ImageFacts(name=name, version=version, lock_digest=lock.digest if record_lock else "")
    out = work / "out" / name
    build_image(
        [
            make_input(tuple(debs), facts=facts, arch=arch, variant=variant)
            for arch, debs in zip(arches, inputs, strict=True)
        ],
        out,
        annotations={"vendor": "kiln tests", "licenses": "MIT"},
    )
    return Image(out, lock)


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return build_test_image(tmp_path_factory.mktemp("sbom-image"))
