"""Account injection and the other config fields (issue 13, item 1).

``shell: "/bin/sh\\nevil::0:0::/:/bin/sh"`` built an image with a passwordless uid-0
account. Every field that reaches passwd, group or shadow, and env, workdir and
annotations, is now refused in the spec model with its file position.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assemble.helpers import make_input
from hostile.spec_cases import HEAD, Case, assert_refused_at
from kiln.assemble import Group, User
from kiln.assemble.fs import Plan
from kiln.assemble.steps import accounts
from kiln.errors import InputError
from kiln.pipeline.build import assembly_input
from kiln.spec.load import SpecError, parse_spec

CASES: dict[str, Case] = {
    "shell with a passwd line": (
        "accounts:\n  users:\n"
        '    - {name: app, uid: 1000, shell: "/bin/sh\\nevil::0:0::/:/bin/sh"}\n',
        "shell '/bin/sh\\nevil::0:0::/:/bin/sh' contains the control character U+000A",
        "accounts.users[0].shell",
        5,
    ),
    "shell with a colon": (
        "accounts:\n  users:\n    - {name: app, uid: 1000, shell: '/bin/sh:x'}\n",
        "must not contain ':'",
        "accounts.users[0].shell",
        5,
    ),
    "relative shell": (
        "accounts:\n  users:\n    - {name: app, uid: 1000, shell: sh}\n",
        "shell 'sh' must be absolute",
        "accounts.users[0].shell",
        5,
    ),
    "home with a colon": (
        "accounts:\n  users:\n    - {name: app, uid: 1000, home: '/home/a:0:0'}\n",
        "must not contain ':'",
        "accounts.users[0].home",
        5,
    ),
    "home with ..": (
        "accounts:\n  users:\n    - {name: app, uid: 1000, home: /home/../etc}\n",
        "must not contain '..'",
        "accounts.users[0].home",
        5,
    ),
    "group name with a group line": (
        'accounts:\n  groups:\n    - {name: "grp:x:0:\\nevil", gid: 2000}\n',
        "is not a valid account name",
        "accounts.groups[0].name",
        5,
    ),
    "group member with a comma": (
        "accounts:\n  groups:\n    - {name: grp, gid: 2000, members: ['a,root']}\n",
        "'a,root' is not a valid account name",
        "accounts.groups[0].members[0]",
        5,
    ),
    "group member twice": (
        "accounts:\n  groups:\n    - {name: grp, gid: 2000, members: [a, a]}\n",
        "member listed more than once: a",
        "accounts.groups[0].members",
        5,
    ),
    "user clashing with root": (
        "accounts:\n  users:\n    - {name: app, uid: 0}\n",
        "uid 0 is already 'root''s",
        "accounts.users[0].uid",
        5,
    ),
    "user named nonroot": (
        "accounts:\n  users:\n    - {name: nonroot, uid: 1000}\n",
        "'nonroot' is already an account",
        "accounts.users[0].name",
        5,
    ),
    "two users with one uid": (
        "accounts:\n  users:\n    - {name: a, uid: 1000}\n    - {name: b, uid: 1000}\n",
        "uid 1000 is already 'a''s",
        "accounts.users[1].uid",
        6,
    ),
    "group clashing with nogroup": (
        "accounts:\n  groups:\n    - {name: g, gid: 65534}\n",
        "gid 65534 is already 'nogroup''s",
        "accounts.groups[0].gid",
        5,
    ),
    "run-as in non-ASCII digits": (
        "accounts:\n  run-as: '\u0661\u0662'\n",
        "is not a valid account name",
        "accounts.run-as",
        4,
    ),
    "unknown test user": (
        "tests:\n  - {name: t, command: [/x], user: ghost}\n",
        "user 'ghost' is not defined",
        "tests[0].user",
        4,
    ),
    "env key with =": (
        "env:\n  A=B: c\n",
        "environment variable name 'A=B' must not contain '='",
        "env.A=B",
        4,
    ),
    "empty env key": ("env:\n  '': c\n", "must not be empty", "env.", 4),
    "env key with NUL": (
        'env:\n  "A\\0B": c\n',
        "contains the control character U+0000",
        "env.A\x00B",
        4,
    ),
    "env value with NUL": (
        'env:\n  A: "x\\0y"\n',
        "environment value 'x\\x00y' contains a NUL",
        "env.A",
        4,
    ),
    "env value not a string": ("env:\n  PORT: 8080\n", "valid string", "env.PORT", 4),
    "variant env key": (
        "variants:\n  dev:\n    env: {'': x}\n",
        "must not be empty",
        "variants.dev.env.",
        5,
    ),
    "relative workdir": ("workdir: app\n", "workdir 'app' must be absolute", "workdir", 3),
    "workdir with ..": ("workdir: /app/../etc\n", "must not contain '..'", "workdir", 3),
    "workdir not normalised": (
        "workdir: /app//data/\n",
        "is not normalised (write '/app/data')",
        "workdir",
        3,
    ),
    "annotation key with a space": (
        "annotations:\n  'a b': c\n",
        "annotation key 'a b' must be non-empty, without whitespace",
        "annotations.a b",
        4,
    ),
    "annotation value with NUL": (
        'annotations:\n  a: "\\0"\n',
        "contains a NUL",
        "annotations.a",
        4,
    ),
    "entrypoint argument with NUL": (
        'entrypoint: [/bin/app, "a\\0b"]\n',
        "argument 'a\\x00b' contains a NUL",
        "entrypoint[1]",
        3,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_field_is_refused_at_its_position(case: str) -> None:
    assert_refused_at(CASES[case])


def test_the_account_injection_never_reaches_passwd() -> None:
    """The campaign's spec: refused, so no image gets the extra uid-0 line."""
    body = CASES["shell with a passwd line"][0]
    with pytest.raises(SpecError, match="shell"):
        parse_spec((HEAD + body).encode(), Path("demo.yaml"))


