"""The vulnerability database: open (and migrate), import a feed as one snapshot, query.

An import runs in ONE transaction: the snapshot row and every record land together, or
nothing does (a malformed input raises, the transaction rolls back and the previous
snapshot stays current). Queries return plain frozen records (``kiln.vuln.model``) in a
``VulnData`` value for the pure matcher.
"""

# Alembic and the feeds are imported where used: a scan of a migrated database needs neither.
# ruff: noqa: PLC0415

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from kiln.errors import EnvironmentProblem
from kiln.vuln.db import schema
from kiln.vuln.db.read import (
    SCHEMA_HEAD,
    Held,
    VulnData,
    as_db_url,
    default_db_url,
    read_vuln_data,
)
from kiln.vuln.model import (
    ArchiveMention,
    ArchiveStatus,
    ChangelogFix,
    EpssRecord,
    FeedRecord,
    KevRecord,
    NvdRecord,
    OsvRecord,
    Snapshot,
    TrackerStatus,
)

if TYPE_CHECKING:  # the feeds (HTTP, parsers) load only when a feed is imported
    from kiln.vuln.feeds.interface import Feed, FeedWarning
    from kiln.vuln.feeds.source import FeedInput

# Held, VulnData and the URL helpers live in read.py (no SQLAlchemy); named here too.
__all__ = [
    "SCHEMA_HEAD",
    "Held",
    "ImportResult",
    "VulnDB",
    "VulnData",
    "as_db_url",
    "default_db_url",
    "engine_safe",
]

_BATCH = 5000
_IN_CHUNK = 500
_MIGRATIONS = Path(__file__).parent / "migrations"
T = TypeVar("T")


@dataclass(frozen=True)
class ImportResult:
    snapshot: Snapshot
    warnings: tuple[FeedWarning, ...]
    unchanged: bool = False  # the input's digest equals the current snapshot's


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _to_snapshot(row: Any) -> Snapshot:
    return Snapshot(
        id=row.id,
        source=row.source,
        digest=row.digest,
        created_at=row.created_at,
        counts=dict(row.counts or {}),
        origin=row.origin,
    )


