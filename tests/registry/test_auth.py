"""Credentials (env, Docker config.json) and WWW-Authenticate challenge parsing."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from kiln.errors import InputError
from kiln.registry import (
    Credentials,
    DockerConfigCredentials,
    EnvCredentials,
    default_credentials,
    docker_config_path,
    parse_challenge,
)


def test_bearer_challenge_with_quoted_and_escaped_params() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.test/token",service="reg \\"one\\"",'
        'scope="repository:a/b:pull,push", error=insufficient_scope'
    )
    assert challenge is not None
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.test/token",
        "service": 'reg "one"',
        "scope": "repository:a/b:pull,push",
        "error": "insufficient_scope",
    }


def test_basic_and_empty_challenges() -> None:
    basic = parse_challenge('Basic realm="kiln-test"')
    assert basic is not None
    assert basic.scheme == "basic"
    assert basic.params == {"realm": "kiln-test"}
    assert parse_challenge("") is None


def _config(tmp_path: Path, auths: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": auths, "psFormat": "x", "detachKeys": "ctrl-p"}))
    return path


def test_docker_config_base64_auth_matches_host_forms(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"alice:s3cr:et").decode()
    path = _config(
        tmp_path,
        {
            "https://127.0.0.1:5000/v1/": {"auth": encoded},
            "reg.example.test": {"username": "bob", "password": "pw"},
        },
    )
    source = DockerConfigCredentials(path)
    assert source.lookup("127.0.0.1:5000") == Credentials("alice", "s3cr:et")
    assert source.lookup("REG.example.test") == Credentials("bob", "pw")
    assert source.lookup("127.0.0.1:5001") is None


def test_missing_docker_config_means_anonymous(tmp_path: Path) -> None:
    assert DockerConfigCredentials(tmp_path / "absent.json").lookup("localhost") is None


def test_malformed_docker_config_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "auths": {,\n}')
    with pytest.raises(InputError) as caught:
        DockerConfigCredentials(path).lookup("localhost")
    assert f"{path}:2" in str(caught.value)


def test_docker_config_with_wrong_types_names_the_field(tmp_path: Path) -> None:
    path = _config(tmp_path, {"localhost": {"auth": 5}})
    with pytest.raises(InputError) as caught:
        DockerConfigCredentials(path).lookup("localhost")
    assert "auths.localhost.auth" in str(caught.value)


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("!!!not-base64", "not base64"),
        (base64.b64encode(b"no-colon").decode(), "does not decode to 'user:password'"),
    ],
)
def test_bad_auth_entry_is_a_clear_error(tmp_path: Path, auth: str, expected: str) -> None:
    path = _config(tmp_path, {"localhost": {"auth": auth}})
    with pytest.raises(InputError, match=expected) as caught:
        DockerConfigCredentials(path).lookup("localhost")
    assert "auths.localhost" in str(caught.value)


def test_env_credentials_win_and_must_come_in_pairs(tmp_path: Path) -> None:
    path = _config(tmp_path, {"localhost": {"username": "file", "password": "f"}})
    env = {"KILN_REGISTRY_USERNAME": "envuser", "KILN_REGISTRY_PASSWORD": "e"}
    assert default_credentials(env, docker_config=path).lookup("localhost") == Credentials(
        "envuser", "e"
    )
    assert default_credentials({}, docker_config=path).lookup("localhost") == Credentials(
        "file", "f"
    )
    with pytest.raises(InputError, match="only one of"):
        EnvCredentials({"KILN_REGISTRY_USERNAME": "x"}).lookup("localhost")


def test_docker_config_location_honours_docker_config_env(tmp_path: Path) -> None:
    assert docker_config_path({"DOCKER_CONFIG": str(tmp_path)}) == tmp_path / "config.json"
    assert docker_config_path({}, home=tmp_path) == tmp_path / ".docker" / "config.json"
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {"localhost:1": {"username": "u", "password": "p"}}})
    )
    source = default_credentials({"DOCKER_CONFIG": str(tmp_path)})
    assert source.lookup("localhost:1") == Credentials("u", "p")


def test_credentials_repr_hides_the_password() -> None:
    assert "hunter2" not in repr(Credentials("u", "hunter2"))


def test_podman_auth_file_comes_before_docker_config(tmp_path: Path) -> None:
    docker = _config(tmp_path, {"localhost:1": {"username": "docker", "password": "d"}})
    podman = tmp_path / "run" / "containers" / "auth.json"
    podman.parent.mkdir(parents=True)
    podman.write_text(
        json.dumps({"auths": {"localhost:1": {"username": "podman", "password": "p"}}})
    )
    explicit = tmp_path / "explicit.json"
    explicit.write_text(json.dumps({"auths": {"localhost:2": {"username": "x", "password": "y"}}}))
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run"), "REGISTRY_AUTH_FILE": str(explicit)}
    source = default_credentials(env, docker_config=docker)
    assert source.lookup("localhost:1") == Credentials("podman", "p")
    assert source.lookup("localhost:2") == Credentials("x", "y")
    assert default_credentials({}, docker_config=docker).lookup("localhost:1") == Credentials(
        "docker", "d"
    )


# Credential helpers: the tests install small helper programs that speak the
# docker-credential-helpers protocol (stdin: the registry; stdout: JSON), standing in for
# the OS keychains real helpers talk to, which this machine has none of.


def _helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    program = bin_dir / f"docker-credential-{name}"
    program.write_text(f'#!/bin/sh\n[ "$1" = get ] || exit 3\nread -r server\n{body}\n')
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return program


def _helper_config(tmp_path: Path, **config: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_cred_helper_for_the_registry_wins_over_store_and_auths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _helper(
        tmp_path,
        monkeypatch,
        "ecr",
        'echo "{\\"Username\\":\\"AWS\\",\\"Secret\\":\\"tok-$server\\"}"',
    )
    _helper(tmp_path, monkeypatch, "pass", "echo credentials not found in native keychain; exit 1")
    path = _helper_config(
        tmp_path,
        credHelpers={"reg.example.test": "ecr"},
        credsStore="pass",
        auths={"reg.example.test": {"username": "inline", "password": "x"}},
    )
    source = DockerConfigCredentials(path)
    assert source.lookup("reg.example.test") == Credentials("AWS", "tok-reg.example.test")
    # the store has nothing for this host: the inline entry still answers
    other = _helper_config(
        tmp_path, credsStore="pass", auths={"other.test": {"username": "u", "password": "p"}}
    )
    assert DockerConfigCredentials(other).lookup("other.test") == Credentials("u", "p")
    assert DockerConfigCredentials(other).lookup("none.test") is None


def test_creds_store_answers_for_any_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _helper(
        tmp_path,
        monkeypatch,
        "secretservice",
        'printf \'{"ServerURL":"%s","Username":"alice","Secret":"s3cr:et"}\' "$server"',
    )
    path = _helper_config(tmp_path, credsStore="secretservice")
    assert DockerConfigCredentials(path).lookup("127.0.0.1:5000") == Credentials("alice", "s3cr:et")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("echo 'keychain locked' >&2; exit 2", r"failed for reg\.test \(exit 2\): keychain locked"),
        ("echo not-json", "answered something other than"),
        ('echo \'{"Username":"<token>","Secret":"refresh"}\'', "identity token"),
    ],
)
def test_failing_or_lying_helper_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, expected: str
) -> None:
    _helper(tmp_path, monkeypatch, "bad", body)
    path = _helper_config(tmp_path, credHelpers={"reg.test": "bad"})
    with pytest.raises(InputError, match=expected) as caught:
        DockerConfigCredentials(path).lookup("reg.test")
    assert "credHelpers.reg.test" in str(caught.value)


@pytest.mark.parametrize(
    ("store", "expected"), [("absent-helper", "not on PATH"), ("../../bin/sh", "not a plain name")]
)
def test_missing_or_path_like_helper_is_refused(tmp_path: Path, store: str, expected: str) -> None:
    path = _helper_config(tmp_path, credsStore=store)
    with pytest.raises(InputError, match=expected) as caught:
        DockerConfigCredentials(path).lookup("reg.test")
    assert "credsStore" in str(caught.value)
