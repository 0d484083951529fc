"""The harness's pure parts: cache keys, command lines, comparisons, output checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.compat.containers import Store, run
from kiln.compat.kilnimages import kiln_build_argv, layout_tag
from kiln.compat.model import App, AppDeclaration, StandinSpec
from kiln.compat.probe import Observation
from kiln.compat.runner import Side, _check_output, _compare, build_key
from kiln.compat.standins import import_changes, local_name, mmdebstrap_argv, standin_key
from kiln.debian.distro import get_distro
from kiln.debian.sources import Mirrors
from kiln.oci.layout import LayoutError

MIRRORS = Mirrors("http://mirror.invalid/debian", "http://mirror.invalid/debian-security")
TRIXIE = get_distro("debian-13")


def _standin(**changes: object) -> StandinSpec:
    data: dict[str, object] = {
        "name": "py",
        "refs": ["python:3.13-slim"],
        "kiln": "python-dev",
        "variant": "minbase",
        "packages": ["python3.13"],
        "config": {"env": {"LANG": "C.UTF-8"}, "cmd": ["python3"], "user": "65532"},
    }
    data.update(changes)
    return StandinSpec.model_validate(data)


def test_the_standin_key_follows_every_input() -> None:
    key = standin_key(_standin(), TRIXIE, MIRRORS)
    assert key == standin_key(_standin(), TRIXIE, MIRRORS)
    assert key != standin_key(_standin(packages=["python3.13", "tzdata"]), TRIXIE, MIRRORS)
    assert key != standin_key(_standin(customize="true"), TRIXIE, MIRRORS)
    other = Mirrors("http://other.invalid/debian", MIRRORS.security)
    assert key != standin_key(_standin(), TRIXIE, other)


def test_mmdebstrap_gets_the_three_suites_of_the_mirrors(tmp_path: Path) -> None:
    argv = mmdebstrap_argv(_standin(), TRIXIE, MIRRORS, tmp_path / "hook.sh", tmp_path / "o.tar")
    assert argv[:3] == ["mmdebstrap", "--variant=minbase", "--include=python3.13"]
    assert argv[-3:] == [
        "deb http://mirror.invalid/debian trixie main",
        "deb http://mirror.invalid/debian trixie-updates main",
        "deb http://mirror.invalid/debian-security trixie-security main",
    ]
    assert f'--customize-hook=sh {tmp_path / "hook.sh"} "$1"' in argv
    extract = mmdebstrap_argv(_standin(variant="extract"), TRIXIE, MIRRORS, tmp_path, tmp_path)
    assert any(a.startswith("--extract-hook=sh ") for a in extract)


def test_import_changes_carry_the_image_config_and_the_key() -> None:
    changes = import_changes(_standin(), "abc")
    assert changes == [
        "LABEL io.kiln.compat.standin-key=abc",
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
        "USER 65532",
    ]
    assert local_name("python:3.13-slim") == "localhost/python:3.13-slim"


def test_the_build_key_follows_the_dockerfile_and_the_context(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY app.py /\n")
    (tmp_path / "app.py").write_text("print(1)\n")
    store = Store.under(tmp_path / "store")  # never touched: scratch has no image id
    first = build_key(tmp_path, tmp_path / "Dockerfile", store)
    assert first == build_key(tmp_path, tmp_path / "Dockerfile", store)
    (tmp_path / "app.py").write_text("print(2)\n")
    assert build_key(tmp_path, tmp_path / "Dockerfile", store) != first


def test_store_command_lines_use_the_private_root_and_the_required_flags(tmp_path: Path) -> None:
    store = Store.under(tmp_path)
    build = store.build_argv(tmp_path, tmp_path / "Dockerfile", "t:1", labels={"k": "v"})
    assert build[:7] == [
        "buildah", "--root", str(tmp_path / "storage"), "--runroot", str(tmp_path / "run"),
        "--storage-driver", "vfs",
    ]  # fmt: skip
    assert {"--isolation", "chroot", "--pull=never", "--label", "k=v"} <= set(build)
    assert build[-1] == str(tmp_path)
    served = store.run_argv("img", "c1", publish=(18000, 80))
    assert {"--runtime", "runc", "slirp4netns:port_handler=slirp4netns"} <= set(served)
    assert served[served.index("-p") + 1] == "127.0.0.1:18000:80"
    assert served.count("--ulimit") == 2
    assert store.transport == f"containers-storage:[vfs@{tmp_path / 'storage'}+{tmp_path / 'run'}]"
    assert kiln_build_argv([Path("images/python.yaml")], tmp_path, "amd64")[-5:] == [
        "--output", str(tmp_path), "--arch", "amd64", "--refresh",
    ]  # fmt: skip


def test_run_keeps_output_and_exit_code_and_logs_them(tmp_path: Path) -> None:
    log = tmp_path / "log"
    result = run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30, log=log)
    assert (result.ok, result.returncode) == (False, 3)
    assert "out" in result.output
    assert "err" in result.output
    assert "[exit 3]" in log.read_text()
    slow = run(["sleep", "5"], timeout=0.2)
    assert not slow.ok
    assert "timed out" in slow.output


def test_layout_tag_reads_the_index(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="not an OCI image layout"):
        layout_tag(tmp_path)
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entry = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + "0" * 64,
        "size": 2,
    }
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    assert layout_tag(tmp_path) is None
    entry["annotations"] = {"org.opencontainers.image.ref.name": "3.13-dev"}
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    assert layout_tag(tmp_path) == "3.13-dev"
    (tmp_path / "index.json").write_text('{"schemaVersion": 2, "manifests": [{"size": -1}]}')
    with pytest.raises(LayoutError, match=r"index\.json"):
        layout_tag(tmp_path)


def _app(text: str) -> App:
    from ruamel.yaml import YAML

    return App("a", Path("a"), AppDeclaration.model_validate(YAML(typ="safe").load(text)))


def test_output_apps_check_exit_code_and_pattern() -> None:
    app = _app("description: d\noutput: {exit-code: 0, output: 'no issues'}\n")
    assert _check_output(app, 0, "System check identified no issues") == ""
    assert _check_output(app, 1, "") == "exit code 1, expected 0"
    assert "does not match" in _check_output(app, 0, "something else")


def _served(*observations: Observation) -> Side:
    return Side("s", "img", build_ok=True, run_ok=True, observations=observations)


def test_compare_names_each_difference() -> None:
    app = _app("description: d\nport: 80\nrequests: [{path: /}]\n")
    same = Observation("GET /", 200, (("content-type", "text/html"),), "hi")
    assert _compare(app, _served(same), _served(same)) == (True, ())
    other = Observation("GET /", 404, (("content-type", "text/plain"),), "hello")
    identical, differences = _compare(app, _served(same), _served(other))
    assert not identical
    assert differences[0] == "GET /: status 200 -> 404"
    assert differences[1] == "GET /: content-type 'text/html' -> 'text/plain'"
    assert differences[2].startswith("GET /: body differs at 1")


def test_compare_refuses_to_call_an_unbuilt_side_identical() -> None:
    app = _app("description: d\nport: 80\nrequests: [{path: /}]\n")
    unbuilt = Side("after", "img", problem="build failed")
    assert _compare(app, _served(), unbuilt) == (False, ("not compared: a side did not build",))
