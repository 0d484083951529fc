"""Run an image's tests in the sandbox and report them in CTRF.

Tests are the ones kiln stored in the image at build time (/usr/lib/kiln/image.json),
so a layout alone is enough to test it. Each test runs its command directly (not through
the entrypoint) as the image's user, with the image's env and working directory, unless
the test overrides them. The report follows the Common Test Report Format
(https://ctrf.io: ``results.tool``, ``summary``, ``tests[]`` with name/status/duration).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import kiln
from kiln.assemble.model import ImageTest, Probe
from kiln.errors import InputError
from kiln.fileio import atomic_write
from kiln.isolation.emulation import SLOWDOWN, needs_emulation
from kiln.sandbox.bwrap import RunResult, parse_user, run_in_rootfs, run_service_in_rootfs
from kiln.sandbox.probe import EXIT_MATCHED, EXIT_MISMATCH, EXIT_NO_SERVICE
from kiln.sandbox.unpack import (
    UnpackedImage,
    read_embedded_facts,
    remove_rootfs,
    resolve_image,
    unpack_image,
)

Status = Literal["passed", "failed", "skipped", "pending", "other"]
TAIL_LINES = 20


@dataclass(frozen=True)
class TestOutcome:
    test: ImageTest
    status: Status
    message: str
    result: RunResult | None
    start_ms: int
    stop_ms: int


def tests_of(unpacked: UnpackedImage) -> tuple[ImageTest, ...]:
    facts = read_embedded_facts(unpacked.rootfs)
    if facts is None:
        return ()
    raw = facts.get("tests") or []
    if not isinstance(raw, list):
        raise InputError(f"{unpacked.rootfs}/usr/lib/kiln/image.json: 'tests' is not a list")
    return tuple(ImageTest.from_json(t, f"image.json tests[{i}]") for i, t in enumerate(raw))


def _service_verdict(test: ImageTest, probe: Probe, result: RunResult) -> str:
    """Why a service test failed ("" when its probe got the expected answer)."""
    where = f"127.0.0.1:{probe.port}"
    exited = "" if result.exit_code == -1 else f" (the service exited with code {result.exit_code})"
    if result.probe_exit == EXIT_MATCHED:
        return ""
    if result.probe_exit == EXIT_MISMATCH:
        return f"the answer on {where} does not match {probe.expect!r}{exited}"
    if exited:  # whatever the probe then said (nsenter finds no sandbox left to enter)
        return f"the service exited with code {result.exit_code} before answering on {where}"
    if result.probe_exit == EXIT_NO_SERVICE:
        return f"nothing answered on {where} within {result.duration:.0f}s"
    return f"the probe of {where} failed (exit {result.probe_exit}): {result.probe_output[-300:]}"


def _verdict(test: ImageTest, result: RunResult) -> tuple[Status, str]:
    if result.timed_out:
        return "failed", f"timed out after {result.duration:.0f}s"
    if test.probe is not None:
        why = _service_verdict(test, test.probe, result)
        if why:
            return "failed", why
    elif result.exit_code != test.exit_code:
        return "failed", f"exit code {result.exit_code}, expected {test.exit_code}"
    for label, pattern, text in (
        ("stdout", test.stdout_pattern, result.stdout),
        ("stderr", test.stderr_pattern, result.stderr),
    ):
        if pattern is None:
            continue
        try:
            matched = re.search(pattern, text, re.MULTILINE)
        except re.error as exc:
            return "failed", f"{label} pattern {pattern!r} is not a regular expression: {exc}"
        if not matched:
            return "failed", f"{label} does not match {pattern!r}"
    return "passed", ""


def timeout_for(test: ImageTest, arch: str) -> float:
    """The test's timeout, stretched under emulation (a slow emulator is no failure)."""
    return test.timeout * (SLOWDOWN if needs_emulation(arch) else 1)


