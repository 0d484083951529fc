"""Property-based fuzzing of the parsers of outside data (issue 13, "keep the campaign").

Debian indexes (Packages, Release), .deb files (ar + tar + compression), OCI manifests,
Sigstore bundles and in-toto statements, SBOMs (whole and streamed), the vulnerability
feeds (tracker JSON, OSV JSON/YAML, NVD pages, KEV, EPSS, changelogs) and dpkg status
are fed random bytes, mutations of valid documents and generated structures with each
format's vocabulary. Any exception that is not a ``KilnError`` fails the test.

Bounded by the ``ci`` hypothesis profile; ``KILN_FUZZ=long`` runs the ``long`` one
(tests/hostile/conftest.py). Crashes this campaign found and fixed are pinned in
``test_found_*`` below.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.debrepo import DebSpec, build_deb, release_text
from kiln.attest.bundle import parse_bundle
from kiln.debian.deb import read_deb
from kiln.debian.index import parse_packages
from kiln.debian.release import check_clearsigned_structure, parse_release
from kiln.errors import KilnError
from kiln.inventory import sbom as sbom_module
from kiln.inventory.dpkg import parse_status
from kiln.inventory.sbom import parse_sbom, read_sbom_file
from kiln.jsonlimits import parse_json
from kiln.oci.model import parse_manifest
from kiln.registry import OCI_INDEX, OCI_MANIFEST, Digest
from kiln.vuln.feeds import FEEDS, fixes_from_changelog, from_bytes, parse_osv
from kiln.vuln.feeds.nvd import parse_page

# ------------------------------------------------------------------------ strategies


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes], pieces: list[bytes]) -> bytes:
    """A valid document with a few byte flips, insertions, deletions and repeats."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        match draw(st.sampled_from(["flip", "insert", "piece", "delete", "repeat", "cut"])):
            case "flip" if at < len(data):
                data[at] ^= 1 << draw(st.integers(0, 7))
            case "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=8))
            case "piece":
                data[at:at] = draw(st.sampled_from(pieces))
            case "delete":
                del data[at : at + draw(st.integers(1, 64))]
            case "repeat":
                chunk = bytes(data[at : at + draw(st.integers(1, 40))])
                data[at:at] = chunk * draw(st.integers(2, 30))
            case "cut":
                del data[at:]
    return bytes(data)


def inputs(seeds: list[bytes], pieces: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=600), mutated(seeds, pieces))


JSON_PIECES = [
    b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\\u0000", b"\\ud800", b"null", b"true",
    b"1e999", b"-0", b"NaN", b"9" * 5000, b"[" * 200, b"\xff", b"\x00", "\u2028".encode(),
]  # fmt: skip
TEXT_PIECES = [
    b"\n", b"\n\n", b"\r\n", b" ", b"\t", b":", b": ", b" .\n", b"\x00", b"\xff", b"\x1f",
    "\u2028".encode(), b"Package: ", b"Version: ", b"Filename: ../../etc/passwd\n",
    b"SHA256:\n", b" 0 0 x\n", b"-----BEGIN PGP SIGNED MESSAGE-----\n", b"9" * 400,
]  # fmt: skip


