"""DEP-5 ``License:`` fields mapped to SPDX expressions; anything else is NOASSERTION."""

from __future__ import annotations

import pytest

from kiln.sbom import LicenseRef, license_from_copyright
from kiln.sbom.licenses import spdx_license_id

HEADER = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"


def _copyright(*licenses: str, extra: str = "") -> str:
    body = "".join(
        f"\nFiles: dir{n}/*\nCopyright: 2025 Someone\nLicense: {lic}\n"
        for n, lic in enumerate(licenses)
    )
    return HEADER + body + extra


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("MIT", "MIT"),
        ("Expat", "MIT"),
        ("Apache-2.0", "Apache-2.0"),
        ("apache-2.0", "Apache-2.0"),
        ("BSD-3-clause", "BSD-3-Clause"),
        ("GPL-2", "GPL-2.0-only"),
        ("GPL-2+", "GPL-2.0-or-later"),
        ("GPL-3.0+", "GPL-3.0-or-later"),
        ("GPL", "GPL-1.0-or-later"),
        ("LGPL-2.1+", "LGPL-2.1-or-later"),
        ("LGPL-2.1", "LGPL-2.1-only"),
        ("AGPL-3+", "AGPL-3.0-or-later"),
        ("GFDL-1.3+", "GFDL-1.3-or-later"),
        ("Zlib", "Zlib"),
        ("MPL-2.0", "MPL-2.0"),
        ("Artistic", "Artistic-1.0-Perl"),
        ("GPL-1+ or Artistic", "Artistic-1.0-Perl OR GPL-1.0-or-later"),
        ("Perl", "Artistic-1.0-Perl OR GPL-1.0-or-later"),
        ("GPL-3+ with GCC-exception-3.1 exception", "GPL-3.0-or-later WITH GCC-exception-3.1"),
        ("GPL-2+ with Classpath exception", "GPL-2.0-or-later WITH Classpath-exception-2.0"),
        ("Expat and ISC, or BSD-2-clause", "BSD-2-Clause OR (ISC AND MIT)"),
    ],
)
def test_dep5_names_map_to_spdx(field: str, expected: str) -> None:
    warnings: list[str] = []
    result = license_from_copyright(_copyright(field), "copyright", warnings)
    assert result.expression == expected
    assert result.refs == ()
    assert warnings == []


def test_paragraphs_are_combined_with_and_sorted_and_deduplicated() -> None:
    text = _copyright("GPL-2+", "MIT or Apache-2.0", "GPL-2+", "Zlib")
    result = license_from_copyright(text, "c", [])
    assert result.expression == "GPL-2.0-or-later AND Zlib AND (Apache-2.0 OR MIT)"


def test_a_name_without_spdx_id_becomes_a_licenseref_with_its_text() -> None:
    text = _copyright(
        "public-domain",
        "MIT",
        extra="\nLicense: public-domain\n No rights reserved.\n .\n Really none.\n",
    )
    result = license_from_copyright(text, "c", [])
    assert result.expression == "LicenseRef-public-domain AND MIT"
    assert result.refs == (
        LicenseRef(
            "LicenseRef-public-domain", "public-domain", "No rights reserved.\n\nReally none."
        ),
    )


def test_an_unknown_exception_keeps_the_whole_term_as_a_licenseref() -> None:
    result = license_from_copyright(_copyright("GPL-2+ with OpenSSL exception"), "c", [])
    assert result.expression == "LicenseRef-GPL-2-plus-with-OpenSSL-exception"
    assert result.refs[0].name == "GPL-2+ with OpenSSL exception"


def test_a_plus_without_an_or_later_id_is_a_licenseref() -> None:
    result = license_from_copyright(_copyright("Apache-2.0+"), "c", [])
    assert result.expression == "LicenseRef-Apache-2.0-plus"
    assert result.refs[0].name == "Apache-2.0+"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "This package was debianized by someone.\nIt is GPL.\n",
        "\x00\x01 not text at all",
        HEADER,  # machine-readable but says nothing about licences
    ],
)
def test_not_machine_readable_or_empty_is_noassertion(text: str) -> None:
    warnings: list[str] = []
    result = license_from_copyright(text, "c", warnings)
    assert result.expression is None
    assert warnings == []


@pytest.mark.parametrize("field", ["or MIT", "MIT and", "MIT with", "GPL-2+ foo bar"])
def test_unparseable_license_fields_are_noassertion_with_a_warning(field: str) -> None:
    warnings: list[str] = []
    result = license_from_copyright(_copyright(field), "/usr/share/doc/x/copyright", warnings)
    assert result.expression is None
    assert len(warnings) == 1
    assert warnings[0].startswith("/usr/share/doc/x/copyright: ")
    assert warnings[0].endswith("NOASSERTION")


def test_spdx_license_id() -> None:
    assert spdx_license_id("mit") == "MIT"
    assert spdx_license_id("MIT OR Apache-2.0") is None
    assert spdx_license_id("LicenseRef-x") is None


def test_nested_and_duplicate_terms_are_flattened() -> None:
    result = license_from_copyright(_copyright("ISC and MIT", "MIT", "ISC", "Zlib"), "c", [])
    assert result.expression == "ISC AND MIT AND Zlib"


def test_an_http_format_url_is_read_without_log_noise(caplog: pytest.LogCaptureFixture) -> None:
    text = _copyright("MIT").replace("https://", "http://")
    with caplog.at_level("WARNING"):
        result = license_from_copyright(text, "c", [])
    assert result.expression == "MIT"
    assert caplog.records == []
