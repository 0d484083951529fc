"""`kiln publish` then `kiln verify` end to end: the signed fixture archive, the real
Debian docker-registry (no referrers API: the tag fallback runs for real), skopeo as a
third-party client."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli.conftest import SPEC, Env
from fixtures.debrepo import DebSpec
from fixtures.registry import FaultProxy, ProxiedRequest, Respond, RunningRegistry, registry
from kiln.attest import TEST_REPORT_CTRF
from kiln.cli.main import main

__all__ = ["registry"]

# The fixture archive has no base-files: the spec writes the os-release SBOMs need.
SPEC_WITH_VERSION = SPEC.replace(
    "name: demo\n",
    "name: demo\nversion-package: python3.13-minimal\n"
    "paths:\n"
    "  - path: /etc/os-release\n"
    "    type: file\n"
    '    content: "ID=debian\\nVERSION_ID=13\\nVERSION_CODENAME=trixie\\n"\n',
)


@pytest.fixture(autouse=True)
def _epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("KILN_KEY_PASSWORD", "correct horse")
    assert main(["keygen", "--out", str(tmp_path / "kiln")]) == 0
    return tmp_path / "kiln.key", tmp_path / "kiln.pub"


def test_publish_then_verify(
    env: Env,
    registry: RunningRegistry,
    keys: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env.spec.write_text(SPEC_WITH_VERSION)
    key, pub = keys
    out = tmp_path / "out"
    destination = f"{registry.host}/kiln-{tmp_path.name[-12:].lower()}"
    args = ["publish", str(env.spec), "--registry", destination, "--key", str(key)]
    assert main([*args, "--output", str(out)]) == 0
    published = capsys.readouterr().out
    assert "3.13.5, 3.13, latest" in published
    assert "3.13.5-dev, 3.13-dev, latest-dev" in published

    # every tag of the convention is pullable, by a third-party client too
    for tag in ("3.13.5", "3.13", "latest", "3.13.5-dev", "3.13-dev", "latest-dev"):
        raw = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{destination}/demo:{tag}"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        assert json.loads(raw)["mediaType"] == "application/vnd.oci.image.index.v1+json"

    required = ["--require", "provenance", "--require", "spdx", "--require", "cyclonedx",
                "--require", "test-report"]  # fmt: skip
    assert main(["verify", f"{destination}/demo:3.13", "--key", str(pub), *required]) == 0
    assert main(["verify", f"{destination}/demo:latest-dev", "--key", str(pub)]) == 0

    # another key: refused
    assert main(["keygen", "--out", str(tmp_path / "other")]) == 0
    capsys.readouterr()
    assert main(["verify", f"{destination}/demo:3.13", "--key", str(tmp_path / "other.pub")]) == 1
    assert "wrong key" in capsys.readouterr().err

    # a warm publish of the same digest, already attested with this key: tags only
    capsys.readouterr()
    assert main([*args, "--output", str(out), "--variant", "runtime"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("published"))
    assert "(0 new image blobs, 0 attestations," in line, line

    # attested by another key only: this key's attestations are added, layers not re-sent
    other = [*args[:-1], str(tmp_path / "other.key"), "--output", str(out), "--variant", "runtime"]
    assert main(other) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("published"))
    # image + 2 platform signatures, provenance, 2 SBOMs and a test report per platform
    assert "(0 new image blobs, 10 attestations," in line, line


def test_publish_refuses_without_a_key(
    env: Env, registry: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["publish", str(env.spec), "--registry", registry.host]) == 2
    assert "--key KEY or --keyless" in capsys.readouterr().err


def test_publish_to_an_unreachable_registry(
    env: Env, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, _ = keys
    env.spec.write_text(SPEC_WITH_VERSION)
    code = main(["publish", str(env.spec), "--registry", "127.0.0.1:9/kiln", "--key", str(key),
                 "--output", str(tmp_path / "out")])  # fmt: skip
    assert code == 3
    assert "127.0.0.1:9" in capsys.readouterr().err


def test_publish_a_version_with_a_plus(
    env: Env,
    registry: RunningRegistry,
    keys: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``20.19.2+dfsg`` (Debian's node) is published as ``20.19.2_dfsg``: no '+' in tags."""
    env.rebuild([DebSpec("nodejs", "20.19.2+dfsg-1+deb13u3", files={"usr/bin/node": b"#!\n"})])
    env.spec.write_text(
        SPEC_WITH_VERSION.replace(
            "version-package: python3.13-minimal", "version-package: nodejs"
        ).replace("  - tzdata\n", "  - tzdata\n  - nodejs\n", 1)
    )
    key, pub = keys
    destination = f"{registry.host}/kiln-{tmp_path.name[-12:].lower()}"
    args = ["publish", str(env.spec), "--registry", destination, "--key", str(key)]
    assert main([*args, "--output", str(tmp_path / "out"), "--variant", "runtime"]) == 0
    assert "as 20.19.2_dfsg, 20.19, latest:" in capsys.readouterr().out
    raw = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{destination}/demo:20.19"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    # the exact upstream version stays in the annotations
    assert json.loads(raw)["annotations"]["org.opencontainers.image.version"] == "20.19.2+dfsg"
    assert main(["verify", f"{destination}/demo:20.19.2_dfsg", "--key", str(pub)]) == 0


