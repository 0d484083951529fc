"""Spec tests with a probe (a service and its client) or limited to some architectures."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.assemble import Probe
from kiln.pipeline.build import assembly_input
from kiln.spec import SpecError, parse_spec

SPEC = """\
name: svc
packages: [hello]
tests:
  - name: answers
    command: [/usr/bin/server, --port, "8080"]
    probe: {port: 8080, send: "GET / HTTP/1.0\\r\\n\\r\\n", expect: "^HTTP/1\\\\.1 200"}
  - name: only on arm64
    command: [/usr/lib/ld-linux-aarch64.so.1, --version]
    archs: [arm64]
"""


HEAD = "name: svc\npackages: [hello]\ntests:\n  - name: t\n    command: [/x]\n"


def _parse(text: str) -> object:
    return parse_spec(text.encode(), Path("images/svc.yaml"))


def test_probe_and_archs_reach_the_image_tests() -> None:
    spec = parse_spec(SPEC.encode(), Path("images/svc.yaml")).spec
    amd64 = assembly_input(spec, variant="runtime", arch="amd64", packages=(), source_date_epoch=1)
    arm64 = assembly_input(spec, variant="runtime", arch="arm64", packages=(), source_date_epoch=1)
    assert [t.name for t in amd64.tests] == ["answers"]
    assert [t.name for t in arm64.tests] == ["answers", "only on arm64"]
    assert amd64.tests[0].probe == Probe(
        port=8080, send="GET / HTTP/1.0\r\n\r\n", expect="^HTTP/1\\.1 200"
    )
    assert amd64.tests[0].to_json()["probe"] == {
        "port": 8080,
        "send": "GET / HTTP/1.0\r\n\r\n",
        "expect": "^HTTP/1\\.1 200",
    }


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        ('{port: 0, expect: "x"}', "greater than or equal to 1"),
        ('{port: 70000, expect: "x"}', "less than or equal to 65535"),
        ("{port: 80}", "expect"),
        ('{port: 80, expect: "("}', "not a valid regular expression"),
        ('{port: 80, expect: "x", timeout: 3}', "timeout"),
    ],
)
def test_bad_probes_are_refused(probe: str, message: str) -> None:
    text = f"{HEAD}    probe: {probe}\n"
    with pytest.raises(SpecError, match=message):
        _parse(text)


def test_a_service_test_takes_no_exit_code() -> None:
    text = (
        "name: svc\npackages: [hello]\ntests:\n  - name: t\n    command: [/x]\n"
        '    exit-code: 1\n    probe: {port: 80, expect: "x"}\n'
    )
    with pytest.raises(SpecError, match="judged by its answer; exit-code does not apply"):
        _parse(text)


def test_an_unknown_test_arch_is_refused() -> None:
    text = (
        "name: svc\npackages: [hello]\ntests:\n  - name: t\n    command: [/x]\n    archs: [sparc]\n"
    )
    with pytest.raises(SpecError, match="archs"):
        _parse(text)
