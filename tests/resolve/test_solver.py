"""The resolver on hand-written Packages stanzas: one behaviour of apt per test."""

from __future__ import annotations

import random

import pytest

from kiln.debian.distro import get_distro
from kiln.errors import InputError, RemoteContentError
from kiln.resolve import (
    EXCLUDED_BY_SPEC,
    INSTALL_TIME_ONLY,
    ConflictError,
    Pull,
    Resolution,
    ResolutionError,
    UnknownPackageError,
    UnsatisfiableError,
    resolve,
)
from kiln.resolve._relations import MalformedRelationError
from kiln.resolve.solver import CutEdge
from resolve.resolve_universe import MemoryUniverse

TRIXIE = get_distro("debian-13")


def universe(text: str, arch: str = "amd64") -> MemoryUniverse:
    return MemoryUniverse.from_stanzas(text.strip() + "\n", arch=arch)


def names(requested: list[str], text: str) -> set[str]:
    return set(resolve(requested, universe(text), drop_install_time_only=False).names)


# --- closure basics ------------------------------------------------------------------


def test_depends_and_pre_depends_are_followed_recommends_and_suggests_are_not() -> None:
    text = """
Package: app
Pre-Depends: libpre
Depends: liba (>= 1.0), libb
Recommends: rec
Suggests: sug

Package: libpre

Package: liba
Version: 1.2-1

Package: libb
Depends: libc6

Package: libc6

Package: rec

Package: sug
"""
    assert names(["app"], text) == {"app", "libpre", "liba", "libb", "libc6"}


def test_essential_packages_are_not_added_implicitly() -> None:
    text = """
Package: app

Package: coreutils
Essential: yes
Priority: required
"""
    assert names(["app"], text) == {"app"}


def test_dependency_cycles_resolve() -> None:
    text = """
Package: aa
Depends: bb

Package: bb
Depends: cc

Package: cc
Depends: aa
"""
    assert names(["aa"], text) == {"aa", "bb", "cc"}


def test_packages_are_sorted_and_why_gives_the_chain() -> None:
    text = """
Package: app
Depends: zlib, mid

Package: mid
Depends: leaf (>= 1)

Package: leaf
Version: 2

Package: zlib
"""
    result = resolve(["app"], universe(text), drop_install_time_only=False)
    assert result.names == ("app", "leaf", "mid", "zlib")
    assert result.why("leaf") == (
        Pull("app", None, ""),
        Pull("mid", "app", "mid"),
        Pull("leaf", "mid", "leaf (>= 1)"),
    )
    with pytest.raises(InputError, match="'nope' is not in the resolved set"):
        result.why("nope")


def test_a_deep_dependency_chain_needs_no_deep_recursion() -> None:
    count = 1500  # deeper than Python's default recursion limit
    stanzas = [f"Package: p{i}\nDepends: p{i + 1}\n" for i in range(count)]
    stanzas.append(f"Package: p{count}\n")
    result = resolve(["p0"], universe("\n".join(stanzas)), drop_install_time_only=False)
    assert len(result.packages) == count + 1


# --- alternatives --------------------------------------------------------------------


def test_alternative_takes_the_first_satisfiable() -> None:
    text = """
Package: app
Depends: missing | old (>= 2) | good | other

Package: old
Version: 1

Package: good

Package: other
"""
    assert names(["app"], text) == {"app", "good"}


def test_alternative_prefers_one_already_selected() -> None:
    # `first` pulls `bb` before `second` asks for `aa | bb`: `bb` already satisfies it.
    text = """
Package: top
Depends: first, second

Package: first
Depends: bb

Package: second
Depends: aa | bb

Package: aa

Package: bb
"""
    assert names(["top"], text) == {"top", "first", "second", "bb"}


