"""Family tables: the checked-in catalog generates >= 600 valid images over >= 150 names,
reproducibly; hostile or wrong tables fail at their position; an entry naming a package
a release lacks is skipped for that release with the reason, and the others generate."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.spec import parse_spec
from kiln.spec.family import (
    DEV_PACKAGES,
    DEV_SHARED_BASE,
    SHARED_BASE,
    FamilyError,
    generate,
    load_families,
    load_family,
    plan_catalog,
    render_spec,
)

ROOT = Path(__file__).resolve().parents[2]
RESERVED = [p.stem for p in (ROOT / "images").glob("*.yaml")]


def _families() -> list:  # type: ignore[type-arg]
    return load_families(ROOT / "catalog", reserved=RESERVED)


def test_checked_in_catalog_reaches_the_targets_and_every_spec_parses(tmp_path: Path) -> None:
    plan = plan_catalog(_families())
    names = {i.entry for i in plan.images}
    assert len(names) >= 150
    assert plan.count_images() >= 600
    assert not plan.skipped  # without an archive check every entry generates
    for image in plan.images:
        # the rendered YAML goes through the real spec loader (yamldoc + ImageSpec)
        loaded = parse_spec(render_spec(image), tmp_path / f"{image.name}.yaml")
        spec = loaded.spec
        assert spec.variant_names() == ("runtime", "dev")
        assert spec.compatibility.notes, image.name
        assert spec.variant("dev").run_as == "root"
        assert any(t.name.endswith("answers") for t in spec.tests), image.name


def test_generation_is_reproducible() -> None:
    first = [render_spec(i) for i in plan_catalog(_families()).images]
    second = [render_spec(i) for i in plan_catalog(_families()).images]
    assert first == second


def test_every_generated_spec_layers_a_shared_base_per_release_and_variant(
    tmp_path: Path,
) -> None:
    for image in plan_catalog(_families()).images:
        spec = parse_spec(render_spec(image), tmp_path / f"{image.name}.yaml").spec
        assert spec.layering == "shared"
        assert spec.base_packages_for("runtime") == frozenset(SHARED_BASE[image.release])
        dev = spec.base_packages_for("dev")
        assert dev == frozenset(DEV_SHARED_BASE[image.release])
        assert set(DEV_PACKAGES[image.release]) | set(SHARED_BASE[image.release]) <= dev
    assert "gcc-14-base" in SHARED_BASE["debian-13"]
    assert "gcc-12-base" in SHARED_BASE["debian-12"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("layering: shared\n", r"x\.yaml:3:\d+: layering: .*shared needs base-packages"),
        ("base-packages: [libc6]\n", r"x\.yaml:3:\d+: base-packages: .*needs layering: shared"),
        (
            "variants: {dev: {base-packages: [libc6]}}\n",
            r"x\.yaml:3:\d+: variants\.dev\.base-packages: .*needs layering: shared",
        ),
        ("layering: shared\nbase-packages: [libc6, libc6]\n", r"x\.yaml:4:\d+: .*more than once"),
    ],
)
def test_base_packages_and_layering_must_agree(tmp_path: Path, extra: str, message: str) -> None:
    text = "name: x\npackages: [base-files]\n" + extra
    with pytest.raises(InputError, match=message):
        parse_spec(text.encode(), tmp_path / "x.yaml")


def test_kinds_get_their_tests() -> None:
    plan = plan_catalog(_families())
    by_name = {i.name: i.spec for i in plan.images}
    memcached = by_name["memcached"]
    probes = [t for t in memcached["tests"] if "probe" in t]
    assert probes
    assert probes[0]["probe"]["port"] == 11211
    assert probes[0]["user"] == "nonroot"
    (ruby,) = [t for t in by_name["ruby"]["tests"] if t["name"] == "runs hello-world"]
    assert (ruby["stdout"], "stderr" in ruby) == ("^hello, world$", False)
    # Go's test/helloworld.go prints with the print builtin: to stderr
    (go,) = [t for t in by_name["golang"]["tests"] if t["name"] == "runs hello-world"]
    assert (go["stderr"], "stdout" in go) == ("^hello, world$", False)
    # erl is a /bin/sh script: erlang's runtime keeps dash, says why, and its notes say so
    erlang = by_name["erlang"]
    assert "dash" in erlang["packages"]
    assert "erl" in erlang["shell"]
    assert any("keeps a shell" in n for n in erlang["compatibility"]["notes"])
    assert "shell" not in by_name["ruby"]
    assert not any("keeps a shell" in n for n in by_name["ruby"]["compatibility"]["notes"])
    network = [t for t in by_name["curl"]["tests"] if t.get("network")]
    assert network
    assert network[0]["variants"] == ["dev"]
    offline = plan_catalog(_families(), network_tests=False)
    assert not any(t.get("network") for i in offline.images for t in i.spec["tests"])
    # Debian 12 gets its own name and its own package set (postgresql-15, gpgv not sqv)
    pg12 = by_name["postgresql-debian12"]
    assert "postgresql-15" in pg12["packages"]
    assert "gpgv" in pg12["variants"]["dev"]["packages"]
    assert "sqv" not in pg12["variants"]["dev"]["packages"]


def test_missing_package_skips_that_release_only(tmp_path: Path) -> None:
    table = tmp_path / "tools.yaml"
    table.write_text(
        "family: tools\nkind: tool\nentries:\n"
        "  - {name: jq, packages: [jq], binary: /usr/bin/jq, version: {stdout: jq}}\n"
        "  - {name: newtool, packages: [newtool], binary: /usr/bin/newtool,"
        " version: {stdout: x}}\n"
    )
    loaded = load_family(table)
    in13 = {"newtool"}

    def exists13(name: str) -> bool:
        return True

    def exists12(name: str) -> bool:
        return name not in in13

    plan = plan_catalog([loaded], {"debian-13": exists13, "debian-12": exists12})
    assert sorted(i.name for i in plan.images) == ["jq", "jq-debian12", "newtool"]
    (skip,) = plan.skipped
    assert skip.entry == "newtool"
    assert skip.release == "debian-12"
    assert "has no package newtool" in skip.reason
    assert skip.location.startswith(f"{table}:5:")  # the entry's line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("family: t\nkind: tool\nentries: []\n", "entries"),
        (
            "family: t\nkind: tool\nentries:\n  - {name: a, packages: [pkg-a], binary: bin/a}\n",
            "absolute",
        ),
        (
            "family: t\nkind: tool\nentries:\n  - {name: a, packages: [Bad_Name], binary: /a}\n",
            "Debian package name",
        ),
        (
            "family: t\nkind: server\nentries:\n  - {name: a, packages: [pkg-a], binary: /a}\n",
            "has no probe",
        ),
        (
            "family: t\nkind: tool\nentries:\n  - {name: a, packages: [pkg-a], binary: /a}\n"
            "  - {name: a, packages: [pkg-b], binary: /b}\n",
            "more than once",
        ),
        (
            "family: t\nkind: tool\nentries:\n  - {name: a, packages: [pkg-a], binary: /a,"
            " releases: [debian-13], overrides: {debian-12: {binary: /b}}}\n",
            "overrides",
        ),
        (
            "family: t\nkind: tool\nentries:\n  - &x {name: a, packages: [pkg-a], binary: /a}\n",
            "anchor",
        ),
        (
            "family: t\nkind: tool\nentries:\n  - {name: a, packages: [pkg-a], binary: /a,"
            " version: {args: [-v]}}\n",
            "stdout or stderr",
        ),
        (
            "family: t\nkind: tool\nentries:\n  - {name: a, packages: [pkg-a], binary: /a,"
            " frobnicate: 1}\n",
            "frobnicate",
        ),
        ("family: t\nkind: tool\nentries: {", "invalid YAML"),
        (
            "family: t\nkind: tool\nentries:\n  - {name: a, packages: [pkg-a], binary: /a,"
            " archs: [amd64, amd64]}\n",
            "more than once",
        ),
        (
            "family: t\nkind: tool\nentries:\n  - {name: a, packages: [pkg-a], binary: /a,"
            " archs: [arm64]}\n",
            "amd64 must be listed",
        ),
        (
            "family: t\nkind: tool\nentries:\n  - {name: a, packages: [pkg-a], binary: /a,"
            " archs: [amd64, riscv64]}\n",
            "archs[1]: input should be 'amd64' or 'arm64'",
        ),
        (
            "family: t\nkind: server\nentries:\n  - {name: a, packages: [pkg-a], binary: /a,"
            ' probe: {port: 5353, send: "\\0x", expect: x}}\n',
            "NUL byte",
        ),
    ],
)
def test_hostile_tables_are_input_errors_with_positions(
    tmp_path: Path, text: str, expected: str
) -> None:
    table = tmp_path / "t.yaml"
    table.write_text(text)
    with pytest.raises(FamilyError) as caught:
        load_family(table)
    rendered = str(caught.value) + str(caught.value.location) + " ".join(caught.value.details)
    assert expected.lower() in rendered.lower()
    assert caught.value.location is not None
    assert str(table) in str(caught.value.location)
    assert caught.value.exit_code == 2


def test_entry_clashing_with_a_hand_written_spec_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(
        "family: t\nkind: tool\nentries:\n  - {name: redis, packages: [redis], binary: /a}\n"
    )
    with pytest.raises(FamilyError, match="hand-written") as caught:
        load_families(tmp_path, reserved=["redis"])
    assert str(caught.value.location).startswith(f"{tmp_path / 't.yaml'}:4:")


def test_unknown_family_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no family called 'nope'"):
        plan_catalog(_families(), only_family="nope")


def test_an_entry_whose_spec_does_not_validate_is_skipped_not_fatal(tmp_path: Path) -> None:
    # an environment name with '=' passes the family table but not the spec model: that
    # entry is reported with the spec's error, the other still generates
    table = tmp_path / "t.yaml"
    table.write_text(
        "family: t\nkind: tool\nentries:\n"
        '  - {name: bad, packages: [pkg-a], binary: /a, env: {"A=B": x}, version: {stdout: a}}\n'
        "  - {name: good, packages: [pkg-b], binary: /b, version: {stdout: b}}\n"
    )
    loaded = load_family(table)
    with pytest.raises(FamilyError, match=r"entry 'bad' \(debian-13\) generates an invalid spec"):
        generate(loaded, loaded.family.entries[0], "debian-13")
    plan = plan_catalog([loaded])
    assert {i.entry for i in plan.images} == {"good"}
    assert {s.entry for s in plan.skipped} == {"bad"}


def test_selection_by_spec_name_and_unknown_names() -> None:
    from kiln.factory.catalogbuild import plan

    found = plan(ROOT, None, names=["curl", "memcached-debian12"])
    assert sorted(i.name for i in found.images) == ["curl", "memcached-debian12"]
    assert [i.name for i in plan(ROOT, None, names=["curl"], release="debian-12").images] == []
    with pytest.raises(InputError, match=r"no catalog image called \.\./etc, nope"):
        plan(ROOT, None, names=["nope", "../etc"])
    with pytest.raises(InputError, match="no family called 'x'"):
        plan(ROOT, None, family="x")


def test_a_server_without_probe_needs_and_shows_its_reason(tmp_path: Path) -> None:
    table = tmp_path / "t.yaml"
    table.write_text(
        "family: t\nkind: server\nentries:\n  - {name: dns, packages: [pkg-a], binary: /a,"
        ' version: {stdout: a}, no-probe: "binary protocol (DNS)"}\n'
    )
    (image, _) = plan_catalog([load_family(table)]).images
    assert not any("probe" in t for t in image.spec["tests"])
    assert any(
        "do not probe this server: binary protocol (DNS)" in n
        for n in image.spec["compatibility"]["notes"]
    )
