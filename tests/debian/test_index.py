"""Packages parsing (checked against python-debian), merging over suites, compact form."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from fixtures.debrepo import DebRepo, assert_agrees_with_python_debian
from kiln.debian.index import (
    MergedUniverse,
    PackagesTable,
    PackageUniverse,
    merge_tables,
    parse_packages,
)
from kiln.errors import RemoteContentError

SHA = hashlib.sha256(b"x").hexdigest()


def _stanza(name: str, version: str, arch: str = "amd64", **extra: str) -> str:
    upstream = version.rsplit(":", maxsplit=1)[-1]
    fields = {
        "Package": name,
        "Version": version,
        "Architecture": arch,
        "Filename": f"pool/main/{name[0]}/{name}/{name}_{upstream}_{arch}.deb",
        "Size": "100",
        "SHA256": SHA,
        **{k.replace("_", "-"): v for k, v in extra.items()},
        "Description": "a package\n with a long description\n .\n more",
    }
    return "".join(f"{k}: {v}\n" for k, v in fields.items())


def _table(*stanzas: str, arch: str = "amd64") -> PackagesTable:
    return parse_packages("\n".join(stanzas).encode(), arch=arch, source="Packages")


def test_parser_agrees_with_python_debian_on_fixture(debrepo: DebRepo) -> None:
    for arch in ("amd64", "arm64"):
        for suite in debrepo.distro.suites:
            data = debrepo.file(suite, f"main/binary-{arch}/Packages")
            assert assert_agrees_with_python_debian(data, arch=arch, suite=suite) > 0


def test_parser_agrees_with_python_debian_on_folded_fields() -> None:
    data = "\n".join(
        [
            _stanza(
                "folded",
                "1:2.0~rc1-3",
                Source="src (1:2.0~rc1-1)",
                Depends="a (>= 1),\n b | c,\n  d:any",
                Provides="v1, v2 (= 3)",
                Multi_Arch="same",
                Essential="yes",
                Installed_Size="42",
            ),
            _stanza("plain", "1.0", "all", Source="otherbin"),
        ]
    ).encode()
    assert assert_agrees_with_python_debian(data, arch="amd64") == 2
    universe = merge_tables("amd64", [("s", parse_packages(data, arch="amd64", source="P"))])
    folded = universe.get("folded")
    assert folded is not None
    assert folded.depends == "a (>= 1), b | c, d:any"
    assert (folded.source, folded.source_version) == ("src", "1:2.0~rc1-1")
    plain = universe.get("plain")
    assert plain is not None
    assert (plain.source, plain.source_version) == ("otherbin", "1.0")


def test_highest_version_wins_within_one_index() -> None:
    table = _table(_stanza("pa", "1.0"), _stanza("pa", "1.0~rc1"), _stanza("pa", "1:0.1"))
    assert len(table) == 1
    record = table.record("pa")
    assert record is not None
    assert record[1] == "1:0.1"


@pytest.mark.parametrize(
    ("stanza", "message"),
    [
        ("Package: a\nVersion: 1\nArchitecture: amd64\n", "has no Filename field"),
        (_stanza("pa", "1").replace("Size: 100", "Size: big"), "Size 'big' is not a number"),
        (_stanza("pa", "1").replace(SHA, "abc"), "SHA256 'abc' is not a sha256"),
        (_stanza("pa", "1", "arm64"), "Architecture 'arm64' in the amd64 index"),
        (_stanza("Bad_Name", "1"), "invalid package name"),
        (_stanza("pa", "1 2"), "invalid Version"),
        (
            _stanza("pa", "1").replace("Filename: pool", "Filename: pool/../../etc/passwd#"),
            "unsafe Filename",
        ),
        (_stanza("pa", "1").replace("Filename: pool", "Filename: /pool"), "unsafe Filename"),
        (_stanza("pa", "1") + "garbage line\n", "malformed line 'garbage line'"),
        (_stanza("pa", "1", Installed_Size="many"), "Installed-Size 'many'"),
        (_stanza("pa", "1", Depends="x\x1fy"), "control character"),
    ],
)
def test_hostile_stanzas_are_refused(stanza: str, message: str) -> None:
    good = _stanza("first", "1")
    with pytest.raises(RemoteContentError, match=message) as caught:
        _table(good, stanza)
    assert "Packages" in str(caught.value)


def test_error_names_the_line_of_the_stanza() -> None:
    good = _stanza("first", "1")
    bad = _stanza("pb", "1").replace("Size: 100", "Size: -1")
    with pytest.raises(RemoteContentError, match=r"Packages:12: package 'pb'"):
        _table(good, bad)


def test_merge_prefers_highest_version_and_records_suite() -> None:
    main = _table(_stanza("pa", "1.0"), _stanza("pb", "2.0"), _stanza("pc", "1.0", Provides="virt"))
    updates = _table(_stanza("pa", "1.1"), _stanza("pc", "0.9", Provides="other"))
    security = _table(_stanza("pb", "2.0"), _stanza("pd", "1.0", Provides="virt (= 1)"))
    universe = merge_tables("amd64", [("m", main), ("u", updates), ("s", security)])
    assert isinstance(universe, PackageUniverse)
    assert [
        (p.name, p.version, p.suite) for p in map(universe.get, ["pa", "pb", "pc", "pd"]) if p
    ] == [
        ("pa", "1.1", "u"),
        ("pb", "2.0", "m"),  # equal versions: the earlier suite is kept
        ("pc", "1.0", "m"),
        ("pd", "1.0", "s"),
    ]
    assert [p.name for p in universe.providers("virt")] == ["pc", "pd"]
    assert universe.providers("other") == ()  # only the winning candidate's Provides count
    assert sorted(universe.names()) == ["pa", "pb", "pc", "pd"]
    assert "pa" in universe
    assert "zz" not in universe
    assert len(universe) == 4
    assert universe.get("pa") is universe.get("pa")  # memoised


def test_merge_refuses_tables_of_another_arch() -> None:
    with pytest.raises(ValueError, match="arm64"):
        merge_tables("amd64", [("m", _table(_stanza("pa", "1", "arm64"), arch="arm64"))])


def test_compact_forms_round_trip() -> None:
    table = _table(_stanza("pa", "1.0", Provides="v"), _stanza("pb", "2.0", "all"))
    again = PackagesTable.from_bytes(table.to_bytes())
    assert again.index == table.index
    assert again.blob == table.blob
    assert list(again.offsets) == list(table.offsets)
    universe = merge_tables("amd64", [("m", table)])
    loaded = MergedUniverse.from_bytes(universe.to_bytes())
    assert loaded.suites == ("m",)
    assert [loaded.get(n) for n in ("pa", "pb")] == [universe.get(n) for n in ("pa", "pb")]
    assert loaded.providers("v") == universe.providers("v")
    empty = merge_tables("amd64", [("m", _table())])
    assert list(MergedUniverse.from_bytes(empty.to_bytes()).names()) == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-10],
        lambda b: b"x" + b[1:],
        lambda b: b[:30],
    ],
)
def test_damaged_compact_forms_raise_value_error(damage: Callable[[bytes], bytes]) -> None:
    universe = merge_tables("amd64", [("m", _table(_stanza("pa", "1.0")))])
    table = _table(_stanza("pa", "1.0"))
    for data, loader in ((universe.to_bytes(), MergedUniverse), (table.to_bytes(), PackagesTable)):
        with pytest.raises(ValueError, match=r"corrupt|not a kiln|inconsistent|truncated"):
            loader.from_bytes(damage(data))


def test_parser_bookkeeping_at_scale() -> None:
    # Many stanzas: checks the parser's bookkeeping (line numbers, records) at scale.
    stanzas = [_stanza(f"pkg{i}", f"1.{i}", Depends=f"pkg{i - 1}") for i in range(1, 3000)]
    table = _table(*stanzas)
    universe = merge_tables("amd64", [("m", table)])
    assert len(universe) == 2999
    package = universe.get("pkg1500")
    assert package is not None
    assert package.depends == "pkg1499"