def test_alternative_prefers_a_requested_package_whatever_the_order() -> None:
    text = """
Package: aaa
Depends: zzz-a | zzz-b

Package: zzz-a

Package: zzz-b
"""
    assert names(["aaa", "zzz-b"], text) == {"aaa", "zzz-b"}
    assert names(["zzz-b", "aaa"], text) == {"aaa", "zzz-b"}


def test_alternative_whose_dependencies_have_no_candidate_is_skipped() -> None:
    text = """
Package: app
Depends: broken | fine

Package: broken
Depends: nowhere

Package: fine
"""
    assert names(["app"], text) == {"app", "fine"}


def test_alternative_failing_deep_down_is_rolled_back_entirely() -> None:
    text = """
Package: app
Depends: deep | fine

Package: deep
Depends: mid

Package: mid
Depends: helper, bottom

Package: helper

Package: bottom
Depends: nowhere

Package: fine
"""
    result = resolve(["app"], universe(text), drop_install_time_only=False)
    assert result.names == ("app", "fine")
    assert {p.package for p in result.pulls} == {"app", "fine"}


# --- virtual packages ----------------------------------------------------------------


def test_virtual_package_is_satisfied_by_its_provider() -> None:
    text = """
Package: app
Depends: mail-transport-agent

Package: postfix
Provides: mail-transport-agent
"""
    assert names(["app"], text) == {"app", "postfix"}


def test_real_package_is_preferred_over_providers_of_its_name() -> None:
    text = """
Package: app
Depends: awk

Package: awk

Package: aaa-awk
Provides: awk
Priority: required
"""
    assert names(["app"], text) == {"app", "awk"}


def test_providers_are_ordered_essential_then_priority_then_name() -> None:
    base = """
Package: app
Depends: virt
"""
    optional_b = "\nPackage: b-impl\nProvides: virt\n"
    optional_a = "\nPackage: a-impl\nProvides: virt\n"
    standard = "\nPackage: z-impl\nProvides: virt\nPriority: standard\n"
    essential = "\nPackage: y-impl\nProvides: virt\nPriority: extra\nEssential: yes\n"
    assert names(["app"], base + optional_b + optional_a) == {"app", "a-impl"}
    assert names(["app"], base + optional_b + optional_a + standard) == {"app", "z-impl"}
    assert names(["app"], base + optional_a + standard + essential) == {"app", "y-impl"}


def test_versioned_provides_satisfy_versioned_dependencies() -> None:
    text = """
Package: app
Depends: virt (>= 1.0)

Package: old-impl
Provides: virt (= 0.9)

Package: unversioned-impl
Provides: virt

Package: new-impl
Provides: virt (= 1.2)
"""
    assert names(["app"], text) == {"app", "new-impl"}


def test_unversioned_provide_never_satisfies_a_versioned_dependency() -> None:
    text = """
Package: app
Depends: virt (>= 1.0)

Package: impl
Provides: virt
"""
    with pytest.raises(UnsatisfiableError) as info:
        resolve(["app"], universe(text), drop_install_time_only=False, distro=TRIXIE)
    assert "provided by impl, none satisfies virt (>= 1.0)" in info.value.diagnostics()


def test_requested_virtual_package_with_one_provider_selects_it() -> None:
    text = """
Package: impl
Provides: virt
"""
    assert names(["virt"], text) == {"impl"}


def test_requested_virtual_package_with_several_providers_is_an_error() -> None:
    text = """
Package: one
Provides: virt

Package: two
Provides: virt
"""
    with pytest.raises(UnknownPackageError, match="virtual package in debian-13 provided by"):
        resolve(["virt"], universe(text), drop_install_time_only=False, distro=TRIXIE)


