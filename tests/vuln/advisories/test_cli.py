"""``kiln advisories``: record, list, show, history, openvex through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kiln.cli.app import console
from kiln.cli.main import main
from kiln.vuln.vex import load_vex


def _run(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> str:
    capsys.readouterr()
    assert main(list(argv)) == code
    return capsys.readouterr().out


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    return json.loads(_run(capsys, *argv, "--json"))


def _record(capsys: pytest.CaptureFixture[str], db: str, *argv: str, code: int = 0) -> str:
    return _run(capsys, "advisories", "record", *argv, "--db", db, code=code)


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables one row per line, whatever the terminal running the tests."""
    monkeypatch.setattr(console, "width", 200)


@pytest.fixture
def db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    url = str(tmp_path / "kiln.db")
    _record(
        capsys,
        url,
        "python",
        "CVE-2024-0001",
        "detection",
        "--package",
        "libssl3",
        "--data",
        "source=kiln-scan",
        "--data",
        "installed_version=3.0.11-1",
    )
    _record(
        capsys,
        url,
        "python",
        "CVE-2024-0001",
        "false-positive-determination",
        "--package",
        "libssl3",
        "--data",
        "justification=component_not_present",
        "--data",
        "impact_statement=libssl3 is not in the image",
        "--data",
        "evidence=usr/lib/libssl.so.3 absent",
        "--data",
        "evidence=dpkg has no libssl3",
    )
    _record(
        capsys,
        url,
        "python",
        "CVE-2024-0002",
        "remediation-attempted",
        "--data",
        "step=bump",
        "--data",
        "outcome=failed",
        "--data",
        "reason=no newer version in trixie-security",
        "--data",
        "attempt=2",
    )
    _record(
        capsys,
        url,
        "node",
        "CVE-2024-0003",
        "pending-upstream-fix",
        "--package",
        "zlib1g",
        "--data",
        "note=no upstream patch",
    )
    return url


