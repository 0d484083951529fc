"""The assembly step: npm packages laid out as ``npm install -g`` with prefix /usr/local."""

from __future__ import annotations

import tarfile

import pytest

from kiln.assemble.fs import Plan, file_entry
from kiln.assemble.model import AssemblyInput, ImageFacts, NpmPackageInput
from kiln.assemble.npm import npm_packages
from kiln.assemble.steps import STEPS
from kiln.errors import InputError
from kiln.upstream import read_npm_tarball, sri_sha512

from .conftest import Member, package_tgz


def _pkg(
    name: str, version: str = "1.0.0", *, bins: object = None, extra: list[Member] | None = None
) -> NpmPackageInput:
    tgz = package_tgz(name, version, bins=bins, extra=extra)
    members = read_npm_tarball(tgz, name=name, version=version, source=name)
    return NpmPackageInput(name, version, sri_sha512(tgz), members)


def _inp(*pkgs: NpmPackageInput) -> AssemblyInput:
    return AssemblyInput(ImageFacts("t"), "amd64", "dev", (), 0, npm=pkgs)


def test_the_step_is_in_the_assembly_order() -> None:
    assert npm_packages in STEPS


def test_packages_go_under_usr_local_with_bin_links_and_executable_targets() -> None:
    plan = npm_packages(
        Plan.empty(),
        _inp(
            _pkg("npm", bins={"npm": "bin/cli.js", "npx": "./bin/cli.js"}),
            _pkg("@s/tool", bins="bin/cli.js"),
        ),
    )
    root = "usr/local/lib/node_modules/npm"
    assert plan.entries[f"{root}/lib/index.js"].mode == 0o644
    assert plan.entries[f"{root}/bin/cli.js"].mode == 0o755
    assert plan.entries["usr/local/bin/npm"].link_target == "../lib/node_modules/npm/bin/cli.js"
    assert plan.entries["usr/local/bin/npx"].link_target == "../lib/node_modules/npm/bin/cli.js"
    # a string bin is named after the unscoped package name
    assert (
        plan.entries["usr/local/bin/tool"].link_target == "../lib/node_modules/@s/tool/bin/cli.js"
    )
    assert plan.resolve("usr/local/bin/tool") == "usr/local/lib/node_modules/@s/tool/bin/cli.js"
    # npm's builtin config makes /usr/local its global prefix, as in the official image
    assert plan.read(f"{root}/npmrc") == b"prefix=/usr/local\n"
    assert all(e.uid == 0 and e.gid == 0 for e in plan.entries.values())
    assert plan.entries["usr/local/lib/node_modules"].mode == 0o755


def test_no_npm_packages_leaves_the_plan_alone() -> None:
    plan = Plan.empty()
    assert npm_packages(plan, _inp()) == plan


def test_two_packages_claiming_one_program_are_refused() -> None:
    with pytest.raises(InputError, match="bin 'x' is also a program of npm package a"):
        npm_packages(
            Plan.empty(),
            _inp(_pkg("a", bins={"x": "bin/cli.js"}), _pkg("b", bins={"x": "bin/cli.js"})),
        )


def test_a_program_the_image_already_has_is_refused() -> None:
    plan = Plan.empty().with_entries(file_entry("usr/local/bin/x", b"", package="somepkg"))
    with pytest.raises(InputError, match="already shipped by somepkg"):
        npm_packages(plan, _inp(_pkg("a", bins={"x": "bin/cli.js"})))


@pytest.mark.parametrize(
    ("bins", "message"),
    [
        ({"x": "missing.js"}, "not a file of the package"),
        ({"x": "../../../../etc/passwd"}, "leaves the image root"),
        ({"..": "bin/cli.js"}, "not a usable program name"),
        (["bin/cli.js"], "neither a string nor an object"),
        ({"x": 3}, "is not a string"),
    ],
)
def test_bad_bin_fields_are_refused(bins: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        npm_packages(Plan.empty(), _inp(_pkg("a", bins=bins)))


def test_a_bin_that_is_a_symlink_inside_the_package_is_refused() -> None:
    pkg = _pkg(
        "a",
        bins={"x": "lib/link"},
        extra=[Member("package/lib/link", kind=tarfile.SYMTYPE, link="index.js")],
    )
    with pytest.raises(InputError, match="not a file of the package"):
        npm_packages(Plan.empty(), _inp(pkg))