# --- versions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "relation", "ok"),
    [
        ("1:0.5-1", ">= 2.0", True),  # an epoch outranks any upstream version
        ("2.0-1", ">= 1:1.0", False),
        ("1.0~rc2-1", ">= 1.0~rc1", True),
        ("1.0~rc2-1", ">= 1.0", False),  # tilde sorts before the release
        ("1.0-1", "<< 1.0-1.1", True),
        ("1.0-1", "= 1.0-1", True),
        ("1.0-2", "<= 1.0-1", False),
        ("1.0+b1", ">> 1.0", True),
    ],
)
def test_versioned_dependencies_follow_dpkg_ordering(
    candidate: str, relation: str, *, ok: bool
) -> None:
    text = f"""
Package: app
Depends: lib ({relation})

Package: lib
Version: {candidate}
"""
    if ok:
        assert names(["app"], text) == {"app", "lib"}
    else:
        with pytest.raises(UnsatisfiableError):
            names(["app"], text)


def test_only_the_candidate_version_exists() -> None:
    text = """
Package: app
Depends: lib (<< 2)

Package: lib
Version: 1

Package: lib
Version: 2
"""
    with pytest.raises(UnsatisfiableError, match=r"app → lib \(<< 2\) → no candidate"):
        names(["app"], text)


# --- architectures -------------------------------------------------------------------


def test_any_qualifier_needs_multi_arch_allowed() -> None:
    text = """
Package: app
Depends: python3:any (>= 3.11)

Package: python3
Version: 3.13.5-1
Multi-Arch: allowed
"""
    assert names(["app"], text) == {"app", "python3"}
    with pytest.raises(UnsatisfiableError) as info:
        names(["app"], text.replace("Multi-Arch: allowed", "Multi-Arch: no"))
    assert "Multi-Arch: no) does not satisfy python3:any (>= 3.11)" in info.value.diagnostics()


def test_native_and_explicit_arch_qualifiers() -> None:
    text = """
Package: app
Depends: liba:native, libb:amd64, data

Package: liba
Multi-Arch: same

Package: libb

Package: data
Architecture: all
Multi-Arch: foreign
"""
    assert names(["app"], text) == {"app", "liba", "libb", "data"}
    with pytest.raises(UnsatisfiableError, match="libb:arm64"):
        names(["app"], text.replace("libb:amd64", "libb:arm64"))


def test_packages_of_other_architectures_are_not_candidates() -> None:
    text = """
Package: app
Depends: lib

Package: lib
Architecture: arm64
"""
    with pytest.raises(UnsatisfiableError):
        names(["app"], text)
    arm = resolve(["app"], universe(text, arch="arm64"), drop_install_time_only=False)
    assert arm.names == ("app", "lib")


# --- conflicts and breaks ------------------------------------------------------------


def test_conflicting_requested_packages_are_an_error_naming_both() -> None:
    text = """
Package: aa
Conflicts: bb (<< 3)

Package: bb
Version: 2
"""
    with pytest.raises(ConflictError, match=r"aa conflicts with bb \(Conflicts: bb \(<< 3\)\)"):
        names(["aa", "bb"], text)
    assert names(["aa", "bb"], text.replace("Version: 2", "Version: 3")) == {"aa", "bb"}


def test_breaks_through_a_dependency_is_an_error_with_its_chain() -> None:
    text = """
Package: app
Depends: lib

Package: lib
Breaks: tool

Package: tool
"""
    with pytest.raises(ConflictError) as info:
        names(["tool", "app"], text)
    assert str(info.value) == "app → lib: lib breaks tool (Breaks: tool)"


def test_conflict_through_provides_and_the_reverse_direction() -> None:
    text = """
Package: aa
Conflicts: virt

Package: bb
Provides: virt
"""
    with pytest.raises(ConflictError, match="aa conflicts with bb"):
        names(["aa", "bb"], text)
    with pytest.raises(ConflictError, match="aa conflicts with bb"):
        names(["bb", "aa"], text)


def test_versioned_conflict_with_an_unversioned_provide_does_not_match() -> None:
    text = """
Package: aa
Conflicts: virt (<< 2)

Package: bb
Provides: virt
"""
    assert names(["aa", "bb"], text) == {"aa", "bb"}