def test_valid_accounts_still_reach_passwd_and_group() -> None:
    spec = parse_spec(
        (
            HEAD + "accounts:\n"
            "  users:\n"
            "    - {name: app, uid: 1000, home: /var/lib/app, shell: /bin/sh}\n"
            "  groups:\n"
            "    - {name: staff, gid: 2000, members: [app, nonroot]}\n"
            "  run-as: app\n"
            "env: {LANG: C.UTF-8, EMPTY: ''}\n"
            "workdir: /var/lib/app\n"
        ).encode(),
        Path("demo.yaml"),
    ).spec
    inp = assembly_input(spec, variant="runtime", arch="amd64", packages=(), source_date_epoch=0)
    plan = accounts(Plan.empty(), inp)
    passwd = (plan.read("etc/passwd") or b"").decode().splitlines()
    group = (plan.read("etc/group") or b"").decode().splitlines()
    assert "app:x:1000:1000:app:/var/lib/app:/bin/sh" in passwd
    assert "staff:x:2000:app,nonroot" in group
    assert [line.split(":")[2] for line in passwd].count("0") == 1


@pytest.mark.parametrize(
    ("user", "group"),
    [
        (User("app", 1000, 1000, "/home/app", "/bin/sh\nevil::0:0::/:/bin/sh", "app"), None),
        (User("app", 1000, 1000, "/home/app", "/bin/sh", "a\x00b"), None),
        (None, Group("grp", 2000, ("a\nevil:x:0:",))),
        (None, Group("grp", 2000, ("a,root",))),
    ],
)
def test_assembly_refuses_account_fields_that_would_add_lines(
    user: User | None, group: Group | None
) -> None:
    # assembly has callers besides the spec model: it checks every field it writes
    inp = make_input(
        (),
        users=(user,) if user else (),
        groups=(group,) if group else (Group("app", 1000),),
    )
    with pytest.raises(InputError, match="accounts:"):
        accounts(Plan.empty(), inp)
