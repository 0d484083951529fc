"""Spec ``paths`` held to the rules packages are (issue 13, item 6).

``{path: /esc, type: symlink, target: /somewhere}`` then ``{path: /esc/pwned, type:
file}`` built a layer that wrote through the symlink. The spec model refuses what it can
see with a position (duplicates, paths below its own symlinks and files, spellings that
are not normalised, control characters); assembly refuses what only the image shows
(below a package's symlink, ``/bin/x`` spelt beside ``/usr/bin/x``, kiln's own files).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assemble.helpers import make_input, member, pkg
from hostile.spec_cases import HEAD, Case, assert_refused_at
from kiln.assemble import PathSpec
from kiln.assemble.fs import Plan
from kiln.assemble.plan import plan_from_packages
from kiln.assemble.steps import accounts, spec_paths
from kiln.errors import InputError
from kiln.spec.load import parse_spec

CASES: dict[str, Case] = {
    "file below a spec symlink": (
        "paths:\n"
        "  - {path: /esc, type: symlink, target: /somewhere}\n"
        "  - {path: /esc/pwned, type: file, content: x}\n",
        "path /esc/pwned lies below /esc, which the spec makes a symlink",
        "paths[1].path",
        5,
    ),
    "symlink declared after the file below it": (
        "paths:\n"
        "  - {path: /esc/pwned, type: file}\n"
        "  - {path: /esc, type: symlink, target: /somewhere}\n",
        "lies below /esc",
        "paths[0].path",
        4,
    ),
    "below a spec file": (
        "paths:\n  - {path: /etc/a, type: file}\n  - {path: /etc/a/b, type: directory}\n",
        "which the spec makes a file",
        "paths[1].path",
        5,
    ),
    "dev path below a runtime symlink": (
        "paths:\n"
        "  - {path: /opt/app, type: symlink, target: /srv}\n"
        "variants:\n"
        "  dev:\n"
        "    paths:\n"
        "      - {path: /opt/app/x, type: file}\n",
        "lies below /opt/app",
        "variants.dev.paths[0].path",
        8,
    ),
    "duplicate": (
        "paths:\n  - {path: /etc/foo, type: file}\n  - {path: /etc/foo, type: directory}\n",
        "path /etc/foo is listed more than once",
        "paths[1].path",
        5,
    ),
    "equivalent spelling": (
        "paths:\n  - {path: /etc/foo, type: file}\n  - {path: /etc//foo/, type: file}\n",
        "is not normalised (write '/etc/foo')",
        "paths[1].path",
        5,
    ),
    "dot component": (
        "paths:\n  - {path: /etc/./foo, type: file}\n",
        "not normalised",
        "paths[0].path",
        4,
    ),
    "newline in a name": (
        'paths:\n  - {path: "/etc/a\\nb", type: file}\n',
        "contains the control character U+000A",
        "paths[0].path",
        4,
    ),
    "escape in a name": (
        'paths:\n  - {path: "/etc/\\e[31m", type: file}\n',
        "U+001B",
        "paths[0].path",
        4,
    ),
    "control in a target": (
        'paths:\n  - {path: /etc/l, type: symlink, target: "a\\rb"}\n',
        "symlink target 'a\\rb' contains the control character U+000D",
        "paths[0].target",
        4,
    ),
    "the root": ("paths:\n  - {path: /, type: directory}\n", "image root", "paths[0].path", 4),
    "uid too large": (
        "paths:\n  - {path: /x, type: directory, uid: 4294967296}\n",
        "less than or equal to 2147483647",
        "paths[0].uid",
        4,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_spec_path_is_refused_at_its_position(case: str) -> None:
    assert_refused_at(CASES[case])


def test_a_variant_path_still_replaces_the_runtime_path_of_that_name() -> None:
    # images/nginx.yaml: -dev writes the official nginx.conf over the runtime's
    spec = parse_spec(
        (
            HEAD + "paths:\n"
            "  - {path: /etc/app.conf, type: file, content: runtime}\n"
            "variants:\n"
            "  dev:\n"
            "    paths:\n"
            "      - {path: /etc/app.conf, type: file, content: dev}\n"
        ).encode(),
        Path("demo.yaml"),
    ).spec
    paths = (
        PathSpec("/etc/app.conf", "file", content=b"runtime"),
        *(
            PathSpec(p.path, "file", content=(p.content or "").encode())
            for p in spec.variants["dev"].paths
        ),
    )
    plan = spec_paths(Plan.empty(), make_input((), paths=paths))
    assert plan.read("etc/app.conf") == b"dev"


# ------------------------------------------------------------------ in the image (assembly)


def _package_with_run_link() -> Plan:
    return plan_from_packages(
        [
            pkg(
                "base-files",
                member("run", "dir"),
                member("var", "dir"),
                member("var/run", "symlink", link_target="/run"),
            )
        ],
        arch="amd64",
    )


def test_a_spec_path_below_a_package_symlink_is_refused() -> None:
    inp = make_input((), paths=(PathSpec("/var/run/app.pid", "file", content=b"1"),))
    with pytest.raises(InputError, match=r"/var/run is a symlink to /run in the image"):
        spec_paths(_package_with_run_link(), inp)


def test_the_real_path_behind_the_link_is_fine() -> None:
    inp = make_input((), paths=(PathSpec("/run/app.pid", "file", content=b"1"),))
    assert spec_paths(_package_with_run_link(), inp).read("run/app.pid") == b"1"


def test_a_merged_usr_spelling_of_a_path_already_listed_is_refused() -> None:
    inp = make_input(
        (),
        paths=(
            PathSpec("/usr/bin/tool", "symlink", target="a"),
            PathSpec("/bin/tool", "symlink", target="b"),
        ),
    )
    with pytest.raises(InputError, match=r"/bin/tool: the same path as /usr/bin/tool"):
        spec_paths(Plan.empty(), inp)


def test_kiln_written_files_are_replaced_only_with_replace_true() -> None:
    plan = accounts(Plan.empty(), make_input(()))
    evil = PathSpec("/etc/passwd", "file", content=b"evil::0:0::/:/bin/sh\n")
    with pytest.raises(InputError, match="/etc/passwd: kiln writes it itself"):
        spec_paths(plan, make_input((), paths=(evil,)))
    allowed = PathSpec("/etc/passwd", "file", content=b"root:x:0:0::/:/x\n", replace=True)
    assert spec_paths(plan, make_input((), paths=(allowed,))).read("etc/passwd") == (
        b"root:x:0:0::/:/x\n"
    )


def test_a_link_or_file_cannot_hide_what_lies_below_it() -> None:
    plan = plan_from_packages([pkg("p", member("opt/app/bin/run", content=b"x"))], arch="amd64")
    link = PathSpec("/opt/app", "symlink", target="/srv", replace=True)
    with pytest.raises(InputError, match="/opt/app/bin lies below it"):
        spec_paths(plan, make_input((), paths=(link,)))