def run_test(unpacked: UnpackedImage, test: ImageTest) -> TestOutcome:
    config = unpacked.image.config
    uid, gid = parse_user(test.user or config.user, unpacked.rootfs)
    env = dict(config.env)
    env.update(dict(test.env))
    start = int(time.time() * 1000)
    timeout = timeout_for(test, unpacked.image.arch)
    if test.probe is not None:
        result = run_service_in_rootfs(
            unpacked.rootfs,
            test.command,
            port=test.probe.port,
            expect=test.probe.expect,
            send=test.probe.send,
            uid=uid,
            gid=gid,
            env=env,
            workdir=config.workdir or "/",
            network=test.network,
            timeout=timeout,
            arch=unpacked.image.arch,
        )
    else:
        result = run_in_rootfs(
            unpacked.rootfs,
            test.command,
            uid=uid,
            gid=gid,
            env=env,
            workdir=config.workdir or "/",
            network=test.network,
            timeout=timeout,
            arch=unpacked.image.arch,
        )
    status, message = _verdict(test, result)
    stop = max(start, start + int(result.duration * 1000))
    return TestOutcome(test, status, message, result, start, stop)


def run_tests(unpacked: UnpackedImage, tests: Sequence[ImageTest]) -> list[TestOutcome]:
    return [run_test(unpacked, t) for t in tests]


def run_layout_tests(
    layout: Path, *, arch: str | None = None, tag: str | None = None, workdir: Path | None = None
) -> tuple[UnpackedImage, list[TestOutcome]]:
    """Unpack one platform of a layout into a temporary rootfs and run its tests."""
    image = resolve_image(layout, tag=tag, arch=arch)
    tmp = Path(tempfile.mkdtemp(prefix="kiln-rootfs-", dir=workdir))
    try:
        unpacked = unpack_image(image, tmp / "rootfs")
        outcomes = run_tests(unpacked, tests_of(unpacked))
    finally:
        remove_rootfs(tmp)
    return unpacked, outcomes


def _lines(text: str) -> list[str]:
    return text.splitlines()[-200:]


def ctrf_report(
    outcomes: Sequence[TestOutcome], *, app_name: str, extra: dict[str, object] | None = None
) -> dict[str, object]:
    """A CTRF document for ``outcomes`` (https://ctrf.io/docs/specification/overview)."""
    counts = {
        s: sum(1 for o in outcomes if o.status == s)
        for s in ("passed", "failed", "skipped", "pending", "other")
    }
    start = min((o.start_ms for o in outcomes), default=int(time.time() * 1000))
    stop = max((o.stop_ms for o in outcomes), default=start)
    tests = []
    for o in outcomes:
        item: dict[str, object] = {
            "name": o.test.name,
            "status": o.status,
            "duration": o.stop_ms - o.start_ms,
            "start": o.start_ms,
            "stop": o.stop_ms,
        }
        if o.message:
            item["message"] = o.message
        if o.result is not None:
            item["stdout"] = _lines(o.result.stdout)
            item["stderr"] = _lines(o.result.stderr)
            item["extra"] = {"command": list(o.result.argv), "exit_code": o.result.exit_code}
            if o.test.probe is not None:
                item["extra"]["probe"] = {  # type: ignore[index]
                    **o.test.probe.to_json(),
                    "exit_code": o.result.probe_exit,
                    "answer": _lines(o.result.probe_output),
                }
        tests.append(item)
    environment: dict[str, object] = {"appName": app_name, "osPlatform": "linux"}
    if extra:
        environment["extra"] = extra
    return {
        "reportFormat": "CTRF",
        "specVersion": "0.0.0",
        "results": {
            "tool": {"name": "kiln", "version": kiln.__version__},
            "summary": {"tests": len(outcomes), **counts, "start": start, "stop": stop},
            "tests": tests,
            "environment": environment,
        },
    }


def write_ctrf(path: Path, report: dict[str, object]) -> None:
    atomic_write(path, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())


def failure_text(outcome: TestOutcome, lines: int = TAIL_LINES) -> str:
    """What a failing test prints: the command, the exit code and the output's last lines."""
    text = [f"FAILED {outcome.test.name}: {outcome.message}"]
    if outcome.result is not None:
        text.append(f"  command: {' '.join(outcome.result.argv)}")
        text.append(f"  exit code: {outcome.result.exit_code}")
        streams = [("stdout", outcome.result.stdout), ("stderr", outcome.result.stderr)]
        if outcome.test.probe is not None:
            streams.append(("the probe's answer", outcome.result.probe_output))
        for label, stream in streams:
            tail = stream.splitlines()[-lines:]
            if tail:
                text.append(f"  last {len(tail)} line(s) of {label}:")
                text.extend(f"    {line}" for line in tail)
    return "\n".join(text)
