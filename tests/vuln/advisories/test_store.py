"""The advisory store: append-only event log, order, state, hostile data, two writers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from kiln.errors import EnvironmentProblem, InputError
from kiln.vuln.advisories import AdvisoryEvent, AdvisoryStore, EventKind
from kiln.vuln.advisories import store as advisory_store
from kiln.vuln.advisories.events import MAX_DATA_BYTES
from kiln.vuln.advisories.state import derive_state

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FP = {
    "justification": "component_not_present",
    "impact_statement": "libssl3 is not installed in the image",
    "evidence": ["/usr/lib/x86_64-linux-gnu/libssl.so.3 absent"],
}


def _ev(
    kind: str, vuln: str = "CVE-2024-0001", *, image: str = "python", **kw: Any
) -> AdvisoryEvent:
    return AdvisoryEvent(image, vuln, EventKind(kind), **kw)


def test_appends_get_increasing_ids_and_history_keeps_append_order(store: AdvisoryStore) -> None:
    ids = [
        store.append(_ev("detection", package="openssl", time=T0)),
        # an event that says it happened earlier still comes after: the log is the order
        store.append(_ev("true-positive-determination", time=T0 - timedelta(days=1))),
        store.append(_ev("detection", "CVE-2024-0002", time=T0)),
        store.append(_ev("fixed", data={"fixed_version": "3.0.15-1~deb12u1"}, time=T0)),
    ]
    assert ids == sorted(ids)
    assert len(set(ids)) == 4
    history = store.history("python", "CVE-2024-0001")
    assert [(e.id, e.kind) for e in history] == [
        (ids[0], EventKind.DETECTION),
        (ids[1], EventKind.TRUE_POSITIVE),
        (ids[3], EventKind.FIXED),
    ]
    assert history[0].package == "openssl"
    assert history[0].time == T0
    assert history[2].data == {"fixed_version": "3.0.15-1~deb12u1"}
    assert store.history("python", "CVE-2099-0001") == []
    assert store.images() == ["python"]


def test_an_event_without_time_is_stamped_at_append_in_utc(store: AdvisoryStore) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    store.append(_ev("detection"))
    (event,) = store.history("python", "CVE-2024-0001")
    assert event.time is not None
    assert before <= event.time <= datetime.now(UTC)
    assert event.time.tzinfo == UTC


def test_times_in_other_zones_are_stored_in_utc(store: AdvisoryStore) -> None:
    store.append(
        _ev("detection", time=datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    )
    (event,) = store.history("python", "CVE-2024-0001")
    assert event.time == T0


def test_the_api_has_no_way_to_change_or_remove_an_event(store: AdvisoryStore) -> None:
    public = {name for name in dir(AdvisoryStore) if not name.startswith("_")}
    assert public == {"open", "append", "history", "events", "state", "images", "close", "engine"}
    event = _ev("detection", time=T0)
    store.append(event)
    store.append(event)  # the same event twice is two events, not an upsert
    assert len(store.history("python", "CVE-2024-0001")) == 2
    with pytest.raises(AttributeError):
        event.kind = EventKind.FIXED  # type: ignore[misc]  # frozen: the test is that it fails


def test_state_is_the_newest_determining_event(store: AdvisoryStore) -> None:
    store.append(_ev("detection", package="openssl", time=T0))
    assert store.state()[0].status == "under_investigation"
    store.append(_ev("true-positive-determination", time=T0))
    store.append(_ev("remediation-attempted", data={"step": "bump", "outcome": "started"}))
    (state,) = store.state()
    assert (state.status, state.resolution, state.last.kind) == (
        "affected",
        "affected",
        EventKind.REMEDIATION_ATTEMPTED,
    )
    store.append(_ev("fixed", data={"fixed_version": "3.0.15-1"}))
    store.append(_ev("pr-opened", data={"pr_id": 7, "url": "file:///catalog#7"}))
    store.append(_ev("published", data={"digest": "sha256:" + "ab" * 32}))
    (state,) = store.state()
    assert state.status == "fixed"
    assert state.determination is not None
    assert state.determination.kind == EventKind.FIXED
    assert state.package == "openssl"  # from the first event that named it
    assert state.last.data == {"digest": "sha256:" + "ab" * 32}
    # a new detection after the fix re-opens it (a regression is news)
    store.append(_ev("detection", time=T0 + timedelta(days=3)))
    assert store.state()[0].status == "under_investigation"


@pytest.mark.parametrize(
    ("kind", "status", "resolution"),
    [
        ("pending-upstream-fix", "affected", "pending-upstream-fix"),
        ("fix-not-planned", "affected", "fix-not-planned"),
    ],
)
def test_affected_resolutions_stay_apart(kind: str, status: str, resolution: str) -> None:
    state = derive_state([_ev("detection"), _ev(kind, data={"note": "upstream has no patch"})])
    assert (state.status, state.resolution) == (status, resolution)


def test_state_lists_each_image_and_vulnerability_sorted(store: AdvisoryStore) -> None:
    store.append(_ev("detection", "CVE-2024-0002", image="python"))
    store.append(_ev("false-positive-determination", "CVE-2024-0001", image="node", data=FP))
    store.append(_ev("detection", "CVE-2024-0001", image="python"))
    keys = [(s.image, s.vuln_id, s.status) for s in store.state()]
    assert keys == [
        ("node", "CVE-2024-0001", "not_affected"),
        ("python", "CVE-2024-0001", "under_investigation"),
        ("python", "CVE-2024-0002", "under_investigation"),
    ]
    assert [s.image for s in store.state("node")] == ["node"]


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"kind": "exploded"}, "kind", "unknown advisory event kind"),
        (
            {"kind": "false-positive-determination", "data": {"impact_statement": "x"}},
            "data.justification",
            "Field required",
        ),
        (
            {"kind": "false-positive-determination", "data": {**FP, "justification": "trust me"}},
            "data.justification",
            "component_not_present",
        ),
        (
            {
                "kind": "false-positive-determination",
                "data": {"justification": "component_not_present"},
            },
            "data.impact_statement",
            "Field required",
        ),
        ({"kind": "pending-upstream-fix", "data": {}}, "data.note", "Field required"),
        (
            {"kind": "fixed", "data": {"fixed_version": "1.0", "extra": "x"}},
            "data.extra",
            "Extra inputs",
        ),
        (
            {"kind": "fixed", "data": {"fixed_version": "1.0; rm -rf /"}},
            "data.fixed_version",
            "pattern",
        ),
        (
            {"kind": "detection", "data": {"note": "x" * (MAX_DATA_BYTES + 1)}},
            "data",
            f"more than {MAX_DATA_BYTES}",
        ),
        ({"kind": "detection", "data": ["not", "a", "mapping"]}, "data", "mapping"),
        ({"kind": "detection", "data": {"note": object()}}, "data", "JSON-serialisable"),
        (
            {"kind": "remediation-attempted", "data": {"step": "bump", "outcome": "failed"}},
            "data",
            "needs a reason",
        ),
        (
            {"kind": "remediation-attempted", "data": {"step": "Bump!", "outcome": "started"}},
            "data.step",
            "lower-case",
        ),
        ({"kind": "published", "data": {"digest": "sha256:abc"}}, "data.digest", "64 hex"),
        ({"kind": "pr-opened", "data": {"pr_id": "1"}}, "data.url", "Field required"),
        ({"kind": "detection", "image": "../etc"}, "image", "invalid image"),
        ({"kind": "detection", "image": "a/b"}, "image", "invalid image"),
        ({"kind": "detection", "vuln_id": "CVE-2024-1\n"}, "vuln_id", "invalid vuln_id"),
        ({"kind": "detection", "package": "Open SSL"}, "package", "invalid package"),
        ({"kind": "detection", "time": datetime(2026, 1, 1)}, "time", "timezone-aware"),
    ],
)
def test_bad_events_are_input_errors_naming_the_field(
    kwargs: dict[str, Any], field: str, words: str
) -> None:
    args: dict[str, Any] = {"image": "python", "vuln_id": "CVE-2024-0001", **kwargs}
    with pytest.raises(InputError) as info:
        AdvisoryEvent(**args)
    assert info.value.location is not None
    assert info.value.location.field == field
    assert words in str(info.value)


def test_an_append_of_something_else_is_refused(store: AdvisoryStore) -> None:
    with pytest.raises(InputError, match="not an AdvisoryEvent"):
        store.append({"image": "python"})  # type: ignore[arg-type]  # the test is the refusal


@pytest.mark.parametrize(
    ("kind", "data", "words"),
    [
        ("detection", "{not json", "is not JSON"),
        ("detection", "[1, 2]", "mapping"),
        ("vanished-kind", "{}", "unknown advisory event kind"),
        ("fixed", "{}", "fixed_version"),
        ("detection", '{"note": "' + "x" * (MAX_DATA_BYTES + 2048) + '"}', "larger than the limit"),
        ("detection", "[" * 5000 + "]" * 5000, "nests"),
    ],
)
def test_a_corrupt_row_is_an_environment_problem_naming_the_row(
    store: AdvisoryStore, store_url: str, kind: str, data: str, words: str
) -> None:
    store.append(_ev("detection", time=T0))
    path = store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO advisory_events (image, vuln_id, package, kind, time, data)"
            " VALUES ('python', 'CVE-2024-0001', NULL, ?, '2026-03-01T12:00:00Z', ?)",
            (kind, data),
        )
    with pytest.raises(EnvironmentProblem) as info:
        store.history("python", "CVE-2024-0001")
    assert "advisory_events row 2" in str(info.value)
    assert words in str(info.value)


def test_a_row_with_a_time_without_zone_is_refused(store: AdvisoryStore, store_url: str) -> None:
    with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
        conn.execute(
            "INSERT INTO advisory_events (image, vuln_id, kind, time, data)"
            " VALUES ('python', 'CVE-2024-0001', 'detection', '2026-03-01 12:00', '{}')"
        )
    with pytest.raises(EnvironmentProblem, match="no time zone"):
        store.state()


_WRITER = """
import sys
from kiln.vuln.advisories import AdvisoryEvent, AdvisoryStore, EventKind
store = AdvisoryStore.open(sys.argv[1])
for i in range(int(sys.argv[3])):
    store.append(AdvisoryEvent(
        "img-" + sys.argv[2], "CVE-2024-%04d" % i, EventKind.DETECTION,
        data={"source": "writer-" + sys.argv[2], "note": str(i)}))
