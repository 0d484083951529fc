"""Mirror discovery from apt sources (deb822 and one-line) and kiln's config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.debian.distro import get_distro
from kiln.debian.sources import (
    Mirrors,
    default_config_path,
    discover_mirrors,
    load_mirror_overrides,
    mirrors_from_sources,
    parse_deb822_sources,
    parse_one_line_sources,
    read_host_sources,
)
from kiln.errors import InputError

# Mirror hosts in tests are reserved example names, never a real mirror.
MAIN = "http://archive.example.org/debian"
SECURITY = "https://security.example.org/debian-security"

DEB822 = f"""\
# the Debian archive
Types: deb deb-src
URIs: {MAIN}/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# comment inside a paragraph
URIs: {SECURITY}
Suites: bookworm-security
Components: main

Types: deb
URIs: https://vendor.example.org/apt
Suites: nodistro
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example.org/debian
Suites: trixie
"""


def test_parse_deb822_sources() -> None:
    entries = parse_deb822_sources(DEB822, path="debian.sources")
    assert [e.uri for e in entries] == [
        f"{MAIN}/",
        SECURITY,
        "https://vendor.example.org/apt",
    ]
    first = entries[0]
    assert first.types == ("deb", "deb-src")
    assert first.suites == ("bookworm", "bookworm-updates")
    assert first.signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert str(first.location) == "debian.sources:2"
    assert str(entries[1].location) == "debian.sources:8"
    assert [e.is_debian for e in entries] == [True, True, False]
    assert [e.is_security for e in entries] == [False, True, False]


def test_parse_deb822_multiline_suites() -> None:
    text = f"Types: deb\nURIs: {MAIN}\nSuites: trixie\n trixie-updates\nComponents: main\n"
    (entry,) = parse_deb822_sources(text, path="x.sources")
    assert entry.suites == ("trixie", "trixie-updates")


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("Types: deb\nthis is not a field\n", "x.sources:2", "expected 'Field: value'"),
        (" indented first\n", "x.sources:1", "continuation line"),
        (f"Types: deb\nURIs: {MAIN}\n", "x.sources:1", "no Suites field"),
        (f"\n\nURIs: {MAIN}\nSuites: trixie\n", "x.sources:3", "no Types field"),
    ],
)
def test_malformed_deb822_names_file_and_line(text: str, where: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        parse_deb822_sources(text, path="x.sources")
    assert str(caught.value).startswith(where + ":")


def test_parse_one_line_sources() -> None:
    text = f"""\