def test_publish_failing_before_its_tags_moves_none(
    env: Env,
    registry: RunningRegistry,
    keys: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The referrers tag cannot be written (503 every time): exit 3, and no tag exists."""

    def refuse_referrers_tag(request: ProxiedRequest) -> Respond | None:
        reference = request.path.rsplit("/manifests/", 1)[-1]
        if request.method == "PUT" and reference.startswith("sha256-"):
            return Respond(503, b'{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}')
        return None

    env.spec.write_text(SPEC_WITH_VERSION)
    key, _ = keys
    prefix = f"kiln-{tmp_path.name[-12:].lower()}"
    with FaultProxy(registry.host, request_hook=refuse_referrers_tag) as proxy:
        code = main(["publish", str(env.spec), "--registry", f"{proxy.host}/{prefix}",
                     "--key", str(key), "--output", str(tmp_path / "out"),
                     "--variant", "runtime"])  # fmt: skip
    assert code == 3
    err = capsys.readouterr().err
    assert f"registry {proxy.host}" in err
    assert "answered 503" in err
    assert "no tag was moved: 3.13.5, 3.13, latest" in err
    assert registry.tags(f"{prefix}/demo") == []  # not even the full version


def _platform_digests(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    nested = json.loads((layout / "blobs" / "sha256" / digest).read_text())
    return {m["platform"]["architecture"]: m["digest"] for m in nested["manifests"]}


def test_each_platform_gets_its_own_test_report_and_an_untested_one_none(  # noqa: PLR0917
    env: Env,
    registry: RunningRegistry,
    keys: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Tests ran on amd64 only, yet the report named the arm64 manifest too and
    `kiln verify <arm64 digest> --require test-report` passed (issue 12 item 6)."""
    env.spec.write_text(SPEC_WITH_VERSION)
    key, pub = keys
    out = tmp_path / "out"
    destination = f"{registry.host}/kiln-{tmp_path.name[-12:].lower()}"
    args = ["publish", str(env.spec), "--registry", destination, "--key", str(key)]
    # first as on a machine that cannot run arm64 programs: no emulator anywhere
    with monkeypatch.context() as patch:
        patch.setattr("kiln.isolation.emulation.find_emulator", lambda name: None)
        assert main([*args, "--output", str(out), "--variant", "runtime"]) == 0
    err = capsys.readouterr().err
    assert "linux/arm64 is published without a test report" in err
    assert "qemu-aarch64-static" in err
    digests = _platform_digests(out / "demo")
    require = ["--key", str(pub), "--require", "test-report"]
    assert main(["verify", f"{destination}/demo@{digests['amd64']}", *require]) == 0
    capsys.readouterr()
    assert main(["verify", f"{destination}/demo@{digests['arm64']}", *require]) == 1
    assert f"missing test report attestation ({TEST_REPORT_CTRF}) for {digests['arm64']}" in (
        capsys.readouterr().err
    )
    # the index is not vouched for either: one of its platforms was never tested
    assert main(["verify", f"{destination}/demo:latest", *require]) == 1
    capsys.readouterr()

    # with the emulator: both platforms tested, each report about its own platform
    other = tmp_path / "again"
    registry_path = f"{destination}-2"
    again = ["publish", str(env.spec), "--registry", registry_path, "--key", str(key)]
    assert main([*again, "--output", str(other), "--variant", "runtime"]) == 0
    assert "without a test report" not in capsys.readouterr().err
    for arch, digest in _platform_digests(other / "demo").items():
        assert main(["verify", f"{registry_path}/demo@{digest}", *require]) == 0, arch
    assert main(["verify", f"{registry_path}/demo:latest", *require]) == 0
    reports = sorted(p.name for p in (other / "demo").glob("ctrf-report*.json"))
    assert reports == ["ctrf-report-arm64.json", "ctrf-report.json"]
