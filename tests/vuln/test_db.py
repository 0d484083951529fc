"""The vulnerability database: migrations, one-transaction imports, snapshots, PostgreSQL.

The PostgreSQL test uses ``KILN_TEST_POSTGRES`` when it holds an SQLAlchemy URL of a
scratch database (e.g. ``postgresql+psycopg://kiln@127.0.0.1:5432/kiln_test``; every
table is emptied). Without it, the test starts a throwaway PostgreSQL cluster on a free
loopback port when Debian's server binaries are installed (``initdb``/``pg_ctl`` from the
``postgresql`` package; as root it runs them as the ``postgres`` user), and is skipped
when they are not.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select

from kiln.errors import EnvironmentProblem
from kiln.vuln.db import SqliteReader, VulnDB, open_for_scan, store
from kiln.vuln.db.models import Base, OsvAdvisoryRow, TrackerRow
from kiln.vuln.feeds import DebianTrackerFeed, FeedFormatError, OsvFeed, from_path

from .conftest import vulndata

FIXED_NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _count(db: VulnDB, model: type) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def test_migrations_create_the_models_schema_and_indexes(db: VulnDB) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []  # the migration and the models agree
        insp = inspect(conn)
        osv_idx = {i["name"]: i["column_names"] for i in insp.get_indexes("osv_affected")}
        assert osv_idx["ix_osv_affected_ecosystem_package"] == ["ecosystem", "package"]
        tracker_idx = {i["name"]: i["column_names"] for i in insp.get_indexes("debian_tracker")}
        assert tracker_idx["ix_debian_tracker_release_source"] == ["release", "source_package"]
    db.migrate()  # idempotent


def test_schema_head_is_the_newest_migration(db: VulnDB) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(store.__file__).parent / "migrations"))
    assert ScriptDirectory.from_config(cfg).get_current_head() == store.SCHEMA_HEAD
    assert db.revision() == store.SCHEMA_HEAD


def test_a_database_at_the_head_opens_without_alembic_and_an_older_one_is_upgraded(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'vuln.db'}"
    VulnDB.open(url).close()
    probe = (
        "import sys; from kiln.vuln.db import VulnDB; "
        f"VulnDB.open({url!r}).close(); print('alembic' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
    with sqlite3.connect(tmp_path / "vuln.db") as conn:  # as if written before any migration
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (name,) in tables:
            conn.execute(f"DROP TABLE {name}")
    db = VulnDB.open(url)
    try:
        assert db.revision() == store.SCHEMA_HEAD
        assert db.snapshots() == []
    finally:
        db.close()


def test_import_makes_a_snapshot_with_digest_time_and_counts(db: VulnDB) -> None:
    src = from_path(vulndata("debian-tracker-json/debian.json"))
    result = db.import_feed(DebianTrackerFeed(), src, now=lambda: FIXED_NOW)
    snap = result.snapshot
    assert (snap.source, snap.digest, snap.created_at) == (
        "debian-tracker",
        src.digest,
        "2026-01-02T03:04:05+00:00",
    )
    assert snap.counts == {"TrackerStatus": 21, "warnings": 0}
    assert _count(db, TrackerRow) == 21
    again = db.import_feed(DebianTrackerFeed(), src)
    assert again.unchanged
    assert again.snapshot.id == snap.id


def test_failed_import_leaves_the_previous_snapshot_and_rows(db: VulnDB, tmp_path: Path) -> None:
    good = db.import_feed(
        DebianTrackerFeed(), from_path(vulndata("debian-tracker-json/debian.json"))
    )
    # A "newer" export: valid first packages, then truncated mid-way.
    doc = json.loads(vulndata("debian-tracker-json/debian.json").read_text())
    doc = {"aaa-new": {"CVE-2099-0001": {"releases": {"trixie": {"status": "open"}}}}, **doc}
    text = json.dumps(doc)
    broken = tmp_path / "debian.json"
    broken.write_text(text[: int(len(text) * 0.7)])
    with pytest.raises(FeedFormatError):
        db.import_feed(DebianTrackerFeed(), from_path(broken))
    assert [s.id for s in db.snapshots()] == [good.snapshot.id]
    assert db.current()["debian-tracker"] == good.snapshot
    assert _count(db, TrackerRow) == 21
    with db.engine.connect() as conn:
        assert (
            conn.execute(select(TrackerRow).where(TrackerRow.source_package == "aaa-new")).first()
            is None
        )


def test_osv_imports_accumulate_across_ecosystems_and_replace_by_id(
    db: VulnDB, tmp_path: Path
) -> None:
    db.import_feed(OsvFeed(), from_path(vulndata("osv-npm-sample/osv")))
    one = tmp_path / "pypi"
    one.mkdir()
    (one / "PYSEC-2018-28.yaml").write_bytes(
        vulndata("osv-pypi-2024/vulns/requests/PYSEC-2018-28.yaml").read_bytes()
    )
    db.import_feed(OsvFeed(), from_path(one))
    assert _count(db, OsvAdvisoryRow) == 18
    # the same id again, changed: replaced, not duplicated
    text = (
        (one / "PYSEC-2018-28.yaml")
        .read_text()
        .replace("modified: '2021-06-16T00:03:24.800813Z'", "modified: '2030-01-01T00:00:00Z'")
    )
    (one / "PYSEC-2018-28.yaml").write_text(text)
    db.import_feed(OsvFeed(), from_path(one))
    assert _count(db, OsvAdvisoryRow) == 18
    data = db.load(osv_keys=[("PyPI", "requests")])
    (held,) = data.osv[("PyPI", "requests")]
    assert held.record.modified == "2030-01-01T00:00:00Z"


def test_db_location_follows_kiln_db_and_kiln_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kiln.vuln.db import default_db_url

    monkeypatch.delenv("KILN_DB", raising=False)
    monkeypatch.setenv("KILN_CACHE", str(tmp_path / "cache"))
    assert default_db_url() == f"sqlite:///{tmp_path / 'cache' / 'vuln.db'}"
    monkeypatch.setenv("KILN_DB", str(tmp_path / "x.db"))
    assert default_db_url() == f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("KILN_DB", "postgresql+psycopg://u:p@h/db")
    assert default_db_url() == "postgresql+psycopg://u:p@h/db"


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    configured = os.environ.get("KILN_TEST_POSTGRES")
    if configured:
        yield configured
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no KILN_TEST_POSTGRES and no PostgreSQL server binaries (initdb, pg_ctl)")
    as_user: list[str] = []
    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="kiln-test-pg-"))
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a 'postgres' user to run the server")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "kiln"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [
                *as_user,
                _pg_bin("createdb") or "createdb",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "kiln",
                "kiln_test",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://kiln@127.0.0.1:{port}/kiln_test"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


def test_same_models_on_postgresql(postgres_url: str) -> None:
    db = VulnDB.open(postgres_url)
    try:
        with db.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
        db.import_feed(DebianTrackerFeed(), from_path(vulndata("debian-tracker-json/debian.json")))
        db.import_feed(OsvFeed(), from_path(vulndata("osv-npm-sample/osv")))
        data = db.load(
            debian_sources=["chromium"], release="bookworm", osv_keys=[("npm", "lodash")]
        )
        assert [h.record.cve for h in data.tracker["chromium"]] == ["CVE-2022-0456"]
        assert len(data.osv[("npm", "lodash")]) == 7
    finally:
        db.close()


@pytest.mark.slow
def test_full_pypa_snapshot_imports_with_its_known_bad_ranges_as_warnings(db: VulnDB) -> None:
    result = db.import_feed(OsvFeed(), from_path(vulndata("osv-pypi-2024/vulns")))
    assert result.snapshot.counts["OsvRecord"] == 2651  # 2,661 files less 10 withdrawn
    skipped = [w for w in result.warnings if "range skipped" in w.message]
    assert {w.location.file.rsplit("/", 1)[-1] for w in skipped} == {
        "PYSEC-2021-371.yaml",
        "PYSEC-2019-125.yaml",
    }
    assert _count(db, OsvAdvisoryRow) == 2651


def test_a_locked_database_is_an_environment_error(db: VulnDB, tmp_path: Path) -> None:

    path = db.engine.url.database
    assert path is not None
    slow = VulnDB.open(f"sqlite:///{path}?timeout=0.1")
    blocker = sqlite3.connect(path)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(EnvironmentProblem, match="cannot open the vulnerability database"):
            VulnDB.open(f"sqlite:///{path}?timeout=0.1")
        with pytest.raises(EnvironmentProblem, match="refused the debian-tracker import"):
            slow.import_feed(
                DebianTrackerFeed(), from_path(vulndata("debian-tracker-json/debian.json"))
            )
    finally:
        blocker.rollback()
        blocker.close()
        slow.close()
    assert db.snapshots() == []


def test_scans_read_a_current_sqlite_file_directly_and_get_the_same_data(
    loaded_db: VulnDB, loaded_db_url: str
) -> None:
    reader = open_for_scan(loaded_db_url)
    assert isinstance(reader, SqliteReader)
    path = Path(loaded_db_url.removeprefix("sqlite:///"))
    before = path.read_bytes()
    try:
        for query in (
            {"debian_sources": ["openssl", "expat", "chromium"], "release": "bookworm"},
            {"osv_keys": [("npm", "lodash"), ("PyPI", "requests"), ("PyPI", "nothing-here")]},
            {"debian_sources": ["openssl"], "release": None},
            {},
        ):
            assert reader.load(**query) == loaded_db.load(**query)
        again = reader.load(debian_sources=["openssl"], release="bookworm")
        assert again == loaded_db.load(debian_sources=["openssl"], release="bookworm")
        assert reader.snapshots() == loaded_db.snapshots()
    finally:
        reader.close()
    assert path.read_bytes() == before  # read-only: not even the temporary tables land there


def test_scans_open_other_databases_through_sqlalchemy(tmp_path: Path) -> None:
    missing = tmp_path / "new" / "vuln.db"
    created = open_for_scan(str(missing))
    assert isinstance(created, VulnDB)  # created and migrated, as before
    created.close()
    assert isinstance(open_for_scan(str(missing)), SqliteReader)
    with_options = open_for_scan(f"sqlite:///{missing}?timeout=1")
    assert isinstance(with_options, VulnDB)
    with_options.close()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(EnvironmentProblem, match=r"cannot open the vulnerability database"):
        open_for_scan(str(garbage))


def test_a_scan_of_a_current_sqlite_file_loads_no_sqlalchemy(loaded_db_url: str) -> None:
    probe = (
        "import sys\n"
        "from kiln.vuln.db import open_for_scan\n"
        "from kiln.vuln.scan import scan_inventory\n"
        f"db = open_for_scan({loaded_db_url!r})\n"
        "class Inventory:\n"
        "    target, distro, packages = 'x', None, ()\n"
        "scan_inventory(Inventory(), db)\n"
        "print(sorted(m for m in ('sqlalchemy', 'alembic') if m in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


_OPENER = """
import sys
from kiln.vuln.db.store import VulnDB
VulnDB.open(sys.argv[1]).close()
"""


def test_processes_opening_a_new_database_at_once_all_open_it(tmp_path: Path) -> None:
    # Each finds an empty file and would create the tables; without the migration lock
    # all but one fail on "table ... already exists".
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    openers = [
        subprocess.Popen([sys.executable, "-c", _OPENER, url], stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    for proc in openers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    db = VulnDB.open(url)
    try:
        assert db.revision() == store.SCHEMA_HEAD
    finally:
        db.close()
