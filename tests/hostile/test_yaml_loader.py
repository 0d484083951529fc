"""Hostile YAML (issue 13, items 4 and 5): every reader refuses it with exit 2 and a position.

One loader (``kiln.yamldoc.load_yaml``) reads specs, recipes, policy files, kiln's config
and compat declarations; these cases go through each reader, and through the CLI for the
three commands the campaign used (``kiln lock``, ``kiln package build``, ``kiln verify``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kiln.attest.policy_file import parse_policy_file
from kiln.cli.main import main
from kiln.debian.sources import load_mirror_overrides
from kiln.errors import InputError, KilnError
from kiln.recipes.load import RecipeError, parse_recipe
from kiln.spec.load import SpecError, parse_spec
from kiln.yamldoc import MAX_DEPTH

SPEC_HEAD = "name: demo\npackages: [base-files]\n"
RECIPE_HEAD = "source: jq\nversion: 1.7.1-6\n"
POLICY_HEAD = "requireAttestations: [spdx]\n"


def alias_bomb(levels: int) -> str:
    """The billion-laughs document: each level is nine aliases of the one before."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


# (body appended to a valid document, what the message says, line of the problem)
HOSTILE: dict[str, tuple[str, str, int]] = {
    "alias bomb": (alias_bomb(6), "anchors (&l0) are not accepted", 1),
    "alias": ("x: *nowhere\n", "aliases (*nowhere) are not accepted", 1),
    "flow nesting 600": ("x: " + "[" * 600 + "]" * 600 + "\n", f"more than {MAX_DEPTH}", 1),
    "block nesting 500": (
        "".join(f"{'  ' * i}k:\n" for i in range(500)) + "  " * 500 + "v\n",
        f"more than {MAX_DEPTH}",
        MAX_DEPTH,  # the key whose value is one level too deep
    ),
    "!!int": ("x: !!int debian-13\n", "explicit tags (!!int)", 1),
    "!!float": ("x: !!float abc\n", "explicit tags (!!float)", 1),
    "!!bool": ("x: !!bool maybe\n", "explicit tags (!!bool)", 1),
    "!!set": ("x: !!set {a, b}\n", "explicit tags (!!set)", 1),
    "!!omap": ("x: !!omap [a: 1, a: 2]\n", "explicit tags (!!omap)", 1),
    "local tag": ("x: !python/object foo\n", "explicit tags (!python/object)", 1),
    "NUL": ("x: a\x00b\n", "non-printable character U+0000", 1),
    "bell": ("x: a\x07b\n", "non-printable character U+0007", 1),
    "NEL": ("x: a\x85b\n", "non-printable character U+0085", 1),
    "line separator": ("x: a\u2028b\n", "non-printable character U+2028", 1),
    "mapping as key": ("{a: 1}: 2\n", "mapping keys must be text", 1),
    "list as key": ("? [a, b]\n: 2\n", "mapping keys must be text", 1),
    "integer key": ("1: a\n", "mapping key '1' is not text", 1),
    "null key": ("~: a\n", "is not text", 1),
    "merge key": ("x: {<<: {a: 1}}\n", "merge keys (<<) are not accepted", 1),
    "bad date": ("x: 2001-13-45\n", "'2001-13-45' reads as a date", 1),
    "huge number": ("x: " + "9" * 5000 + "\n", "a number of 5000 characters", 1),
    "lone surrogate": ('x: "a\\ud800"\n', "lone surrogate", 1),
    "lone surrogate key": ('"\\udc00": 1\n', "lone surrogate", 1),
}


def _spec(body: str) -> None:
    parse_spec((SPEC_HEAD + body).encode(), Path("hostile.yaml"))


def _recipe(body: str) -> None:
    parse_recipe((RECIPE_HEAD + body).encode(), Path("jq.yaml"), base_dir=Path("recipes"))


def _policy(body: str) -> None:
    parse_policy_file((POLICY_HEAD + body).encode(), Path("policy.yaml"))


