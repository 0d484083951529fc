"""apt's cache order: first mention of each name while apt parses the indexes."""

from __future__ import annotations

from kiln.resolve import resolve
from kiln.resolve.apt_order import apt_cache_order
from resolve.resolve_universe import MemoryUniverse

MAIN = """\
Package: zeta
Version: 1
Depends: beta (>= 1), python3:any, gamma:amd64 | delta:arm64
Provides: virt

Package: alpha
Version: 1
Pre-Depends: epsilon:native
Recommends: omega
Provides: virt
"""
SECURITY = """\
Package: alpha
Version: 2
Depends: newcomer
"""


def test_names_are_ordered_by_first_mention_in_apt_parse_order() -> None:
    order = apt_cache_order([MAIN, SECURITY], arch="amd64")
    assert sorted(order, key=order.__getitem__) == [
        "zeta",
        "beta",
        "gamma",
        "virt",
        "alpha",
        "epsilon",
        "omega",
        "newcomer",
    ]


def test_any_and_foreign_qualified_mentions_do_not_count() -> None:
    order = apt_cache_order([MAIN], arch="amd64")
    assert "python3" not in order
    assert "delta" not in order
    assert "delta" in apt_cache_order([MAIN], arch="arm64")


def test_folded_relation_lines_are_read() -> None:
    text = "Package: one\nDepends: two,\n three\n"
    assert list(apt_cache_order([text], arch="amd64")) == ["one", "two", "three"]


def test_equal_providers_go_to_the_later_mentioned_one_like_apt() -> None:
    text = """
Package: app
Depends: phpapi

Package: mod-php
Provides: phpapi

Package: php-cli
Provides: phpapi
"""
    universe = MemoryUniverse.from_stanzas(text.strip() + "\n")
    by_name = resolve(["app"], universe, drop_install_time_only=False)
    assert by_name.names == ("app", "mod-php")
    order = {"app": 0, "phpapi": 1, "php-cli": 2, "mod-php": 3}
    like_apt = resolve(["app"], universe, drop_install_time_only=False, apt_order=order)
    assert like_apt.names == ("app", "mod-php")
    order = {"app": 0, "phpapi": 1, "mod-php": 2, "php-cli": 3}
    like_apt = resolve(["app"], universe, drop_install_time_only=False, apt_order=order)
    assert like_apt.names == ("app", "php-cli")


def test_priority_still_comes_before_cache_order() -> None:
    text = """
Package: app
Depends: virt

Package: standard-impl
Priority: standard
Provides: virt

Package: late-impl
Provides: virt
"""
    universe = MemoryUniverse.from_stanzas(text.strip() + "\n")
    order = {"standard-impl": 0, "late-impl": 9}
    result = resolve(["app"], universe, drop_install_time_only=False, apt_order=order)
    assert result.names == ("app", "standard-impl")
