"""Running images in bubblewrap, and ``kiln test`` with its CTRF report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from assemble.helpers import make_input, member, pkg
from kiln.assemble import ImageTest, build_image
from kiln.assemble.fs import Plan, file_entry
from kiln.assemble.harden import harden
from kiln.cli.buildview import hardening_table
from kiln.cli.main import main
from kiln.errors import EnvironmentProblem
from kiln.sandbox import (
    bwrap_argv,
    parse_user,
    resolve_image,
    run_in_rootfs,
    unpack_image,
)

# The required core of the CTRF schema (https://ctrf.io), for validating our reports.
CTRF_SCHEMA = {
    "type": "object",
    "required": ["results"],
    "properties": {
        "results": {
            "type": "object",
            "required": ["tool", "summary", "tests"],
            "properties": {
                "tool": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                },
                "summary": {
                    "type": "object",
                    "required": [
                        "tests",
                        "passed",
                        "failed",
                        "pending",
                        "skipped",
                        "other",
                        "start",
                        "stop",
                    ],
                    "properties": {
                        k: {"type": "integer"}
                        for k in (
                            "tests",
                            "passed",
                            "failed",
                            "pending",
                            "skipped",
                            "other",
                            "start",
                            "stop",
                        )
                    },
                },
                "tests": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "status", "duration"],
                        "properties": {
                            "name": {"type": "string"},
                            "status": {"enum": ["passed", "failed", "skipped", "pending", "other"]},
                            "duration": {"type": "number"},
                            "message": {"type": "string"},
                            "stdout": {"type": "array", "items": {"type": "string"}},
                            "stderr": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            },
        }
    },
}


def _need_bwrap() -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")


def _layout(tmp_path: Path, hello: bytes, tests: tuple[ImageTest, ...]) -> Path:
    hello_pkg = pkg("hello", member("usr/bin/hello", content=hello, mode=0o755))
    inp = make_input(
        (hello_pkg,),
        env=(("PATH", "/usr/bin"), ("GREETING", "hi")),
        workdir="/home/nonroot",
        tests=tests,
    )
    return build_image([inp], tmp_path / "out" / "tiny").layout


def test_bwrap_command_line_is_locked_down() -> None:
    argv = bwrap_argv(
        Path("/r"), ["/bin/x", "-v"], uid=65532, gid=65532, env={"A": "1"}, workdir="/w"
    )
    assert argv[:2] == ["bwrap", "--unshare-all"]
    assert "--share-net" not in argv
    assert argv[argv.index("--ro-bind") + 1 : argv.index("--ro-bind") + 3] == ["/r", "/"]
    assert argv[argv.index("--uid") + 1] == "65532"
    assert "--clearenv" in argv
    assert argv[argv.index("--chdir") + 1] == "/w"
    assert argv[-3:] == ["--", "/bin/x", "-v"]
    assert "PATH" in argv  # a default PATH when the image sets none
    networked = bwrap_argv(Path("/r"), ["/x"], uid=0, gid=0, env={}, network=True)
    assert "--share-net" in networked


def test_parse_user(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("app:x:1000:1001::/:/nologin\n")
    (tmp_path / "etc/group").write_text("staff:x:50:\n")
    assert parse_user("65532:65532") == (65532, 65532)
    assert parse_user("7") == (7, 7)
    assert parse_user("app", tmp_path) == (1000, 1001)
    assert parse_user("app:staff", tmp_path) == (1000, 50)
    assert parse_user("") == (0, 0)
    with pytest.raises(Exception, match="'ghost' is not in the image's /etc/passwd"):
        parse_user("ghost", tmp_path)


def test_the_static_binary_runs_as_the_image_user(tmp_path: Path, static_hello: bytes) -> None:
    _need_bwrap()
    layout = _layout(tmp_path, static_hello, ())
    image = resolve_image(layout, arch="amd64")
    rootfs = unpack_image(image, tmp_path / "rootfs").rootfs
    result = run_in_rootfs(
        rootfs, ["/usr/bin/hello", "x"], uid=65532, gid=65532, env=dict(image.config.env)
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["hello from kiln uid=65532 gid=65532", "arg:x"]
    failing = run_in_rootfs(rootfs, ["/usr/bin/hello", "fail"], uid=0, gid=0, env={})
    assert failing.exit_code == 3
    missing = run_in_rootfs(rootfs, ["/bin/sh", "-c", "true"], uid=0, gid=0, env={})
    assert missing.exit_code != 0  # no shell in a runtime image
    slow = run_in_rootfs(rootfs, ["/usr/bin/hello", "sleep"], uid=0, gid=0, env={}, timeout=0.5)
    assert slow.timed_out
    assert slow.exit_code == -1


def test_kiln_test_passes_and_writes_ctrf(
    tmp_path: Path, static_hello: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    _need_bwrap()
    tests = (
        ImageTest("greets as nonroot", ("/usr/bin/hello",), stdout_pattern="uid=65532 gid=65532$"),
        ImageTest("exit code", ("/usr/bin/hello", "fail"), exit_code=3),
        ImageTest("as root", ("/usr/bin/hello",), user="0:0", stdout_pattern="uid=0 "),
    )
    layout = _layout(tmp_path, static_hello, tests)
    assert main(["test", str(layout), "--arch", "amd64"]) == 0
    report = json.loads((layout / "ctrf-report.json").read_text())
    jsonschema.validate(report, CTRF_SCHEMA)
    summary = report["results"]["summary"]
    assert (summary["tests"], summary["passed"], summary["failed"]) == (3, 3, 0)
    assert report["results"]["tool"]["name"] == "kiln"
    assert "greets as nonroot" in capsys.readouterr().out


def test_kiln_test_reports_a_failure_with_command_exit_code_and_output(
    tmp_path: Path, static_hello: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    _need_bwrap()
    tests = (
        ImageTest("wrong greeting", ("/usr/bin/hello", "extra"), stdout_pattern="^bonjour"),
        ImageTest("fine", ("/usr/bin/hello",)),
    )
    layout = _layout(tmp_path, static_hello, tests)
    assert main(["test", str(layout), "--arch", "amd64"]) == 1
    err = capsys.readouterr().err
    assert "FAILED wrong greeting: stdout does not match '^bonjour'" in err
    assert "command: /usr/bin/hello extra" in err
    assert "exit code: 0" in err
    assert "arg:extra" in err  # the last lines of output
    report = json.loads((layout / "ctrf-report.json").read_text())
    jsonschema.validate(report, CTRF_SCHEMA)
    statuses = [t["status"] for t in report["results"]["tests"]]
    assert statuses == ["failed", "passed"]


def test_a_sandbox_that_cannot_start_is_an_environment_problem(tmp_path: Path) -> None:
    _need_bwrap()
    with pytest.raises(EnvironmentProblem, match="bubblewrap could not set up the sandbox"):
        run_in_rootfs(tmp_path / "missing", ["/x"], uid=0, gid=0, env={})


def test_hardening_table_renders(static_hello: bytes) -> None:
    plan = Plan.empty().with_entries(file_entry("usr/bin/hello", static_hello, mode=0o755))
    _, report = harden(plan, make_input(()))
    console = Console(record=True, width=200)
    console.print(hardening_table([report]))
    text = console.export_text()
    assert "amd64" in text
    assert "1/1" in text  # PIE executables


def test_kiln_test_finds_the_layout_of_a_spec(
    tmp_path: Path, static_hello: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    _need_bwrap()
    tests = (ImageTest("greets", ("/usr/bin/hello",), stdout_pattern="hello"),)
    layout = _layout(tmp_path, static_hello, tests)  # out/tiny
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\npackages: [hello]\n")
    assert main(["test", str(spec), "--output", str(layout.parent), "--arch", "amd64"]) == 0
    assert (layout / "ctrf-report.json").is_file()
    assert main(["test", str(spec), "--output", str(tmp_path / "nowhere")]) == 2
    assert "no built layout for image 'tiny'" in capsys.readouterr().err


def test_kiln_test_on_something_that_is_not_an_image(tmp_path: Path) -> None:
    assert main(["test", str(tmp_path)]) == 2
