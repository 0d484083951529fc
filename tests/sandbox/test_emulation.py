"""Image tests of another architecture run through qemu-user, in a private binfmt_misc.

The unit tests check how a command is wrapped; the network tests build real arm64
images (base, and redis for a service probed on its port) and run their own tests on
this machine, as `kiln publish` does before it attests a platform's test report.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
from pathlib import Path

import pytest

from fixtures.catalog import staged_spec
from kiln.cli.main import main
from kiln.errors import EnvironmentProblem
from kiln.isolation.emulation import (
    SLOWDOWN,
    USERNS_HELPER,
    binfmt_rule,
    emulated,
    needs_emulation,
)


def test_a_native_command_is_left_alone() -> None:
    assert not needs_emulation("amd64", "x86_64")
    assert binfmt_rule("amd64", purpose="x", machine="x86_64") is None
    if platform.machine() == "x86_64":
        assert emulated(["bwrap", "--", "/bin/true"], "amd64", purpose="x") == [
            "bwrap",
            "--",
            "/bin/true",
        ]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="checks emulation of arm64 on amd64")
def test_a_foreign_command_runs_under_the_namespace_helper_with_qemu() -> None:
    if shutil.which("qemu-aarch64-static") is None:
        pytest.skip("qemu-user-static is not installed")
    wrapped = emulated(["bwrap", "--", "/bin/true"], "arm64", purpose="testing")
    assert wrapped[:3] == [sys.executable, *USERNS_HELPER]
    rule = wrapped[wrapped.index("--binfmt") + 1]
    assert rule.startswith(":kiln-aarch64:M::\\x7fELF\\x02")
    assert rule.endswith(f":{shutil.which('qemu-aarch64-static')}:F")
    assert wrapped[-3:] == ["bwrap", "--", "/bin/true"]


def test_a_missing_emulator_is_an_environment_error_naming_the_purpose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no qemu anywhere
    with pytest.raises(EnvironmentProblem) as caught:
        binfmt_rule("arm64", purpose="testing the arm64 image base", machine="x86_64")
    assert "testing the arm64 image base needs qemu-aarch64-static" in str(caught.value)
    assert "qemu-user-static" in (caught.value.hint or "")
    with pytest.raises(EnvironmentProblem, match="cannot run s390x programs"):
        binfmt_rule("s390x", purpose="testing", machine="x86_64")


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.skipif(platform.machine() != "x86_64", reason="emulates arm64 on amd64")
@pytest.mark.parametrize("name", ["base", "redis"])
def test_arm64_images_pass_their_own_tests_under_emulation(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("qemu-aarch64-static") is None or shutil.which("bwrap") is None:
        pytest.skip("qemu-user-static or bubblewrap is not installed")
    spec = staged_spec(name, tmp_path / "specs")
    out = tmp_path / "out"
    argv = ["build", str(spec), "--refresh", "--arch", "arm64", "--output", str(out)]
    assert main([*argv, "--variant", "runtime"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    code = main(["test", str(out / name), "--arch", "arm64"])
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    report = json.loads((out / name / "ctrf-report-arm64.json").read_text())
    assert report["results"]["environment"]["extra"]["arch"] == "arm64"
    summary = report["results"]["summary"]
    assert summary["tests"] > 0
    assert summary["passed"] == summary["tests"]
    names = {t["name"] for t in report["results"]["tests"]}
    if name == "base":  # the arm64 dynamic loader itself ran
        assert "dynamic loader runs" in names
    else:  # a service started under emulation and answered its probe on the port
        assert "answers PING over a socket" in names


def test_a_tests_timeout_is_stretched_under_emulation_only() -> None:
    """node-dev's npm test took over its 60 s under qemu: slow, not failing."""
    from kiln.assemble.model import ImageTest
    from kiln.sandbox.runner import timeout_for

    test = ImageTest(name="npm ci", command=("/bin/true",), timeout=60)
    native = "arm64" if platform.machine() == "aarch64" else "amd64"
    foreign = "amd64" if native == "arm64" else "arm64"
    assert timeout_for(test, native) == 60
    assert timeout_for(test, foreign) == 60 * SLOWDOWN