def test_a_package_may_provide_conflict_with_and_replace_a_virtual_name() -> None:
    text = """
Package: app
Depends: mail-transport-agent

Package: postfix
Provides: mail-transport-agent
Conflicts: mail-transport-agent, postfix
Replaces: mail-transport-agent
"""
    assert names(["app"], text) == {"app", "postfix"}


def test_alternative_conflicting_with_a_requested_package_is_skipped() -> None:
    text = """
Package: app
Depends: impl-a | impl-b

Package: impl-a
Conflicts: other

Package: impl-b

Package: other
"""
    assert names(["app", "other"], text) == {"app", "impl-b", "other"}


def test_auto_selected_package_gives_way_to_a_conflicting_hard_dependency() -> None:
    # apt keeps `nogui` back when `core` (which conflicts with it) must be installed.
    text = """
Package: office
Depends: base-core, base

Package: base-core
Depends: core-nogui | core

Package: base
Depends: core

Package: core
Depends: libshared
Conflicts: core-nogui

Package: core-nogui
Depends: libshared, libnogui-only
Conflicts: core

Package: libshared

Package: libnogui-only
"""
    result = resolve(["office"], universe(text), drop_install_time_only=False)
    # Like apt, what `core-nogui` pulled stays selected when it is kept back.
    assert result.names == ("base", "base-core", "core", "libnogui-only", "libshared", "office")
    assert [p.package for p in result.why("libshared")] == ["office", "base", "core", "libshared"]
    assert result.why("libnogui-only") == (Pull("libnogui-only", "core-nogui", "libnogui-only"),)


# --- excludes and install-time-only packages -----------------------------------------


DEBCONF = """
Package: app
Pre-Depends: dpkg (>= 1.15)
Depends: debconf (>= 0.5) | debconf-2.0, libfoo, adduser

Package: libfoo

Package: dpkg
Version: 1.22.21
Essential: yes

Package: debconf
Depends: perl-base
Provides: debconf-2.0

Package: cdebconf
Provides: debconf-2.0
Depends: libdebconfclient0

Package: libdebconfclient0

Package: perl-base
Essential: yes

Package: adduser
Depends: passwd

Package: passwd
"""


def test_install_time_only_packages_are_kept_when_not_dropping() -> None:
    result = resolve(["app"], universe(DEBCONF), drop_install_time_only=False)
    assert set(result.names) == {
        "app",
        "libfoo",
        "dpkg",
        "debconf",
        "perl-base",
        "adduser",
        "passwd",
    }
    assert result.cut_edges == ()


def test_install_time_only_edges_are_cut_and_recorded() -> None:
    result = resolve(["app"], universe(DEBCONF), drop_install_time_only=True)
    assert result.names == ("app", "libfoo")
    assert result.cut_edges == (
        CutEdge("app", "adduser", "install-time only: " + INSTALL_TIME_ONLY["adduser"]),
        CutEdge(
            "app",
            "debconf (>= 0.5) | debconf-2.0",
            "install-time only: " + INSTALL_TIME_ONLY["debconf"],
        ),
        CutEdge("app", "dpkg (>= 1.15)", "install-time only: " + INSTALL_TIME_ONLY["dpkg"]),
    )


def test_a_dependency_an_install_time_only_package_can_satisfy_is_cut() -> None:
    text = """
Package: daemon
Depends: systemd | systemd-standalone-sysusers | systemd-sysusers, passwd | adduser, libfoo

Package: systemd

Package: systemd-standalone-sysusers
Provides: systemd-sysusers

Package: passwd

Package: adduser

Package: libfoo
"""
    dropped = resolve(["daemon"], universe(text), drop_install_time_only=True)
    assert dropped.names == ("daemon", "libfoo")
    assert [e.relation for e in dropped.cut_edges] == [
        "passwd | adduser",
        "systemd | systemd-standalone-sysusers | systemd-sysusers",
    ]
    kept = resolve(["daemon"], universe(text), drop_install_time_only=False)
    assert kept.names == ("daemon", "libfoo", "passwd", "systemd")
    # A requested package satisfies the dependency: nothing is cut.
    wanted = resolve(["daemon", "systemd"], universe(text), drop_install_time_only=True)
    assert wanted.names == ("daemon", "libfoo", "systemd")
    assert [e.relation for e in wanted.cut_edges] == ["passwd | adduser"]


