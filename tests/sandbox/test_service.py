"""Service tests: kiln starts the command, probes it on the sandbox's loopback, stops it."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from assemble.helpers import compile_static, make_input, member, pkg
from kiln.assemble import ImageTest, Probe, build_image
from kiln.cli.main import main
from kiln.errors import InputError
from kiln.sandbox import resolve_image, run_tests, unpack_image
from kiln.sandbox.probe import EXIT_MATCHED, EXIT_MISMATCH, exchange

# A one-connection TCP server on 127.0.0.1:<argv[1]>: answers "pong <first line>".
# argv[2] == "exit": exits with code 4 before listening.
SERVER_C = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[2], "exit") == 0) return 4;
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1)) { perror("bind"); return 3; }
    printf("listening as uid %d\n", (int)getuid());
    fflush(stdout);
    int c = accept(s, NULL, NULL);
    char buf[256];
    ssize_t n = read(c, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    char out[300];
    int len = snprintf(out, sizeof out, "pong %s", buf);
    if (write(c, out, len) != len) return 5;
    close(c);
    for (;;) pause();
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    for tool in ("gcc", "bwrap", "nsenter"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    try:
        return compile_static(tmp_path_factory.mktemp("server"), SERVER_C)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot build a static binary: {exc.stderr.decode()[-300:]}")


def _layout(tmp_path: Path, binary: bytes, tests: tuple[ImageTest, ...]) -> Path:
    server_pkg = pkg("server", member("usr/bin/server", content=binary, mode=0o755))
    inp = make_input((server_pkg,), env=(("PATH", "/usr/bin"),), tests=tests)
    return build_image([inp], tmp_path / "out" / "svc").layout


def _service(name: str, *args: str, expect: str = "^pong ping", timeout: float = 20) -> ImageTest:
    return ImageTest(
        name,
        ("/usr/bin/server", *args),
        timeout=timeout,
        probe=Probe(port=18080, send="ping\n", expect=expect),
    )


def test_a_service_answers_its_probe_on_a_private_loopback(tmp_path: Path, server: bytes) -> None:
    layout = _layout(tmp_path, server, (_service("pong", "18080"),))
    image = resolve_image(layout, arch="amd64")
    unpacked = unpack_image(image, tmp_path / "rootfs")
    # The host's own 127.0.0.1:18080 is taken: the sandbox has a loopback of its own.
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            taken.bind(("127.0.0.1", 18080))
        except OSError:
            pytest.skip("port 18080 is in use on the host")
        taken.listen()
        [outcome] = run_tests(unpacked, (_service("pong", "18080"),))
    assert outcome.status == "passed", outcome.message
    assert outcome.result is not None
    assert outcome.result.probe_exit == EXIT_MATCHED
    assert outcome.result.probe_output == "pong ping\n"
    assert outcome.result.stdout == "listening as uid 65532\n"  # the image's user
    assert outcome.result.exit_code == -1  # still running: kiln stopped it


def test_kiln_test_reports_service_failures(
    tmp_path: Path, server: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = (
        _service("wrong answer", "18080", expect="^bonjour"),
        _service("exits at once", "18080", "exit", timeout=60),
        _service("fine", "18080"),
    )
    layout = _layout(tmp_path, server, tests)
    assert main(["test", str(layout), "--arch", "amd64"]) == 1
    err = capsys.readouterr().err
    assert "FAILED wrong answer: the answer on 127.0.0.1:18080 does not match '^bonjour'" in err
    assert "pong ping" in err  # the probe's answer is shown
    # kiln stops waiting as soon as the service is gone (well before the test's timeout)
    assert "FAILED exits at once: the service exited with code 4 before answering" in err
    report = json.loads((layout / "ctrf-report.json").read_text())
    tests_out = report["results"]["tests"]
    assert [t["status"] for t in tests_out] == ["failed", "failed", "passed"]
    assert tests_out[0]["extra"]["probe"]["exit_code"] == EXIT_MISMATCH
    # the probe gave up, or found no sandbox left to enter: either way no answer
    assert tests_out[1]["extra"]["probe"]["exit_code"] not in (EXIT_MATCHED, EXIT_MISMATCH)
    assert tests_out[2]["extra"]["probe"]["answer"] == ["pong ping"]


def test_probe_reads_until_the_expected_answer() -> None:
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"+PO")
        right.sendall(b"NG\r\n")
        matched, answer = exchange(left, b"PING\r\n", r"^\+PONG\r$", deadline=time.time() + 10)
        assert right.recv(100) == b"PING\r\n"
    assert matched
    assert answer == b"+PONG\r\n"
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"-ERR nope\r\n")
        right.shutdown(socket.SHUT_WR)
        assert exchange(left, b"", r"^\+PONG", deadline=time.time() + 10) == (
            False,
            b"-ERR nope\r\n",
        )


def test_probe_round_trips_through_image_json_and_hostile_ones_are_refused() -> None:
    test = ImageTest("svc", ("/x",), probe=Probe(port=80, send="GET /\r\n", expect="200"))
    assert ImageTest.from_json(test.to_json(), "t") == test
    assert "probe" not in ImageTest("plain", ("/x",)).to_json()  # older images keep their bytes
    for probe, message in (
        ({"port": 0, "expect": "x"}, "probe port 0 is not 1-65535"),
        ({"port": True, "expect": "x"}, "probe port True"),
        ({"port": 80, "expect": ""}, "probe send/expect must be text"),
        ({"port": 80, "expect": "x", "send": 3}, "probe send/expect must be text"),
        ("80", "probe must be an object"),
    ):
        data = {**ImageTest("svc", ("/x",)).to_json(), "probe": probe}
        with pytest.raises(InputError, match=message):
            ImageTest.from_json(data, "image.json tests[0]")
