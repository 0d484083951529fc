"""Property-based fuzzing of the parsers of kiln's own inputs (issue 13, "keep the campaign").

Specs, recipes, policy files, lock files, Debian versions and Dockerfiles (``kiln
migrate``) are fed random text, random mutations of the real documents in the
repository, and generated structures. Any exception that is not a ``KilnError`` fails
the test, and so does a ``KilnError`` that does not say which file it is about. A spec
the model accepts is also taken through assembly's account and path steps: its
``/etc/passwd`` must keep one line per account, and uid 0 for root alone.

Bounded by the ``ci`` hypothesis profile in ``make test``; ``KILN_FUZZ=long`` (profile
``long``, tests/hostile/conftest.py) runs many more cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from kiln.assemble.fs import Plan
from kiln.assemble.steps import accounts, spec_paths
from kiln.attest.policy_file import parse_policy_file
from kiln.debian.version import compare_versions, parse_version
from kiln.errors import KilnError
from kiln.migrate import catalog_from_specs, migrate, parse_dockerfile
from kiln.pipeline.build import assembly_input
from kiln.recipes.load import parse_recipe
from kiln.resolve.lockfile import parse_lock
from kiln.spec.load import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "images").glob("*.yaml"))
# the smaller ones as seeds for mutation: parsing a large spec's refusal costs the same
SMALL_SPECS = [p for p in SPECS if p.stat().st_size < 4096]
RECIPES_DIR = ROOT / "recipes"
POLICY = (
    "# what an image must prove before it is deployed\n"
    "requireAttestations: [spdx, cyclonedx, test-report]\n"
    "builderIds: [https://kiln.dev/builders/ci/v1]\n"
    "maxAge: 30d\n"
)
LOCKS = sorted((ROOT / "images").glob("*.lock.json"))
DOCKERFILES = sorted((ROOT / "compat").glob("*/Dockerfile"))

# Pieces of YAML syntax (and of what the campaign used) that mutations insert.
YAML_PIECES = [
    "&a ", "*a", "!!int ", "!!float ", "!!bool ", "!!set ", "!!omap ", "!!binary ", "!x ",
    "{", "}", "[", "]", ": ", ":", "- ", "? ", ",", "#", '"', "'", "|", ">", "\n", "  ",
    "\t", "---\n", "...\n", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "<<: ", "~", "null",
    "true", "0o777", "0x1f", "1e400", ".nan", "2001-13-45", "9" * 80, "\\", "\\0", "\\x00",
    "\x00", "\x07", "\x85", "\u2028", "\ufeff", "\U0001f600", "é", "/bin/sh\nevil::0:0::/:/bin/sh",
    "..", "//", "=", "/esc/pwned",
]  # fmt: skip
DOCKER_PIECES = [
    "FROM ", "AS ", "ARG ", "${", "}", "$", "\\\n", "`", "# escape=`\n", "# syntax=x\n",
    "<<EOF\n", "EOF\n", "--platform=", "@sha256:", ":", "/", "\n", " ", "\t", "\r\n",
    "RUN ", "COPY --from=", "\x00", "é", "python:3.13-slim", "node:20", "scratch",
]  # fmt: skip


MAX_DOCUMENT = 16 * 1024  # repeated mutations must not grow documents without bound


def _texts(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@st.composite
def mutated(draw: st.DrawFn, sources: list[str], pieces: list[str]) -> str:
    """A real document with a few random insertions, deletions and line duplications."""
    text = draw(st.sampled_from(sources))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        match draw(st.sampled_from(["insert", "insert", "text", "delete", "repeat"])):
            case "insert":
                text = text[:at] + draw(st.sampled_from(pieces)) + text[at:]
            case "text":
                text = text[:at] + draw(st.text(max_size=8)) + text[at:]
            case "delete":
                text = text[:at] + text[at + draw(st.integers(1, 40)) :]
            case "repeat":
                start = text.rfind("\n", 0, at) + 1
                end = text.find("\n", at)
                line = text[start : end if end >= 0 else len(text)]
                text = text[:start] + (line + "\n") * draw(st.integers(1, 8)) + text[start:]
    return text[:MAX_DOCUMENT]


def expect_kiln_error_only(parse: Callable[[], object], name: str) -> None:
    """Run ``parse``; a refusal must be a KilnError naming ``name`` (else the test fails)."""
    refusal: KilnError | None = None
    try:
        parse()
    except KilnError as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.location is not None, f"{type(refusal).__name__} without a location"
        assert refusal.location.file == name, refusal


def _documents(sources: list[str], pieces: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=400), mutated(sources, pieces))


# -------------------------------------------------------------------------------- specs

SPEC_TEXTS = [_texts(p) for p in SMALL_SPECS]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["/", "/bin/sh", "/etc/passwd", "/esc", "/esc/x", "root", "nonroot", "0"]),
)
_KEYS = st.one_of(
    st.sampled_from(
        ["name", "uid", "gid", "home", "shell", "members", "path", "type", "target",
         "content", "replace", "mode", "run-as", "users", "groups", "PATH", "A=B", ""]
    ),
    st.text(max_size=10),
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=5)),
    max_leaves=20,
)
_USERS = st.lists(
    st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(["app", "root", "node", "_x"]), st.text(max_size=8))},
        optional={
            "uid": st.one_of(st.integers(-1, 70000), _SCALARS),
            "gid": st.integers(0, 70000),
            "home": st.one_of(st.sampled_from(["/home/app", "/", "/a:b", "/a/../b"]), st.text()),
            "shell": st.one_of(
                st.sampled_from(["/bin/sh", "/bin/sh\nx::0:0::/:/bin/sh"]), st.text()
            ),
        },
    ),
    max_size=3,
)
_GROUPS = st.lists(
    st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(["grp", "staff"]), st.text(max_size=8))},
        optional={
            "gid": st.integers(0, 70000),
            "members": st.lists(st.one_of(st.sampled_from(["app", "root"]), st.text(max_size=6))),
        },
    ),
    max_size=3,
)
_PATHS = st.lists(
    st.fixed_dictionaries(
        {
            "path": st.one_of(
                st.sampled_from(
                    ["/esc", "/esc/pwned", "/etc/passwd", "/etc//x/", "/usr/bin/x", "/bin/x"]
                ),
                st.text(max_size=12).map(lambda t: "/" + t),
            ),
            "type": st.sampled_from(["directory", "symlink", "file"]),
        },
        optional={
            "target": st.sampled_from(["/somewhere", "x", "../.."]),
            "content": st.text(max_size=10),
            "replace": st.booleans(),
        },
    ),
    max_size=4,
)
_SPECS = st.fixed_dictionaries(
    {"name": st.just("demo"), "packages": st.just(["base-files"])},
    optional={
        "accounts": st.fixed_dictionaries(
            {}, optional={"users": _USERS, "groups": _GROUPS, "run-as": st.text(max_size=6)}
        ),
        "paths": _PATHS,
        "env": st.dictionaries(st.text(max_size=6), st.one_of(st.text(max_size=6), _SCALARS)),
        "workdir": st.one_of(st.sampled_from(["/app", "/app/../x", "app", "//x"]), st.text()),
        "annotations": st.dictionaries(st.text(max_size=6), st.text(max_size=6)),
        "variants": st.fixed_dictionaries(
            {"dev": st.fixed_dictionaries({}, optional={"paths": _PATHS})}
        ),
        "extra": _VALUES,
    },
)


@given(_documents(SPEC_TEXTS, YAML_PIECES))
@example("a:\n  # c\n  |  # c\n")  # found by the long run: an AssertionError inside ruamel.yaml
def test_fuzz_spec_text(text: str) -> None:
    expect_kiln_error_only(lambda: parse_spec(text.encode(), Path("fuzz.yaml")), "fuzz.yaml")


@given(st.binary(max_size=300))
def test_fuzz_spec_bytes(data: bytes) -> None:
    expect_kiln_error_only(lambda: parse_spec(data, Path("fuzz.yaml")), "fuzz.yaml")


def _passwd_lines(plan: Plan) -> list[list[str]]:
    return [line.split(":") for line in (plan.read("etc/passwd") or b"").decode().splitlines()]


@given(_SPECS)
@example(  # found by the fuzzer: json.dumps writes U+10000 as a \\u surrogate pair
    {"name": "demo", "packages": ["base-files"], "paths": [{"path": "/\U00010000", "type": "file"}]}
)
def test_fuzz_accepted_specs_build_sound_accounts_and_paths(document: dict[str, Any]) -> None:
    """A spec the model accepts assembles without a non-kiln error and without injection."""
    data = json.dumps(document).encode()  # JSON is YAML
    try:
        spec = parse_spec(data, Path("fuzz.yaml")).spec
    except KilnError:
        return
    written = {p.path for p in (*spec.paths, *(v for d in spec.variants.values() for v in d.paths))}
    if written & {"/etc", "/etc/passwd", "/etc/group"}:
        return  # replace: true lets a spec write its own passwd; kiln's is not at stake
    for variant in spec.variant_names():
        inp = assembly_input(spec, variant=variant, arch="amd64", packages=(), source_date_epoch=0)
        try:
            plan = spec_paths(accounts(Plan.empty(), inp), inp)
        except KilnError:
            continue
        passwd = _passwd_lines(plan)
        assert all(len(fields) == 7 for fields in passwd), passwd
        assert len(passwd) == 3 + len(spec.accounts.users), passwd
        assert [f[0] for f in passwd if f[2] == "0"] == ["root"], passwd
        groups = [line.split(":") for line in (plan.read("etc/group") or b"").decode().splitlines()]
        assert all(len(fields) == 4 for fields in groups), groups


# ------------------------------------------------------------------------------ recipes

RECIPE_TEXTS = [_texts(p) for p in sorted(RECIPES_DIR.glob("*.yaml"))]


@given(_documents(RECIPE_TEXTS, YAML_PIECES))
def test_fuzz_recipe_text(text: str) -> None:
    path = RECIPES_DIR / "jq.yaml"  # patches are read below recipes/, as for the real one
    expect_kiln_error_only(
        lambda: parse_recipe(text.encode(), path, base_dir=RECIPES_DIR), str(path)
    )


# ----------------------------------------------------------------------- policy files


@given(
    _documents([POLICY, json.dumps({"requireAttestations": ["spdx"], "maxAge": "1w"})], YAML_PIECES)
)
def test_fuzz_policy_text(text: str) -> None:
    expect_kiln_error_only(lambda: parse_policy_file(text.encode(), Path("p.yaml")), "p.yaml")


@given(
    st.dictionaries(st.sampled_from(["requireAttestations", "builderIds", "maxAge", "x"]), _VALUES)
)
def test_fuzz_policy_structure(document: dict[str, Any]) -> None:
    data = json.dumps(document).encode()
    expect_kiln_error_only(lambda: parse_policy_file(data, Path("p.json")), "p.json")


# --------------------------------------------------------------------------- lock files

LOCK_TEXTS = [_texts(p) for p in LOCKS[:3]]
JSON_PIECES = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    '"',
    "null",
    "1e999",
    "-0",
    "[" * 3000,
    "\\u0000",
    "\x00",
]


@given(_documents(LOCK_TEXTS, JSON_PIECES))
@example("[" * 3000 + "]" * 3000)  # found by the long run: RecursionError in json.loads
def test_fuzz_lock_text(text: str) -> None:
    expect_kiln_error_only(lambda: parse_lock(text.encode(), Path("x.lock.json")), "x.lock.json")


# ------------------------------------------------------------------------------ versions


@given(st.text(max_size=40), st.text(alphabet="0123456789:.-+~abc", max_size=20))
def test_fuzz_versions(text: str, version_like: str) -> None:
    for candidate in (text, version_like):
        try:
            parse_version(candidate)
        except KilnError:
            continue
        assert compare_versions(candidate, candidate) == 0


# --------------------------------------------------------------------------- Dockerfiles

DOCKERFILE_TEXTS = [_texts(p) for p in DOCKERFILES]
CATALOG = catalog_from_specs([load_spec(p) for p in SPECS])


@given(_documents(DOCKERFILE_TEXTS, DOCKER_PIECES))
@example("FROM a\nCOPY --\U0001b800from=b x y\n")  # found by the long run: UnicodeDecodeError
def test_fuzz_dockerfile(text: str) -> None:
    expect_kiln_error_only(lambda: parse_dockerfile(text, "Dockerfile"), "Dockerfile")
    expect_kiln_error_only(
        lambda: migrate(text, CATALOG, "registry.example/kiln", path="Dockerfile"), "Dockerfile"
    )