store.close()
"""


def _two_writers(store: AdvisoryStore, url: str, count: int) -> None:
    """Two processes append ``count`` events each to ``url``; none is lost or reordered."""
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, name, str(count)], stderr=subprocess.PIPE
        )
        for name in ("a", "b")
    ]
    for proc in writers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    events = store.events()
    assert len(events) == 2 * count
    assert len({e.id for e in events}) == 2 * count
    for name in ("a", "b"):
        mine = [e for e in events if e.image == f"img-{name}"]
        # each writer's events are in the log in the order it appended them
        assert [e.data["note"] for e in mine] == [str(i) for i in range(count)]


def test_two_processes_append_to_one_sqlite_file_without_losing_an_event(
    store: AdvisoryStore, store_url: str
) -> None:
    _two_writers(store, store_url, 150)


def test_two_processes_append_to_postgresql_without_losing_an_event(postgres_url: str) -> None:
    store = AdvisoryStore.open(postgres_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM advisory_events"))
        _two_writers(store, postgres_url, 150)
    finally:
        store.close()


def test_database_errors_become_environment_problems(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kiln.db'}"
    store = AdvisoryStore.open(url)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE advisory_events"))
    with pytest.raises(EnvironmentProblem, match=r"advisory store .* failed while appending"):
        store.append(_ev("detection"))
    store.close()


def test_the_same_log_on_postgresql(postgres_url: str) -> None:
    store = AdvisoryStore.open(postgres_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM advisory_events"))
        first = store.append(_ev("detection", package="openssl", time=T0))
        second = store.append(_ev("false-positive-determination", data=FP, time=T0))
        history = store.history("python", "CVE-2024-0001")
        assert [e.id for e in history] == [first, second]
        assert history[1].data == FP
        (state,) = store.state("python")
        assert (state.status, state.package) == ("not_affected", "openssl")
    finally:
        store.close()


def _hold_lock(path: str, seconds: float, started: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    started.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_an_append_waits_out_a_writer_that_holds_the_lock_past_the_busy_timeout(
    store: AdvisoryStore, store_url: str
) -> None:
    # SQLite's busy timeout through SQLAlchemy is 5 s; this writer holds the lock longer
    started = threading.Event()
    holder = threading.Thread(
        target=_hold_lock, args=(store_url.removeprefix("sqlite:///"), 6.5, started)
    )
    holder.start()
    started.wait(10)
    began = time.monotonic()
    event_id = store.append(_ev("detection"))
    holder.join()
    assert time.monotonic() - began > 5
    assert [e.id for e in store.history("python", "CVE-2024-0001")] == [event_id]


def test_a_lock_that_is_never_released_is_an_environment_problem(
    store: AdvisoryStore, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(advisory_store, "_LOCK_RETRIES", 0)
    started = threading.Event()
    holder = threading.Thread(
        target=_hold_lock, args=(store_url.removeprefix("sqlite:///"), 6.5, started)
    )
    holder.start()
    started.wait(10)
    try:
        with pytest.raises(EnvironmentProblem, match="database is locked"):
            store.append(_ev("detection"))
    finally:
        holder.join()
    assert store.events() == []  # nothing half-appended


def test_processes_that_open_a_new_database_at_once_all_get_it(tmp_path: Path) -> None:
    # VulnDB.open serialises their migrations of the empty file (a file lock)
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, url, str(n), "1"], stderr=subprocess.PIPE)
        for n in range(4)
    ]
    for proc in writers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    store = AdvisoryStore.open(url)
    try:
        assert sorted(e.image for e in store.events()) == [f"img-{n}" for n in range(4)]
    finally:
        store.close()


def test_migration_0003_adds_the_indexed_table_and_downgrades_cleanly(
    store: AdvisoryStore, store_url: str
) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    from kiln.vuln.db import store as db_store

    def indexes() -> dict[str, list[str | None]] | None:
        with store.engine.connect() as conn:
            insp = inspect(conn)
            if not insp.has_table("advisory_events"):
                return None
            return {str(i["name"]): i["column_names"] for i in insp.get_indexes("advisory_events")}

    assert indexes() == {
        "ix_advisory_events_image": ["image"],
        "ix_advisory_events_image_vuln": ["image", "vuln_id", "id"],
    }
    store.append(_ev("detection", time=T0))
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db_store.__file__).parent / "migrations"))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    assert indexes() is None
    reopened = AdvisoryStore.open(store_url)  # an older database is brought to the head
    try:
        assert indexes() is not None
        assert reopened.events() == []
    finally:
        reopened.close()