READERS: dict[str, tuple[Callable[[str], None], type[InputError], int]] = {
    "spec": (_spec, SpecError, 2),
    "recipe": (_recipe, RecipeError, 2),
    "policy": (_policy, InputError, 1),
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_each_reader_refuses_hostile_yaml_at_its_position(reader: str, case: str) -> None:
    read, error, head_lines = READERS[reader]
    body, message, line = HOSTILE[case]
    with pytest.raises(error) as caught:
        read(body)
    assert message in caught.value.message
    assert caught.value.location is not None
    assert caught.value.location.line == head_lines + line


def test_directives_are_refused() -> None:
    # %YAML 1.1 would turn `yes` into a boolean and 0755 into 493
    with pytest.raises(SpecError, match="directives") as caught:
        parse_spec(b"%YAML 1.1\n---\n" + SPEC_HEAD.encode(), Path("s.yaml"))
    assert caught.value.location is not None
    assert caught.value.location.line == 2  # the `---` the directive applies to


def test_a_full_alias_bomb_is_refused_at_the_first_anchor() -> None:
    # 9 levels of 9 aliases: 409 bytes that expanded to 2.8 GB before
    with pytest.raises(SpecError, match="anchors") as caught:
        _spec(alias_bomb(9))
    assert str(caught.value).startswith("hostile.yaml:3:")


def test_a_surrogate_pair_escape_is_one_character() -> None:
    # JSON writes U+1F600 as "\ud83d\ude00"; a policy or spec written by json.dumps holds it
    spec = parse_spec(SPEC_HEAD.encode() + b'description: "\\ud83d\\ude00"\n', Path("s.yaml"))
    assert spec.spec.description == "\U0001f600"


def test_not_utf8_names_the_line() -> None:
    with pytest.raises(SpecError, match="not UTF-8") as caught:
        parse_spec(SPEC_HEAD.encode() + b"x: \xff\n", Path("s.yaml"))
    assert caught.value.location is not None
    assert caught.value.location.line == 3


def test_flow_nesting_is_refused_as_it_is_scanned() -> None:
    # Not after the scanner's look-ahead for simple keys, which costs seconds at 1,000
    # levels on one line: the unclosed quote beyond the limit is never reached.
    with pytest.raises(SpecError, match=f"nested more than {MAX_DEPTH}") as caught:
        _spec("x: " + "[" * 1000 + '"never closed\n')
    assert str(caught.value).startswith(f"hostile.yaml:3:{4 + MAX_DEPTH}:")


def test_nesting_within_the_limit_still_reads() -> None:
    # the refusal is about depth, not about nesting as such
    body = "x: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + "\n"
    with pytest.raises(SpecError, match="unknown field 'x'"):
        _spec(body)


def test_the_kiln_config_file_uses_the_same_loader(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("mirrors: &m\n  debian: https://mirror.invalid/debian\nother: *m\n")
    with pytest.raises(InputError, match="anchors") as caught:
        load_mirror_overrides(config)
    assert str(caught.value).startswith(f"{config}:1:")


# ------------------------------------------------------------------- through the CLI


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    "case", ["alias bomb", "!!bool", "NUL", "mapping as key", "flow nesting 600"]
)
def test_kiln_lock_exits_2_on_a_hostile_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    spec = tmp_path / "hostile.yaml"
    spec.write_text(SPEC_HEAD + HOSTILE[case][0])
    code, err = _run(["lock", "--check", str(spec)], capsys)
    assert code == 2
    assert f"{spec}:" in err
    assert HOSTILE[case][1] in err
    assert "Traceback" not in err


@pytest.mark.parametrize("case", ["alias bomb", "!!float", "NUL", "block nesting 500"])
def test_kiln_package_build_exits_2_on_a_hostile_recipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    recipe = tmp_path / "jq.yaml"
    recipe.write_text(RECIPE_HEAD + HOSTILE[case][0])
    code, err = _run(["package", "build", str(recipe), "--output", str(tmp_path / "out")], capsys)
    assert code == 2
    assert f"{recipe}:" in err
    assert HOSTILE[case][1] in err


@pytest.mark.parametrize("case", ["alias bomb", "!!set", "list as key", "bell"])
def test_kiln_verify_exits_2_on_a_hostile_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    key = tmp_path / "kiln.pub"
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    key.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_HEAD + HOSTILE[case][0])
    ref = "127.0.0.1:9/kiln/none:1"
    code, err = _run(["verify", ref, "--key", str(key), "--policy", str(policy)], capsys)
    assert code == 2
    assert f"{policy}:" in err
    assert HOSTILE[case][1] in err


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_document_ruamel_yaml_trips_on_is_an_input_error(reader: str) -> None:
    # found by the long fuzz run: an AssertionError inside ruamel.yaml's scanner
    read, error, _ = READERS[reader]
    with pytest.raises(error, match=r"ruamel\.yaml cannot read this document"):
        read("a:\n  # c\n  |  # c\n")


def test_every_refusal_is_a_kiln_error() -> None:
    for body, _, _ in HOSTILE.values():
        for read, _, _ in READERS.values():
            with pytest.raises(KilnError):
                read(body)
