"""``kiln factory status|prs|retry|run`` through kiln's entry point, on a real dev server.

The catalog is a temporary git repository; its pull requests are made with the real
local git forge; the factory's records are the ones ``FactoryState`` writes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.catalog import CATALOG_DIR
from kiln.cli.main import main
from kiln.factory.model import DeadLetter, ReconcileResult
from kiln.factory.server import Endpoint
from kiln.factory.state import FactoryState
from kiln.forge import ChangeRequest, Evidence, LocalGitForge
from kiln.forge.evidence import CheckResult, CveRow


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temporal: Endpoint) -> Path:
    """A catalog repository with static and base, the factory pointed at ``temporal``."""
    repo = tmp_path / "catalog"
    (repo / "images").mkdir(parents=True)
    for name in ("static", "base"):
        shutil.copy(CATALOG_DIR / f"{name}.yaml", repo / "images")
        shutil.copy(CATALOG_DIR / f"{name}.lock.json", repo / "images")
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "images"],
        ["-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "c"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    monkeypatch.setenv("KILN_TEMPORAL", temporal.address)
    monkeypatch.setenv("KILN_DB", str(tmp_path / "kiln.db"))
    monkeypatch.chdir(repo)
    return repo


def test_status_json_shows_dead_letters_and_last_results(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = FactoryState(catalog)
    state.record_result(
        ReconcileResult("base", "g" * 64, "pr-opened", "drift", ["1 kiln/bump/base: t"])
    )
    state.dead_letter(DeadLetter("static", "h" * 64, "bump", "PolicyError: tests fail", 1, "now"))
    assert main(["factory", "status", "--json"]) == 0
    rows = {r["image"]: r for r in json.loads(capsys.readouterr().out)}  # a list of images
    assert main(["factory", "status", "--json", "--schedules"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # no watch schedule set
    assert set(rows) == {"static", "base"}
    assert rows["static"]["state"] == "dead-lettered"
    assert rows["static"]["dead_letter"]["reason"] == "PolicyError: tests fail"
    assert rows["base"]["state"] == "idle"
    assert rows["base"]["last_result"]["outcome"] == "pr-opened"
    assert main(["factory", "status"]) == 0
    table = capsys.readouterr().out
    assert "dead-lettered" in table
    assert "1 dead-lettered" in table


def test_prs_json_lists_the_local_forge_records(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evidence = Evidence(
        "static",
        "bump",
        "g1",
        cves_before=(CveRow("CVE-2026-1", "libssl3t64", "3.5.9-1~deb13u1", "high"),),
        tests=(CheckResult("dev: os-release", "pass"),),
    )
    files = {"images/static.lock.json": b"{}\n"}
    LocalGitForge(catalog).open_or_update(
        ChangeRequest("static", "bump", "g1", "static: bump", evidence, files)
    )
    assert main(["factory", "prs", "--json"]) == 0
    (pr,) = json.loads(capsys.readouterr().out)
    keys = {"id", "image", "kind", "branch", "cves_fixed", "checks", "state"}
    assert keys <= set(pr)
    assert (pr["image"], pr["kind"], pr["branch"], pr["state"]) == (
        "static",
        "bump",
        "kiln/bump/static",
        "open",
    )
    assert pr["cves_fixed"] == ["CVE-2026-1"]
    assert pr["checks"] == {"test:dev: os-release": "pass"}
    assert main(["factory", "prs"]) == 0
    assert "kiln/bump/static" in capsys.readouterr().out


def test_retry_releases_the_dead_letter_and_enqueues(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = FactoryState(catalog)
    state.dead_letter(DeadLetter("static", "h" * 64, "bump", "TransportError: 503", 3, "now"))
    assert main(["factory", "retry", "static"]) == 0
    assert "released the dead letter (bump: TransportError: 503)" in capsys.readouterr().out
    assert state.letter("static") is None
    assert main(["factory", "status", "--json"]) == 0
    rows = {r["image"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["static"]["state"] == "queued"  # no worker runs in this test


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["factory", "run"], "needs --once"),
        (["factory", "run", "--once", "--image", "nosuch"], "not in"),
        (["factory", "retry", "../../etc/passwd"], "is not an image name"),
        (["factory", "watch", "--source", "gopher"], "--source gopher"),
        (["factory", "watch", "--interval", "gopher=60"], "unknown source 'gopher'"),
        (["factory", "watch", "--interval", "-5"], "--interval -5"),
        (["factory", "watch", "--stop", "--rounds", "1"], "--stop deletes"),
        (["factory", "watch", "--rounds", "-1"], "--rounds -1"),
    ],
)
def test_bad_arguments_are_input_errors(
    catalog: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_garbage_record_is_an_input_error_naming_it(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = catalog / ".kiln" / "factory" / "results" / "static.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"image": "static", "generation": 3, "outcome": "x"}')
    assert main(["factory", "status"]) == 2
    err = capsys.readouterr().err
    assert "static.json" in err
    assert "generation should be str" in err


def test_outside_a_git_checkout_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["factory", "status"]) == 2
    assert "not inside a git checkout" in capsys.readouterr().err


def test_an_unreachable_cluster_is_an_environment_error(
    catalog: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kiln.factory.server import free_port

    monkeypatch.setenv("KILN_TEMPORAL", f"127.0.0.1:{free_port()}")  # nobody listens
    assert main(["factory", "status"]) == 3
    err = capsys.readouterr().err
    assert "cannot reach Temporal at 127.0.0.1:" in err
    assert "KILN_TEMPORAL" in err


def test_watch_sees_a_commit_made_between_two_watches_and_reconciles_it(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a day's interval: the schedule does not fire by itself during the test; --rounds
    # triggers the polls
    argv = ["factory", "watch", "--source", "catalog", "--interval", "86400", "--rounds", "1"]
    assert main(argv) == 0  # learns (and keeps) where the catalog is
    captured = capsys.readouterr()
    assert "schedules catalog every 86400s (created)" in captured.err
    assert "poll 1 of catalog: no change" in captured.out
    assert FactoryState(catalog).results() == []  # nothing was enqueued
    (catalog / "images" / "static.yaml").write_text("name: [broken\n")
    who = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "-C", str(catalog), *who, "commit", "-qam", "x"], check=True)
    assert main([*argv[:4], "--interval", "catalog=7200", "--rounds", "1"]) == 0
    captured = capsys.readouterr()
    assert "schedules catalog every 7200s (updated)" in captured.err
    assert "poll 1 of catalog: enqueued static (commits " in captured.out
    # the touched image was reconciled: its broken spec is an input error, dead-lettered
    letter = FactoryState(catalog).letter("static")
    assert letter is not None
    assert letter.step == "observe"
    assert "static.yaml" in letter.reason
    assert FactoryState(catalog).letter("base") is None  # not touched, not reconciled
    # status shows the schedule and its last poll; --stop deletes it
    assert main(["factory", "status", "--json", "--schedules"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["source"], row["interval_s"], row["polls"]) == ("catalog", 7200.0, 2)
    assert row["last_result"] == "ok"
    assert row["last_detail"].startswith("enqueued static (commits ")
    assert row["next_run"]
    assert row["last_run"]
    assert main(["factory", "status"]) == 0
    table = capsys.readouterr().out
    assert "watch schedules" in table
    assert "7200s" in table
    assert "2 polls so far" in table
    assert main(["factory", "watch", "--stop"]) == 0
    assert "deleted the schedules: watch-catalog" in capsys.readouterr().out
    assert main(["factory", "status", "--json", "--schedules"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_watch_detach_sets_the_schedules_and_returns(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["factory", "watch", "--detach", "--interval", "3600", "--interval", "feeds=7200"]
    assert main(argv) == 0
    assert "archive every 3600s (created)" in capsys.readouterr().err
    assert main(["factory", "status", "--json", "--schedules"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["source"], r["interval_s"], r["last_result"]) for r in rows] == [
        ("archive", 3600.0, ""),
        ("catalog", 3600.0, ""),
        ("feeds", 7200.0, ""),
    ]


def test_checks_summary_tells_skipped_from_failing() -> None:
    from kiln.cli.factory import checks_summary

    checks = {
        "test:build": "pass",
        "test:package tests (dh_auto_test)": "skipped",
        "test:scan": "fail",
        "test:image tests": "pass",
    }
    assert checks_summary(checks) == (
        "2/4 pass (failing: test:scan; skipped: test:package tests (dh_auto_test))"
    )
    assert checks_summary({"test:build": "pass"}) == "1/1 pass"


def test_prs_table_shows_a_forge_title_as_text_not_markup(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evidence = Evidence("static", "bump", "g1")
    LocalGitForge(catalog).open_or_update(
        ChangeRequest(
            "static",
            "bump",
            "g1",
            "[red]static[/red]: bump",
            evidence,
            {"images/static.lock.json": b"{}\n"},
        )
    )
    assert main(["factory", "prs"]) == 0
    out = capsys.readouterr().out
    assert "[red]" in out  # read as markup, it would have vanished (the cell may wrap)