def test_list_json_has_one_object_per_image_and_vulnerability(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _json(capsys, "advisories", "list", "--db", db)
    assert [(r["image"], r["vuln_id"], r["status"], r["resolution"]) for r in rows] == [
        ("node", "CVE-2024-0003", "affected", "pending-upstream-fix"),
        ("python", "CVE-2024-0001", "not_affected", "not_affected"),
        ("python", "CVE-2024-0002", "under_investigation", "under_investigation"),
    ]
    assert set(rows[0]) == {
        "image",
        "vuln_id",
        "package",
        "status",
        "resolution",
        "determination",
        "last_event",
        "last_time",
        "events",
    }
    fp = rows[1]
    assert fp["package"] == "libssl3"
    assert fp["events"] == 2
    assert fp["determination"]["data"]["evidence"] == [
        "usr/lib/libssl.so.3 absent",
        "dpkg has no libssl3",
    ]
    assert rows[2]["last_event"] == "remediation-attempted"
    assert rows[2]["determination"] is None
    only = _json(capsys, "advisories", "list", "--image", "node", "--db", db)
    assert [r["image"] for r in only] == ["node"]


def test_list_table_names_status_and_last_event(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _run(capsys, "advisories", "list", "--db", db)
    for word in ("CVE-2024-0001", "not_affected", "pending-upstream-fix", "remediation-attempted"):
        assert word in out


def test_show_gives_the_state_and_every_event(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(capsys, "advisories", "show", "python", "CVE-2024-0001", "--db", db)
    assert doc["state"]["status"] == "not_affected"
    assert [e["kind"] for e in doc["events"]] == ["detection", "false-positive-determination"]
    assert doc["events"][0]["data"] == {"installed_version": "3.0.11-1", "source": "kiln-scan"}
    assert set(doc["events"][0]) == {"id", "image", "vuln_id", "kind", "package", "time", "data"}
    table = _run(capsys, "advisories", "show", "python", "CVE-2024-0001", "--db", db)
    assert "false-positive-determination" in table


def test_history_lists_events_in_append_order(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    events = _json(capsys, "advisories", "history", "--db", db)
    assert [e["id"] for e in events] == [1, 2, 3, 4]
    assert events[2]["data"]["attempt"] == 2  # "2" from the command line, an int in the log
    python = _json(capsys, "advisories", "history", "--image", "python", "--db", db)
    assert [e["id"] for e in python] == [1, 2, 3]


def test_openvex_command_writes_a_document_kiln_reads(
    db: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "vex" / "python.json"
    _run(capsys, "advisories", "openvex", "python", "-o", str(out), "--db", db)
    (statement,) = load_vex(out)
    assert (statement.vulnerability, statement.status) == ("CVE-2024-0001", "not_affected")
    assert _run(capsys, "advisories", "openvex", "nobody", "--db", db, code=2) == ""


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["python", "CVE-2024-0001", "made-up"], "unknown advisory event kind"),
        (
            [
                "python",
                "CVE-2024-0001",
                "false-positive-determination",
                "--data",
                "impact_statement=x",
            ],
            "data.justification",
        ),
        (["python", "CVE-2024-0001", "fixed", "--data", "fixed_version"], "expected KEY=VALUE"),
        (["../../etc", "CVE-2024-0001", "detection"], "invalid image"),
        (["python", "CVE-2024-0001", "published", "--data", "digest=sha256:00"], "64 hex"),
    ],
)
def test_bad_records_exit_2_naming_the_problem(
    db: str, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    capsys.readouterr()
    assert main(["advisories", "record", *argv, "--db", db]) == 2
    assert words in capsys.readouterr().err
    assert len(_json(capsys, "advisories", "history", "--db", db)) == 4  # nothing appended


def test_show_of_an_unknown_pair_is_an_input_error(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["advisories", "show", "python", "CVE-2099-0001", "--db", db]) == 2
    assert "no advisory events for CVE-2099-0001 in python" in capsys.readouterr().err


def test_a_database_that_cannot_be_opened_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"this is not an SQLite file" * 100)
    capsys.readouterr()
    assert main(["advisories", "list", "--db", str(bad)]) == 3
    assert "database" in capsys.readouterr().err


def test_hostile_text_is_shown_as_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "kiln.db")
    note = "[/bold] [red]\x1b]0;pwned\x07 line\nbreak"
    _record(
        capsys,
        db,
        "python",
        "CVE-2024-0001",
        "true-positive-determination",
        "--data",
        f"note={note}",
    )
    out = _run(capsys, "advisories", "history", "--db", db)
    assert "[/bold] [red]" in out  # markup shown, not interpreted (nor a MarkupError)
    assert "\x1b" not in out
    assert "pwned" not in out  # the terminal-title sequence is dropped whole
    shown = _run(capsys, "advisories", "list", "--image", "[/x]", "--db", db)
    assert "[/x]" in shown
    capsys.readouterr()
    assert main(["advisories", "show", "[/x]", "CVE-1\x1b[2J", "--db", db]) == 2
    assert "\x1b" not in capsys.readouterr().err
    # JSON keeps the exact text
    (event,) = _json(capsys, "advisories", "history", "--db", db)
    assert event["data"]["note"] == note


def test_list_filters_by_status(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    def vulns(*extra: str) -> list[str]:
        return [r["vuln_id"] for r in _json(capsys, "advisories", "list", "--db", db, *extra)]

    assert vulns("--status", "not_affected") == ["CVE-2024-0001"]
    assert vulns("--status", "pending-upstream-fix") == ["CVE-2024-0003"]
    assert vulns("--unresolved") == ["CVE-2024-0003", "CVE-2024-0002"]
    assert vulns("--status", "fixed") == []
    capsys.readouterr()
    assert main(["advisories", "list", "--status", "wontfix", "--db", db]) == 2
    assert "is not a status" in capsys.readouterr().err
