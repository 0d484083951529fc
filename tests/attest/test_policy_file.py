"""The verification policy file: YAML or JSON, every mistake named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kiln.attest import (
    CYCLONEDX_1_6,
    SPDX_2_3,
    BuilderIdAllowed,
    MaxAge,
    RequiredAttestations,
)
from kiln.attest.policy_file import load_policy_file
from kiln.errors import InputError

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


def _write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_yaml_policy_becomes_composable_policies(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "# production\n"
        "requireAttestations: [spdx, https://cyclonedx.org/bom/v1.6]\n"
        "builderIds: [https://kiln.dev/builders/ci/v1]\n"
        "maxAge: 1w2d\n",
    )
    policy = load_policy_file(path).to_policy(now=NOW)
    assert RequiredAttestations((SPDX_2_3, CYCLONEDX_1_6)) in policy.policies
    assert BuilderIdAllowed(frozenset({"https://kiln.dev/builders/ci/v1"})) in policy.policies
    assert MaxAge(dt.timedelta(days=9), NOW) in policy.policies


def test_json_works_too(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"requireAttestations": ["test-report"]}', "policy.json")
    assert load_policy_file(path).require_attestations == ("test-report",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("requireAtestations: [spdx]\n", "policy.yaml:1:1: requireAtestations: unknown field"),
        ("requireAttestations: [sbom]\n", ":1:23: requireAttestations[0]: attestation 'sbom'"),
        ("maxAge: 30 days\n", "duration '30 days' is not like 30d"),
        ("builderIds: []\n", "builderIds"),
        ("- a list\n", "a policy file must be a YAML mapping"),
        ("key: [unclosed\n", "policy.yaml:2:1: invalid YAML"),
    ],
)
def test_policy_file_mistakes(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        load_policy_file(_write(tmp_path, text))
    assert message in str(caught.value)
    assert str(tmp_path / "policy.yaml") in str(caught.value)


def test_a_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read policy file"):
        load_policy_file(tmp_path / "nope.yaml")
