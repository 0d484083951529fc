"""Package URLs of inventory packages: the same strings packageurl-python writes."""

from __future__ import annotations

import pytest
from packageurl import PackageURL

from kiln.inventory.model import OsRelease, deb_purl, npm_purl, purl_string, pypi_purl


@pytest.mark.parametrize(
    ("type_", "namespace", "name", "version", "qualifiers"),
    [
        ("deb", "debian", "libc6", "2.36-9+deb12u4", {"arch": "amd64", "distro": "debian-12"}),
        ("deb", "debian", "libstdc++6", "1:12.2.0-14", {"upstream": "gcc-12@12.2.0-14"}),
        ("deb", "Debian", "tzdata", "2024a-0+deb12u1", {"arch": "all", "distro": ""}),
        ("deb", "debian", "a%2Bb", "1%3A2", {"arch": "x%20y"}),  # percent signs decode first
        ("deb", "debian", "x", "1.0~rc1", {"distro": "debian-12%"}),
        ("npm", "@types", "node", "20.1.0", None),
        ("npm", None, "lodash", "4.17.21", None),
        ("pypi", None, "Django_Rest", "3.0 beta", None),
        ("pypi", None, "name with space", "1.0#frag?q", {"Key": "Value/With:Colon"}),
    ],
)
def test_purl_string_is_what_packageurl_writes(
    type_: str,
    namespace: str | None,
    name: str,
    version: str,
    qualifiers: dict[str, str] | None,
) -> None:
    expected = PackageURL(
        type=type_, namespace=namespace, name=name, version=version, qualifiers=qualifiers
    ).to_string()
    assert purl_string(type_, namespace, name, version, qualifiers) == expected


def test_debian_npm_and_pypi_purls() -> None:
    bookworm = OsRelease.from_parts("debian", "12")
    assert (
        deb_purl("libssl3", "3.0.11-1~deb12u2", "amd64", bookworm, "openssl", "3.0.11-1~deb12u2")
        == "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl"
    )
    assert deb_purl("bash", "5.2.15-2+b2", None, None, "bash", "5.2.15-2") == (
        "pkg:deb/debian/bash@5.2.15-2%2Bb2?upstream=bash%405.2.15-2"
    )
    assert npm_purl("@babel/core", "7.24.0") == "pkg:npm/%40babel/core@7.24.0"
    assert pypi_purl("Requests_OAuthlib", "2.0.0") == "pkg:pypi/requests-oauthlib@2.0.0"