def test_a_requested_install_time_only_package_is_kept() -> None:
    result = resolve(["app", "debconf"], universe(DEBCONF), drop_install_time_only=True)
    assert set(result.names) == {"app", "libfoo", "debconf", "perl-base"}


def test_every_install_time_only_entry_has_a_reason() -> None:
    assert INSTALL_TIME_ONLY
    for name, reason in INSTALL_TIME_ONLY.items():
        assert name == name.lower()
        assert len(reason) > 20, name


def test_exclude_cuts_the_edge_and_records_it() -> None:
    text = """
Package: app
Depends: libfoo, tzdata

Package: libfoo

Package: tzdata
"""
    result = resolve(["app"], universe(text), exclude=["tzdata"], drop_install_time_only=False)
    assert result.names == ("app", "libfoo")
    assert result.cut_edges == (CutEdge("app", "tzdata", EXCLUDED_BY_SPEC),)


def test_excluded_alternative_falls_back_to_the_next_one() -> None:
    text = """
Package: app
Depends: mawk | gawk

Package: mawk

Package: gawk
"""
    result = resolve(["app"], universe(text), exclude=["mawk"], drop_install_time_only=False)
    assert result.names == ("app", "gawk")
    assert result.cut_edges == ()


def test_excluded_provider_cuts_a_virtual_dependency() -> None:
    text = """
Package: app
Depends: virt

Package: impl
Provides: virt
"""
    result = resolve(["app"], universe(text), exclude=["impl"], drop_install_time_only=False)
    assert result.names == ("app",)
    assert result.cut_edges == (CutEdge("app", "virt", EXCLUDED_BY_SPEC),)


def test_requesting_an_excluded_package_is_an_error() -> None:
    with pytest.raises(ResolutionError, match="app is both requested and excluded"):
        resolve(["app"], universe("Package: app\n"), exclude=["app"], drop_install_time_only=False)


# --- errors --------------------------------------------------------------------------


def test_unknown_package_suggests_close_names() -> None:
    text = """
Package: python3

Package: perl
"""
    with pytest.raises(UnknownPackageError) as info:
        resolve(["pyhton3"], universe(text), drop_install_time_only=False, distro=TRIXIE)
    assert str(info.value) == "'pyhton3' is not a package in debian-13 (did you mean python3?)"
    assert isinstance(info.value, InputError)
    with pytest.raises(UnknownPackageError, match=r"^'zzzzzz' is not a package in debian-13$"):
        resolve(["zzzzzz"], universe(text), drop_install_time_only=False, distro=TRIXIE)


@pytest.mark.parametrize("bad", ["", "A", "Foo Bar", "../etc", "-x"])
def test_malformed_requested_names_are_rejected(bad: str) -> None:
    with pytest.raises(UnknownPackageError, match="is not a valid Debian package name"):
        resolve([bad], universe("Package: app\n"), drop_install_time_only=False)


def test_unsatisfiable_dependency_reports_the_whole_chain() -> None:
    text = """
Package: python3.13
Depends: libpython3.13-stdlib

Package: libpython3.13-stdlib
Depends: libssl3t64 (>= 3.5.0)

Package: libssl3t64
Version: 3.4.0-1
"""
    with pytest.raises(UnsatisfiableError) as info:
        resolve(["python3.13"], universe(text), drop_install_time_only=False, distro=TRIXIE)
    assert str(info.value) == (
        "python3.13 → libpython3.13-stdlib → libssl3t64 (>= 3.5.0) → "
        "no candidate in trixie, trixie-updates, trixie-security"
    )
    assert "libssl3t64: candidate 3.4.0-1 (amd64, trixie" in info.value.diagnostics()