class VulnDB:
    """A migrated vulnerability database at an SQLAlchemy URL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str | None = None) -> VulnDB:
        """Open (creating the file's folder) and bring the schema to the newest migration."""
        url = as_db_url(url) if url else default_db_url()
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = create_engine(url)
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            db = cls(engine)
            if db.revision() != SCHEMA_HEAD:
                with _migration_lock(url):
                    # Another process may have migrated while this one waited.
                    if db.revision() != SCHEMA_HEAD:
                        db.migrate()
        except SQLAlchemyError as exc:
            raise EnvironmentProblem(
                f"cannot open the vulnerability database {engine_safe(url)}: "
                f"{str(exc).splitlines()[0]}",
                hint="check $KILN_DB (a file path or an SQLAlchemy URL)",
            ) from exc
        return db

    def revision(self) -> str | None:
        """The schema revision Alembic recorded, or ``None`` for a database without one."""
        with self.engine.connect() as conn:
            if not conn.dialect.has_table(conn, "alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def migrate(self) -> None:
        """Bring the schema to the newest migration (creating it in an empty database).

        On PostgreSQL the migration holds a transaction-scoped advisory lock, so two
        processes migrating one database at once run one after the other (the second
        finds nothing left to do); on SQLite ``open`` serialises them with a file lock.
        """
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATE_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        self.engine.dispose()

    # --- snapshots ------------------------------------------------------------------

    def snapshots(self, source: str | None = None) -> list[Snapshot]:
        """Every snapshot (newest last), optionally of one source."""
        snap = schema.snapshot
        stmt = select(snap).order_by(snap.c.id)
        if source:
            stmt = stmt.where(snap.c.source == source)
        with self.engine.connect() as conn:
            return [_to_snapshot(r) for r in conn.execute(stmt)]

    def current(self) -> dict[str, Snapshot]:
        """The newest snapshot of each source."""
        return {s.source: s for s in self.snapshots()}

    def cursor(self, source: str) -> str | None:
        stmt = (
            select(schema.snapshot.c.cursor)
            .where(schema.snapshot.c.source == source)
            .order_by(schema.snapshot.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(stmt).scalar()

    # --- import ---------------------------------------------------------------------

    def import_feed(
        self,
        feed: Feed,
        source: FeedInput,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        cursor: str | None = None,
        force: bool = False,
    ) -> ImportResult:
        """Import ``source`` through ``feed`` as one new snapshot, in one transaction."""
        try:
            return self._import(feed, source, now=now, cursor=cursor, force=force)
        except SQLAlchemyError as exc:
            first = str(exc).splitlines()[0]
            raise EnvironmentProblem(
                f"the vulnerability database refused the {feed.name} import: {first}",
                hint="another kiln process may be writing it; the previous snapshot is unchanged",
            ) from exc

    def _import(
        self,
        feed: Feed,
        source: FeedInput,
        *,
        now: Callable[[], datetime],
        cursor: str | None,
        force: bool,
    ) -> ImportResult:
        from kiln.vuln.feeds.interface import FeedWarning

        latest = self.current().get(feed.name)
        if latest is not None and latest.digest == source.digest and not force:
            return ImportResult(latest, (), unchanged=True)
        warnings: list[FeedWarning] = []
        counts: dict[str, int] = {}
        with self.engine.begin() as conn:
            snap_id = conn.execute(
                insert(schema.snapshot).values(
                    source=feed.name,
                    digest=source.digest,
                    created_at=now().astimezone(UTC).isoformat(timespec="seconds"),
                    origin=source.origin,
                    counts={},
                    cursor=cursor,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            writer = _Writer(conn, int(snap_id), feed.mode)
            if feed.mode == "replace":
                writer.clear_all(feed.name)
            batch: list[FeedRecord] = []
            for item in feed.records(source):
                if isinstance(item, FeedWarning):
                    warnings.append(item)
                    continue
                batch.append(item)
                counts[type(item).__name__] = counts.get(type(item).__name__, 0) + 1
                if len(batch) >= _BATCH:
                    writer.write(batch)
                    batch = []
            writer.write(batch)
            counts["warnings"] = len(warnings)
            conn.execute(
                schema.snapshot.update()
                .where(schema.snapshot.c.id == snap_id)
                .values(counts=counts)
            )
            snap = schema.snapshot
            row = conn.execute(select(snap).where(snap.c.id == snap_id)).one()
        return ImportResult(_to_snapshot(row), tuple(warnings))

    # --- queries for the matcher ----------------------------------------------------

    def load(
        self,
        *,
        debian_sources: Iterable[str] = (),
        release: str | None = None,
        osv_keys: Iterable[tuple[str, str]] = (),
    ) -> VulnData:
        """Everything known about these Debian source packages and OSV (ecosystem, name)s."""
        with self.engine.begin() as conn:
            return read_vuln_data(
                _SqlRows(conn), debian_sources=debian_sources, release=release, osv_keys=osv_keys
            )


class _SqlRows:
    """``read_vuln_data``'s executor on one SQLAlchemy connection."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __call__(
        self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] = ()
    ) -> list[tuple[Any, ...]]:
        result = self._conn.execute(text(sql), params or None)
        return [tuple(r) for r in result] if result.returns_rows else []


def _rows(conn: Connection, stmt: Any) -> list[Any]:
    """Result rows, attribute-accessible by column name (typed loosely on purpose)."""
    return list(conn.execute(stmt))


def engine_safe(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _archive(snapshot_id: int, rec: ArchiveMention | ArchiveStatus) -> dict[str, Any]:
    """The row of a debian-archive record (its ``source`` is the ``source_package``)."""
    row = {k: v for k, v in vars(rec).items() if k != "source"}
    return {"snapshot_id": snapshot_id, "source_package": rec.source, **row}


#: pg_advisory_xact_lock key of kiln's schema migrations ("kilnmigr" as an integer)
_PG_MIGRATE_KEY = int.from_bytes(b"kilnmigr", "big") & 0x7FFF_FFFF_FFFF_FFFF


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """Serialise schema migrations of one SQLite file across processes.

    Two processes opening a new database at once would both create its tables and the
    slower one fail on "table already exists". An ``flock`` on ``<file>.migrate.lock``
    (beside the database, kept) orders them. Other databases lock inside ``migrate``.
    """
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        yield
        return
    lock_path = Path(url.removeprefix("sqlite:///") + ".migrate.lock")
    try:
        handle = lock_path.open("a")
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot create the migration lock {lock_path}: {exc.strerror or exc}",
            hint="check $KILN_DB and that its folder is writable",
        ) from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class _Writer:
    """Writes batches of records into their tables within one import transaction."""

    def __init__(self, conn: Connection, snapshot_id: int, mode: str) -> None:
        self._conn = conn
        self._snap = snapshot_id
        self._upsert = mode == "upsert"
        self._cleared: set[tuple[str, str]] = set()
        self._seen_cves: set[str] = set()

    def clear_all(self, source: str) -> None:
        tables: dict[str, list[Table]] = {
            "debian-tracker": [schema.tracker, schema.tracker_cve],
            "debian-changelog": [schema.changelog],
            "debian-archive": [schema.archive_mention, schema.archive_status],
            "osv": [schema.osv_affected, schema.osv_advisory],
            "nvd": [schema.nvd],
            "kev": [schema.kev],
            "epss": [schema.epss],
        }
        for table in tables.get(source, []):
            self._conn.execute(delete(table))

    def _clear(self, kind: str, keys: set[str], column: Any, *extra: tuple[Any, Any]) -> None:
        """Upsert: delete the rows of keys this import has not written yet."""
        fresh = sorted(k for k in keys if (kind, k) not in self._cleared)
        for chunk in _chunks(fresh, _IN_CHUNK):
            for table_column, table in extra:
                self._conn.execute(delete(table).where(table_column.in_(chunk)))
            self._conn.execute(delete(column.table).where(column.in_(chunk)))
        self._cleared.update((kind, k) for k in fresh)

    def write(self, batch: list[FeedRecord]) -> None:
        if not batch:
            return
        snap = self._snap
        rows_of: list[list[dict[str, Any]]] = [[] for _ in range(10)]
        tracker, tracker_cves, changelog, osv, osv_aff, nvd, kev, epss = rows_of[:8]
        mentions, statuses = rows_of[8:]
        for rec in batch:
            match rec:
                case TrackerStatus():
                    tracker.append(
                        {
                            "snapshot_id": snap,
                            "source_package": rec.source,
                            "cve": rec.cve,
                            "release": rec.release,
                            "status": rec.status,
                            "fixed_version": rec.fixed_version,
                            "urgency": rec.urgency,
                            "nodsa": rec.nodsa,
                            "nodsa_reason": rec.nodsa_reason,
                        }
                    )
                    if rec.description and rec.cve not in self._seen_cves:
                        self._seen_cves.add(rec.cve)
                        tracker_cves.append(
                            {"cve": rec.cve, "snapshot_id": snap, "description": rec.description}
                        )
                case ChangelogFix():
                    changelog.append(
                        {
                            "snapshot_id": snap,
                            "source_package": rec.source,
                            "cve": rec.cve,
                            "version": rec.version,
                            "distribution": rec.distribution,
                        }
                    )
                case ArchiveMention():
                    mentions.append(_archive(snap, rec))
                case ArchiveStatus():
                    statuses.append(_archive(snap, rec))
                case OsvRecord():
                    osv.append(
                        {
                            "id": rec.id,
                            "snapshot_id": snap,
                            "aliases": list(rec.aliases),
                            "title": rec.summary or rec.details.strip().split("\n", 1)[0][:300],
                            "modified": rec.modified,
                            "published": rec.published,
                            "severity": [list(s) for s in rec.severity],
                            "database_severity": rec.database_severity,
                            "references": list(rec.references),
                        }
                    )
                    for a in rec.affected:
                        osv_aff.append(
                            {
                                "advisory_id": rec.id,
                                "ecosystem": a.ecosystem,
                                "package": a.package,
                                "ranges": [
                                    {
                                        "type": r.type,
                                        "events": [
                                            {k: v for k, v in vars(e).items() if v is not None}
                                            for e in r.events
                                        ],
                                    }
                                    for r in a.ranges
                                ],
                                "versions": list(a.versions),
                            }
                        )
                case NvdRecord():
                    nvd.append(
                        {
                            "cve": rec.cve,
                            "snapshot_id": snap,
                            "last_modified": rec.last_modified,
                            "description": rec.description,
                            "cvss31_vector": rec.cvss31_vector,
                            "cvss31_score": rec.cvss31_score,
                            "cvss40_vector": rec.cvss40_vector,
                            "cvss40_score": rec.cvss40_score,
                            "cwes": list(rec.cwes),
                            "references": list(rec.references),
                            "configurations": list(rec.configurations),
                        }
                    )
                case KevRecord():
                    kev.append(
                        {
                            "cve": rec.cve,
                            "snapshot_id": snap,
                            "vendor": rec.vendor,
                            "product": rec.product,
                            "name": rec.name,
                            "date_added": rec.date_added,
                            "due_date": rec.due_date,
                            "known_ransomware": rec.known_ransomware,
                        }
                    )
                case EpssRecord():
                    epss.append(
                        {
                            "cve": rec.cve,
                            "snapshot_id": snap,
                            "epss": rec.epss,
                            "percentile": rec.percentile,
                        }
                    )
        if self._upsert:
            self._clear(
                "changelog",
                {r["source_package"] for r in changelog},
                schema.changelog.c.source_package,
            )
            self._clear(
                "osv",
                {r["id"] for r in osv},
                schema.osv_advisory.c.id,
                (schema.osv_affected.c.advisory_id, schema.osv_affected),
            )
            self._clear("nvd", {r["cve"] for r in nvd}, schema.nvd.c.cve)
            # debian-archive: a source's mentions and statuses are replaced together
            self._clear(
                "archive",
                {r["source_package"] for r in (*mentions, *statuses)},
                schema.archive_mention.c.source_package,
                (schema.archive_status.c.source_package, schema.archive_status),
            )
        # Within one input the last record for a key wins (duplicate ids across files).
        osv = list({r["id"]: r for r in osv}.values())
        nvd = list({r["cve"]: r for r in nvd}.values())
        kev = list({r["cve"]: r for r in kev}.values())
        epss = list({r["cve"]: r for r in epss}.values())
        for table, rows in (
            (schema.tracker, tracker),
            (schema.tracker_cve, tracker_cves),
            (schema.changelog, changelog),
            (schema.archive_mention, mentions),
            (schema.archive_status, statuses),
            (schema.osv_advisory, osv),
            (schema.osv_affected, osv_aff),
            (schema.nvd, nvd),
            (schema.kev, kev),
            (schema.epss, epss),
        ):
            if rows:
                self._conn.execute(insert(table), rows)
