"""The suite's table, failure details and JSON, from results made up in the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from kiln.cli.main import main
from kiln.compat.probe import Observation
from kiln.compat.report import human_size, render, to_json
from kiln.compat.runner import AppResult, Side, SuiteResult
from kiln.compat.standins import StandinBuild

OBSERVED = (Observation("GET /", 200, (("content-type", "text/plain"),), "hello"),)


def _side(name: str, **changes: object) -> Side:
    values: dict[str, object] = {
        "build_ok": True,
        "run_ok": True,
        "size": 180_000_000 if name == "before" else 60_000_000,
        "cves": 40 if name == "before" else 10,
        "observations": OBSERVED,
    }
    values.update(changes)
    # values holds fields of several types, overridden per test: not one TypedDict
    return Side(name, f"localhost/compat/app:{name}", **values)  # type: ignore[arg-type]


def _text(result: SuiteResult) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(render(result))
    return console.export_text()


def _suite(*apps: AppResult, problems: tuple[str, ...] = ()) -> SuiteResult:
    standins = (StandinBuild("python-slim", ("localhost/python:3.13-slim",), "k", True, True, 0.1),)
    return SuiteResult(apps, standins, (), 12.0, problems)


def test_human_sizes() -> None:
    assert [human_size(n) for n in (None, 512, 61_500_000, 2_000_000_000)] == [
        "?",
        "512 B",
        "61.5 MB",
        "2.0 GB",
    ]


def test_a_passing_app_shows_sizes_and_cves_with_their_reduction() -> None:
    app = AppResult(
        "flask", "Flask", ("python:3.13-slim -> k",), _side("before"), _side("after"), True
    )
    result = _suite(app)
    assert result.ok
    text = _text(result)
    assert "flask" in text
    assert "180.0 MB -> 60.0 MB (-67%)" in text
    assert "40 -> 10 (-75%)" in text
    assert "stand-ins reused: python-slim" in text
    assert "FAIL" not in text


def test_a_failed_build_is_shown_with_its_log_tail_never_hidden() -> None:
    after = _side(
        "after",
        build_ok=False,
        run_ok=False,
        size=None,
        cves=None,
        observations=(),
        problem="build failed",
        log_tail="STEP 3/5: RUN pip install -r requirements.txt\n/bin/sh: pip: not found",
    )
    app = AppResult(
        "flask",
        "Flask",
        ("python:3.13-slim -> k",),
        _side("before"),
        after,
        False,
        ("not compared: a side did not build",),
    )
    result = _suite(app)
    assert not result.ok
    text = _text(result)
    assert "FAIL" in text
    assert "after: build failed" in text
    assert "| /bin/sh: pip: not found" in text
    assert "FROM python:3.13-slim -> k" in text
    assert "180.0 MB -> ?" in text


def test_a_different_response_is_listed() -> None:
    app = AppResult(
        "api",
        "API",
        (),
        _side("before"),
        _side("after"),
        False,
        ("GET /: body differs at 0: 'a' -> 'b'",),
    )
    text = _text(_suite(app))
    assert "differs: GET /: body differs at 0" in text


def test_cve_counts_without_a_database_say_why() -> None:
    note = "no vulnerability database (kiln db update)"
    app = AppResult(
        "api",
        "API",
        (),
        _side("before", cves=None, cve_note=note),
        _side("after", cves=None, cve_note=note),
        True,
    )
    text = _text(_suite(app))
    assert "n/a -> n/a" in text
    assert f"CVEs: {note}" in text


def test_suite_problems_fail_the_suite_and_are_printed() -> None:
    result = _suite(problems=("stand-in nginx failed to build:\nE: unable to locate nginx",))
    assert not result.ok
    assert "E: unable to locate nginx" in _text(result)


def test_json_report_carries_results_responses_and_log_tails() -> None:
    after = _side("after", run_ok=False, problem="GET /: 500 (expected 200)", log_tail="Traceback")
    app = AppResult("api", "API", ("a -> b (migrate)",), _side("before"), after, False)
    document = json.loads(to_json(_suite(app)))
    assert document["schema"] == "kiln.compat/v1"
    assert document["ok"] is False
    (entry,) = document["apps"]
    assert entry["ok"] is False
    assert entry["name"] == "api"
    assert entry["after"]["problem"] == "GET /: 500 (expected 200)"
    assert entry["after"]["log_tail"] == "Traceback"
    assert entry["before"]["observations"][0]["headers"] == [["content-type", "text/plain"]]
    assert entry["before"]["size"] == 180_000_000
    assert document["standins"][0]["cached"] is True


def test_the_cli_refuses_a_suite_directory_with_a_broken_app(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "compat.yaml").write_text(
        "description: x\nport: 80\nrequests: [{path: /}]\n"
    )
    code = main(["compat", "--dir", str(tmp_path)])
    assert code == 2
    assert "app app has no Dockerfile" in capsys.readouterr().err