def json_documents(vocabulary: list[str]) -> st.SearchStrategy[bytes]:
    """JSON documents whose keys and strings come from a format's own vocabulary."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
        st.sampled_from(vocabulary),
    )
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5),
            st.dictionaries(st.sampled_from(vocabulary) | st.text(max_size=6), inner, max_size=6),
        ),
        max_leaves=40,
    )
    return values.map(lambda v: json.dumps(v).encode())


def expect_kiln_error_only(parse: Callable[[], object]) -> None:
    """Run ``parse``: it may succeed or raise a KilnError; anything else fails the test."""
    with contextlib.suppress(KilnError):
        parse()


# ------------------------------------------------------------- Packages and Release

PACKAGES = (
    b"Package: hello\nVersion: 2.10-3\nArchitecture: amd64\nMaintainer: x <x@x>\n"
    b"Installed-Size: 280\nDepends: libc6 (>= 2.34)\nPre-Depends: dpkg (>= 1.15)\n"
    b"Provides: hi (= 1)\nSource: hello (2.10-3)\nFilename: pool/main/h/hello/hello.deb\n"
    b"Size: 1234\nSHA256: " + b"a" * 64 + b"\nDescription: hi\n more\n\n"
    b"Package: libc6\nVersion: 2.36-9\nArchitecture: amd64\nMulti-Arch: same\n"
    b"Filename: pool/main/g/glibc/libc6.deb\nSize: 1\nSHA256: " + b"b" * 64 + b"\n"
)


@given(inputs([PACKAGES], TEXT_PIECES))
def test_packages_index(data: bytes) -> None:
    expect_kiln_error_only(lambda: parse_packages(data, arch="amd64", source="Packages"))


RELEASE = release_text(
    suite="trixie",
    codename="trixie",
    date=datetime(2026, 1, 1, tzinfo=UTC),
    valid_until=None,
    archs=("amd64", "arm64"),
    by_hash=True,
    files={"main/binary-amd64/Packages.xz": b"x", "main/binary-amd64/Packages": b"y"},
)
SIGNED = (
    b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
    + RELEASE
    + b"-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE\n=abcd\n-----END PGP SIGNATURE-----\n"
)


@given(inputs([RELEASE], TEXT_PIECES))
def test_release(data: bytes) -> None:
    expect_kiln_error_only(lambda: parse_release(data, source="Release"))


@given(inputs([SIGNED], TEXT_PIECES))
def test_clearsigned_structure(data: bytes) -> None:
    expect_kiln_error_only(lambda: check_clearsigned_structure(data, source="InRelease"))


# ------------------------------------------------------------------------ .deb files


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    base = tmp_path_factory.mktemp("fuzz-debs")
    spec = DebSpec(
        "fuzzme",
        "1.0-1",
        arch="all",
        files={"usr/share/doc/fuzzme/changelog.Debian.gz": b"\x1f\x8b", "etc/x": b"x\n"},
        symlinks={"usr/bin/fz": "/etc/x"},
    )
    xz = build_deb(spec, base / "xz.deb").read_bytes()
    gz = base / "gz.deb"
    subprocess.run(
        ["dpkg-deb", "-R", str(base / "xz.deb"), str(base / "tree")], check=True, timeout=60
    )
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(base / "tree"), str(gz)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return [xz, gz.read_bytes()]


DEB_PIECES = [
    b"!<arch>\n", b"debian-binary   ", b"control.tar.xz  ", b"data.tar.gz     ", b"`\n",
    b"\x00" * 512, b"././@LongLink", b"../../etc/passwd", b"9999999999", b"\xfd7zXZ\x00",
    b"\x1f\x8b\x08", b"\x28\xb5\x2f\xfd",
]  # fmt: skip


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_deb(debs: list[bytes], data: st.DataObject) -> None:
    deb = data.draw(st.one_of(st.binary(max_size=2000), mutated(debs, DEB_PIECES)))
    expect_kiln_error_only(lambda: read_deb(deb, name="fuzz.deb"))


# ------------------------------------------------------------ OCI, bundles, statements

MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "x", "digest": "sha256:" + "a" * 64, "size": 2},
        "layers": [{"mediaType": "y", "digest": "sha256:" + "b" * 64, "size": 3}],
        "subject": {"mediaType": OCI_INDEX, "digest": "sha256:" + "c" * 64, "size": 4},
        "annotations": {"k": "v"},
    }
).encode()
INDEX = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": "sha256:" + "d" * 64,
                "size": 5,
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
).encode()
OCI_WORDS = [
    "schemaVersion", "mediaType", "config", "layers", "manifests", "digest", "size",
    "subject", "platform", "annotations", "artifactType", "urls", "data", OCI_MANIFEST,
    OCI_INDEX, "sha256:" + "a" * 64, "sha512:" + "b" * 128, "architecture", "os",
]  # fmt: skip


@given(
    st.one_of(inputs([MANIFEST, INDEX], JSON_PIECES), json_documents(OCI_WORDS)),
    st.sampled_from([None, OCI_MANIFEST, OCI_INDEX, "application/json", ""]),
)
def test_oci_manifest(data: bytes, media_type: str | None) -> None:
    expect_kiln_error_only(
        lambda: parse_manifest(data, media_type, Digest.of(data), where="reg/repo@x")
    )


def _bundle_seed() -> bytes:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "x", "digest": {"sha256": "a" * 64}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {}},
    }
    envelope = {
        "payload": base64.b64encode(json.dumps(statement).encode()).decode(),
        "payloadType": "application/vnd.in-toto+json",
        "signatures": [{"sig": base64.b64encode(b"sig").decode(), "keyid": ""}],
    }
    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": "k"}, "tlogEntries": []},
            "dsseEnvelope": envelope,
        }
    ).encode()


BUNDLE = _bundle_seed()
BUNDLE_WORDS = [
    "mediaType", "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial",
    "publicKey", "hint", "tlogEntries", "certificate", "rawBytes", "dsseEnvelope", "payload",
    "payloadType", "signatures", "sig", "keyid", "messageSignature", "AAAA", "e30=",
]  # fmt: skip


@given(st.one_of(inputs([BUNDLE], JSON_PIECES), json_documents(BUNDLE_WORDS)))
def test_sigstore_bundle_and_statement(data: bytes) -> None:
    def parse() -> object:
        return parse_bundle(data, where="bundle").statement(where="bundle")

    expect_kiln_error_only(parse)


# -------------------------------------------------------------------------------- SBOMs

CYCLONEDX = json.dumps(
    {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": [
            {
                "type": "library",
                "bom-ref": "a",
                "name": "libc6",
                "version": "2.36-9",
                "purl": "pkg:deb/debian/libc6@2.36-9?arch=amd64&upstream=glibc&epoch=1",
                "properties": [{"name": "syft:metadata:source", "value": "glibc"}],
                "components": [{"type": "library", "purl": "pkg:pypi/Requests@2.31.0"}],
            },
            {"type": "operating-system", "name": "debian", "version": "13"},
        ],
    }
).encode()
SPDX = json.dumps(
    {
        "spdxVersion": "SPDX-2.3",
        "packages": [
            {
                "SPDXID": "SPDXRef-a",
                "name": "zlib1g",
                "versionInfo": "1:1.3-1",
                "sourceInfo": "built package from: zlib 1:1.3-1",
                "primaryPackagePurpose": "LIBRARY",
                "externalRefs": [
                    {
                        "referenceType": "purl",
                        "referenceLocator": "pkg:deb/debian/zlib1g@1:1.3-1?distro=debian-13",
                    }
                ],
            }
        ],
    }
).encode()
SBOM_WORDS = [
    "bomFormat", "CycloneDX", "spdxVersion", "SPDX-2.3", "SPDX-3.0", "components", "packages",
    "purl", "type", "operating-system", "library", "name", "version", "versionInfo",
    "properties", "value", "externalRefs", "referenceType", "referenceLocator", "sourceInfo",
    "primaryPackagePurpose", "OPERATING-SYSTEM", "_type", "predicate", "bom-ref", "SPDXID",
    "pkg:deb/debian/a@1", "pkg:deb/debian/a@1:2-3?arch=amd64&distro=debian-13",
    "pkg:deb/a", "pkg:pypi/x@1", "pkg:npm/%40s/x@1", "pkg:oci/x@sha256%3Aab", "pkg:", "pkg:deb/",
    "built package from: x 1", "aquasecurity:trivy:SrcName", "aquasecurity:trivy:SrcVersion",
    "aquasecurity:trivy:SrcEpoch", "syft:metadata:source", "upstream",
]  # fmt: skip


@contextlib.contextmanager
def _sbom_file(data: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kiln-fuzz-") as scratch:
        path = Path(scratch) / "bom.json"
        path.write_bytes(data)
        yield path


@given(st.one_of(inputs([CYCLONEDX, SPDX], JSON_PIECES), json_documents(SBOM_WORDS)))
def test_sbom_whole_and_streamed_agree(data: bytes) -> None:
    outcomes: list[object] = []
    with _sbom_file(data) as path:
        for threshold in (sbom_module.STREAM_ABOVE_BYTES, 0):
            with mock.patch.object(sbom_module, "STREAM_ABOVE_BYTES", threshold):
                try:
                    outcomes.append(read_sbom_file(path, "bom.json", []))
                except KilnError:
                    outcomes.append(KilnError)
    # what one path reads, the other reads the same way (errors may differ in wording)
    assert outcomes[0] == outcomes[1] or KilnError in outcomes


@given(json_documents(SBOM_WORDS))
def test_sbom_documents(data: bytes) -> None:
    document: Any = json.loads(data)
    expect_kiln_error_only(lambda: parse_sbom(document, "bom.json", []))


# -------------------------------------------------------------------------------- feeds

TRACKER = json.dumps(
    {
        "openssl": {
            "CVE-2024-0001": {
                "description": "x",
                "scope": "remote",
                "debianbug": 1,
                "releases": {
                    "trixie": {
                        "status": "resolved",
                        "repositories": {"trixie": "3.0.1-1"},
                        "fixed_version": "3.0.1-1",
                        "urgency": "low",
                        "nodsa": "minor",
                    }
                },
            }
        }
    }
).encode()
TRACKER_WORDS = [
    "description", "scope", "debianbug", "releases", "status", "repositories",
    "fixed_version", "urgency", "nodsa", "nodsa_reason", "resolved", "open", "undetermined",
    "trixie", "bookworm", "sid", "CVE-2024-0001", "TEMP-0000000-000000", "0", "1:2.3-4",
    "not yet assigned", "unimportant", "openssl",
]  # fmt: skip
OSV = json.dumps(
    {
        "id": "DSA-1",
        "modified": "2024-01-01T00:00:00Z",
        "aliases": ["CVE-2024-0001"],
        "affected": [
            {
                "package": {"ecosystem": "Debian:12", "name": "openssl"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1"}]}],
                "versions": ["0.9"],
            }
        ],
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    }
).encode()
OSV_WORDS = [
    "id", "modified", "published", "withdrawn", "aliases", "affected", "package", "ecosystem",
    "name", "purl", "ranges", "type", "events", "introduced", "fixed", "last_affected",
    "limit", "versions", "severity", "score", "ECOSYSTEM", "SEMVER", "GIT", "PyPI", "npm",
    "Debian:12", "Debian:13", "0", "1.0", "1:2.3-4", "CVSS_V3", "database_specific",
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "2024-01-01T00:00:00Z",
]  # fmt: skip
NVD = json.dumps(
    {
        "resultsPerPage": 1,
        "startIndex": 0,
        "totalResults": 1,
        "vulnerabilities": [
            {
                "cve": {
                    "id": "CVE-2024-0001",
                    "published": "2024-01-01T00:00:00.000",
                    "lastModified": "2024-01-02T00:00:00.000",
                    "descriptions": [{"lang": "en", "value": "x"}],
                    "metrics": {
                        "cvssMetricV31": [
                            {
                                "type": "Primary",
                                "cvssData": {
                                    "baseScore": 9.8,
                                    "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                                    "baseSeverity": "CRITICAL",
                                },
                            }
                        ]
                    },
                    "weaknesses": [{"description": [{"lang": "en", "value": "CWE-79"}]}],
                }
            }
        ],
    }
).encode()
CHANGELOG = (
    b"openssl (3.0.1-1) unstable; urgency=medium\n\n  * Fix CVE-2024-0001 and CVE-2024-0002.\n\n"
    b" -- Maint <m@x.org>  Mon, 01 Jan 2024 00:00:00 +0000\n\n"
    b"openssl (3.0.0-1) unstable; urgency=low\n\n  * Initial (Closes: #1).\n\n"
    b" -- Maint <m@x.org>  Sun, 31 Dec 2023 00:00:00 +0000\n"
)


def _records(name: str, origin: str, data: bytes) -> None:
    list(FEEDS[name]().records(from_bytes(origin, data)))


@given(st.one_of(inputs([TRACKER], JSON_PIECES), json_documents(TRACKER_WORDS)))
def test_debian_tracker_export(data: bytes) -> None:
    expect_kiln_error_only(lambda: _records("debian-tracker", "tracker.json", data))


@given(st.one_of(inputs([OSV], JSON_PIECES), json_documents(OSV_WORDS)))
def test_osv_json(data: bytes) -> None:
    expect_kiln_error_only(lambda: parse_osv(data, "DSA-1.json"))


@given(inputs([b"id: DSA-1\nmodified: '2024'\naffected:\n  - package: {name: x}\n"], TEXT_PIECES))
def test_osv_yaml(data: bytes) -> None:
    expect_kiln_error_only(lambda: parse_osv(data, "DSA-1.yaml"))


@given(st.one_of(inputs([NVD], JSON_PIECES), json_documents([*OSV_WORDS, "cve", "metrics"])))
def test_nvd_page(data: bytes) -> None:
    expect_kiln_error_only(lambda: parse_page(data, "nvd.json"))


@given(
    inputs([b'{"vulnerabilities": [{"cveID": "CVE-1", "dateAdded": "2024-01-01"}]}'], JSON_PIECES)
)
def test_kev_catalog(data: bytes) -> None:
    expect_kiln_error_only(lambda: _records("kev", "kev.json", data))


@given(inputs([b"#model_version:v1\ncve,epss,percentile\nCVE-2024-0001,0.1,0.5\n"], TEXT_PIECES))
def test_epss_csv(data: bytes) -> None:
    expect_kiln_error_only(lambda: _records("epss", "epss.csv", data))


@given(inputs([CHANGELOG], TEXT_PIECES))
def test_debian_changelog(data: bytes) -> None:
    expect_kiln_error_only(lambda: fixes_from_changelog(data, "changelog"))


# -------------------------------------------------------------------------- dpkg status

STATUS = (
    b"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: amd64\n"
    b"Source: glibc (2.36-9)\nDescription: x\n more\n\n"
    b"Package: old\nStatus: deinstall ok config-files\nVersion: 1\n\n"
)


@given(inputs([STATUS], TEXT_PIECES))
def test_dpkg_status(data: bytes) -> None:
    expect_kiln_error_only(lambda: parse_status(data, "status", None, []))


# ---------------------------------------------------------------- the bounded JSON parser


@given(inputs([MANIFEST, BUNDLE, CYCLONEDX, TRACKER], JSON_PIECES))
def test_bounded_json(data: bytes) -> None:
    expect_kiln_error_only(lambda: parse_json(data, where="x", max_bytes=4096, max_depth=16))


# ------------------------------------------------- crashes the campaign found, pinned


def test_found_a_packages_index_that_is_not_utf8_is_remote_content_error() -> None:
    with pytest.raises(KilnError, match="Packages: byte 0 of the Packages index is not UTF-8"):
        parse_packages(b"\x80", arch="amd64", source="Packages")


def test_found_a_changelog_version_python_debian_refuses_late_is_a_feed_error() -> None:
    changelog = (
        b"0 (\x00) x; urgency=low\n\n  * CVE-2024-0001\n\n"
        b" -- M <m@x>  Mon, 01 Jan 2024 00:00:00 +0000\n"
    )
    with pytest.raises(KilnError, match="changelog: not a valid Debian changelog"):
        fixes_from_changelog(changelog, "changelog")


def test_found_a_release_date_past_year_9999_is_remote_content_error() -> None:
    with pytest.raises(KilnError, match=r"Release: Date .* is not an RFC 2822 date"):
        parse_release(b"Date:0\x1fJan\x1f2200000000\x1f0:0\x1fUT", source="Release")


def test_found_rows_the_csv_module_refuses_are_feed_errors() -> None:
    with pytest.raises(KilnError, match="expected the header"):  # a lone CR ends a line
        _records("epss", "epss.csv", b"\r\x00")
    with pytest.raises(KilnError, match=r"epss\.csv:2: not CSV: field larger than"):
        _records("epss", "epss.csv", b"cve,epss,percentile\n" + b"x" * 200_000)