# comment
deb [arch=amd64 signed-by=/k.gpg] {MAIN} bookworm main contrib
deb-src {MAIN} bookworm main
deb {SECURITY} bookworm-security main  # trailing comment
deb cdrom:[Debian]/ bookworm main
"""
    entries = parse_one_line_sources(text, path="sources.list")
    assert [(e.types, e.uri, e.suites, e.components) for e in entries] == [
        (("deb",), MAIN, ("bookworm",), ("main", "contrib")),
        (("deb-src",), MAIN, ("bookworm",), ("main",)),
        (("deb",), SECURITY, ("bookworm-security",), ("main",)),
    ]
    assert entries[0].signed_by == "/k.gpg"
    assert str(entries[2].location) == "sources.list:4"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("rpm http://x/ a", "expected a line starting with 'deb'"),
        ("deb [arch=amd64 http://x/ a", "without a closing"),
        ("deb [trusted] http://x/ a", "not key=value"),
        ("deb http://x/", "expected 'URI suite"),
    ],
)
def test_malformed_one_line_names_file_and_line(line: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        parse_one_line_sources(f"# first\n{line}\n", path="a.list")
    assert str(caught.value).startswith("a.list:2:")


def test_mirrors_from_sources_maps_distro_suites() -> None:
    entries = parse_deb822_sources(DEB822, path="debian.sources")
    mirrors = mirrors_from_sources(entries, searched="debian.sources")
    assert (mirrors.debian, mirrors.security) == (MAIN, SECURITY)
    assert mirrors.suite_urls(get_distro("debian-13")) == {
        "trixie": MAIN,
        "trixie-updates": MAIN,
        "trixie-security": SECURITY,
    }
    assert "debian.sources:2" in mirrors.origin


def test_missing_debian_uri_is_an_input_error() -> None:
    vendor = parse_one_line_sources("deb https://vendor.example.org/apt nodistro main\n", path="v")
    with pytest.raises(InputError, match="no main Debian archive URI") as caught:
        mirrors_from_sources(vendor, searched="/etc/apt/sources.list")
    assert "mirrors.debian" in caught.value.diagnostics()
    only_main = parse_one_line_sources(f"deb {MAIN} trixie main\n", path="m")
    with pytest.raises(InputError, match="no Debian security archive URI"):
        mirrors_from_sources(only_main, searched="m")


def test_non_http_mirror_is_refused() -> None:
    entries = parse_one_line_sources(
        f"deb ftp://old.example.org/debian trixie main\ndeb {SECURITY} trixie-security main\n",
        path="s.list",
    )
    with pytest.raises(InputError, match="not an http") as caught:
        mirrors_from_sources(entries, searched="s.list")
    assert str(caught.value).startswith("s.list:1")


def _apt_dir(tmp_path: Path, *, sources: str | None = DEB822, one_line: str | None = None) -> Path:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    if sources is not None:
        (apt / "sources.list.d" / "debian.sources").write_text(sources)
    if one_line is not None:
        (apt / "sources.list").write_text(one_line)
    (apt / "sources.list.d" / "ignored.list.disabled").write_text("garbage\n")
    return apt


def test_read_host_sources_reads_both_formats(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, one_line=f"deb {MAIN}/ trixie main\n")
    entries = read_host_sources(apt)
    assert entries[0].location.file == str(apt / "sources.list")
    assert len(entries) == 4


def test_discover_uses_host_sources_without_config(tmp_path: Path) -> None:
    mirrors = discover_mirrors(apt_dir=_apt_dir(tmp_path), config_path=tmp_path / "none.yaml")
    assert mirrors == Mirrors(MAIN, SECURITY, origin=mirrors.origin)


def test_config_overrides_host_sources(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "registry: elsewhere\n"
        "mirrors:\n"
        "  debian: https://local.example.org/debian/\n"
        "  debian-security: https://local.example.org/security\n"
    )
    # Neither the host sources nor their absence matter when both are configured.
    mirrors = discover_mirrors(apt_dir=tmp_path / "no-apt", config_path=config)
    assert (mirrors.debian, mirrors.security) == (
        "https://local.example.org/debian",
        "https://local.example.org/security",
    )
    config.write_text("mirrors:\n  debian-security: https://local.example.org/security\n")
    partial = discover_mirrors(apt_dir=_apt_dir(tmp_path), config_path=config)
    assert (partial.debian, partial.security) == (MAIN, "https://local.example.org/security")


def test_config_path_from_environment(tmp_path: Path) -> None:
    assert default_config_path({"KILN_CONFIG": "/x/k.yaml"}) == Path("/x/k.yaml")
    assert default_config_path({"HOME": "/home/u"}) == Path("/home/u/.config/kiln/config.yaml")
    config = tmp_path / "k.yaml"
    config.write_text(f"mirrors:\n  debian: {MAIN}\n  debian-security: {SECURITY}\n")
    mirrors = discover_mirrors(apt_dir=tmp_path / "none", environ={"KILN_CONFIG": str(config)})
    assert mirrors.debian == MAIN


@pytest.mark.parametrize(
    ("text", "message", "where"),
    [
        ("mirrors:\n  debian: [unclosed\n", "invalid YAML", "k.yaml:3"),
        ("mirrors:\n  debian: ftp://x/debian\n", "not an http", "mirrors.debian"),
        ("mirrors:\n  debain: http://x/debian\n", "Extra inputs", "mirrors.debain"),
        ("- a list\n", "must be a mapping", "k.yaml"),
    ],
)
def test_bad_config_is_an_input_error(tmp_path: Path, text: str, message: str, where: str) -> None:
    config = tmp_path / "k.yaml"
    config.write_text(text)
    with pytest.raises(InputError, match=message) as caught:
        load_mirror_overrides(config)
    assert where in str(caught.value)


def test_no_debian_entry_on_host_and_no_config(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, sources=None, one_line="deb https://vendor.example.org/a x main\n")
    with pytest.raises(InputError, match="no main Debian archive URI"):
        discover_mirrors(apt_dir=apt, config_path=tmp_path / "none.yaml")


def test_host_apt_sources_parse() -> None:
    # The machine's own sources must be readable (they are kiln's default mirrors).
    if not Path("/etc/apt/sources.list.d").is_dir():
        pytest.skip("no apt sources on this machine")
    mirrors = discover_mirrors(config_path=Path("/nonexistent/kiln.yaml"))
    assert mirrors.debian.startswith(("http://", "https://"))
    assert mirrors.security.startswith(("http://", "https://"))