def test_missing_dependency_of_a_requested_package() -> None:
    text = """
Package: python3.13
Depends: libssl3t64 (>= 3.5.0)
"""
    with pytest.raises(UnsatisfiableError) as info:
        resolve(["python3.13"], universe(text), drop_install_time_only=False, distro=TRIXIE)
    assert str(info.value) == (
        "python3.13 → libssl3t64 (>= 3.5.0) → no candidate in trixie, trixie-updates, "
        "trixie-security"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("Depends", "libfoo (>= 1.0", "cannot parse"),
        ("Depends", "libfoo (=> 1.0)", "bad version operator"),
        ("Depends", "libfoo (>= !!)", "cannot parse"),
        ("Depends", "libfoo:AMD64", "bad architecture qualifier"),
        ("Pre-Depends", "lib foo", "cannot parse"),
        ("Provides", "virt (>= 1)", "only '=' may version"),
        ("Conflicts", "x ((", "cannot parse"),
    ],
)
def test_malformed_relations_name_package_and_field(field: str, value: str, message: str) -> None:
    text = f"""
Package: app
Version: 1.0-1
{field}: {value}

Package: libfoo
"""
    with pytest.raises(MalformedRelationError, match=message) as info:
        names(["app"], text)
    assert isinstance(info.value, RemoteContentError)
    assert f"app 1.0-1 (trixie): {field}:" in str(info.value)


# --- determinism ---------------------------------------------------------------------


def test_result_does_not_depend_on_request_or_index_order() -> None:
    stanzas = [
        "Package: web\nDepends: libssl | libtls, httpd-common, mta\n",
        "Package: worker\nDepends: libtls, mta\n",
        "Package: libssl\nDepends: libc\n",
        "Package: libtls\nDepends: libc\n",
        "Package: libc\n",
        "Package: httpd-common\nDepends: web\n",
        "Package: exim\nProvides: mta\n",
        "Package: postfix\nProvides: mta\n",
        "Package: debconf\nProvides: debconf-2.0\n",
    ]
    results: set[Resolution] = set()
    rng = random.Random(13)
    for _ in range(10):
        rng.shuffle(stanzas)
        requested = ["worker", "web"]
        rng.shuffle(requested)
        results.add(resolve(requested, universe("\n".join(stanzas)), drop_install_time_only=False))
    assert len(results) == 1
    (result,) = results
    # `web` is processed first (requested names are sorted): it takes libssl.
    assert result.names == ("exim", "httpd-common", "libc", "libssl", "libtls", "web", "worker")


def test_packages_keeping_each_other_back_end_in_an_error_not_a_loop() -> None:
    text = """
Package: app
Depends: left | left-alt, right | right-alt

Package: left
Conflicts: right

Package: right
Conflicts: left

Package: left-alt
Depends: missing

Package: right-alt
Depends: missing
"""
    with pytest.raises(ConflictError) as info:
        names(["app"], text)
    assert str(info.value) == (
        "app → left: left was kept back: right conflicts with left (Conflicts: left)"
    )


def test_a_library_a_kept_program_links_is_never_cut_as_install_time_only() -> None:
    # base-passwd kept in a runtime image (a server depends on it) ships update-passwd,
    # which links libdebconfclient0: cutting the library left a program whose DT_NEEDED
    # does not resolve (the catalog's ELF closure test found it in mariadb, caddy, dnsmasq).
    text = """
Package: server
Depends: base-passwd

Package: base-passwd
Depends: libdebconfclient0

Package: libdebconfclient0
"""
    result = resolve(["server"], universe(text), drop_install_time_only=True)
    assert set(result.names) == {"server", "base-passwd", "libdebconfclient0"}
    assert result.cut_edges == ()
