"""Reading the vulnerability database for a scan: the rows about the scanned packages.

``read_vuln_data`` is the one query path, plain SQL that SQLite and PostgreSQL both run,
over any ``Rows`` executor. ``SqliteReader`` runs it on the standard library's
``sqlite3`` module, read-only, so that scanning with the default SQLite database loads
neither SQLAlchemy nor Alembic; ``scan_source.open_for_scan`` picks it when the file is
already at the newest schema and otherwise opens (creating or migrating) a ``VulnDB``.
This module imports nothing of ``store`` (which imports it).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from kiln.debian.cache import default_cache_root
from kiln.errors import EnvironmentProblem
from kiln.vuln.model import (
    ArchiveStatus,
    ChangelogFix,
    EpssRecord,
    KevRecord,
    NvdRecord,
    OsvAffected,
    OsvEvent,
    OsvRange,
    OsvRecord,
    Snapshot,
    TrackerStatus,
)

# The newest revision in migrations/versions: a database already there is read without
# loading Alembic (tests check this against Alembic's own head).
SCHEMA_HEAD = "0003"
T = TypeVar("T")


def as_db_url(value: str) -> str:
    """A database given as a file path or an SQLAlchemy URL -> an SQLAlchemy URL."""
    return value if "://" in value else f"sqlite:///{Path(value).expanduser().resolve()}"


def default_db_url(environ: Mapping[str, str] = os.environ) -> str:
    """``$KILN_DB`` (a path or an SQLAlchemy URL), else ``vuln.db`` in kiln's cache root."""
    configured = environ.get("KILN_DB")
    if configured:
        return as_db_url(configured)
    return f"sqlite:///{default_cache_root(environ) / 'vuln.db'}"


@dataclass(frozen=True)
class Held(Generic[T]):
    """A record with the snapshot that wrote it (findings name their snapshot)."""

    record: T
    snapshot_id: int


@dataclass(frozen=True)
class VulnData:
    """What the matcher needs, already narrowed to the scanned packages."""

    tracker: dict[str, tuple[Held[TrackerStatus], ...]] = field(default_factory=dict)
    changelog: dict[str, tuple[Held[ChangelogFix], ...]] = field(default_factory=dict)
    archive: dict[str, tuple[Held[ArchiveStatus], ...]] = field(default_factory=dict)
    osv: dict[tuple[str, str], tuple[Held[OsvRecord], ...]] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    nvd: dict[str, NvdRecord] = field(default_factory=dict)
    kev: dict[str, KevRecord] = field(default_factory=dict)
    epss: dict[str, EpssRecord] = field(default_factory=dict)
    snapshots: tuple[Snapshot, ...] = ()


class VulnSource(Protocol):
    """What a scan reads the database through (``VulnDB`` or ``SqliteReader``)."""

    def load(
        self,
        *,
        debian_sources: Iterable[str] = (),
        release: str | None = None,
        osv_keys: Iterable[tuple[str, str]] = (),
    ) -> VulnData: ...

    def close(self) -> None: ...


class Rows(Protocol):
    """Runs one SQL statement with ``:name`` parameters; returns its rows as tuples."""

    def __call__(
        self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] = ...
    ) -> list[tuple[Any, ...]]: ...


# Per-scan lookup keys, as temporary tables (not part of the migrated schema): each query
# joins them instead of sending one IN (...) list per 500 names and table.
_WANTED = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS kiln_wanted_source (name VARCHAR(256) PRIMARY KEY)",
    "CREATE TEMPORARY TABLE IF NOT EXISTS kiln_wanted_osv"
    " (ecosystem VARCHAR(64), name VARCHAR(256), PRIMARY KEY (ecosystem, name))",
    # no key: a CVE both OSV and Debian name may be listed twice
    "CREATE TEMPORARY TABLE IF NOT EXISTS kiln_wanted_cve (name VARCHAR(64))",
)
_WANTED_TABLES = ("kiln_wanted_source", "kiln_wanted_osv", "kiln_wanted_cve")
# IN (subquery) rather than a join: SQLite then walks the (release, source) index per
# wanted name instead of every row of the release (it has no statistics on temp tables).
_TRACKER_WHERE = (
    "FROM debian_tracker WHERE release = :release"
    " AND source_package IN (SELECT name FROM kiln_wanted_source)"
)
_CHANGELOG_WHERE = (
    "FROM debian_changelog_fix WHERE source_package IN (SELECT name FROM kiln_wanted_source)"
)
_ARCHIVE_WHERE = (
    "FROM debian_archive_status WHERE release = :release"
    " AND source_package IN (SELECT name FROM kiln_wanted_source)"
)
_OSV_HITS = (
    "SELECT a.advisory_id FROM osv_affected a JOIN kiln_wanted_osv w"
    " ON w.ecosystem = a.ecosystem AND w.name = a.package"
)
_SNAPSHOTS = "SELECT id, source, digest, created_at, origin, counts FROM snapshot ORDER BY id"


def _json(value: Any) -> Any:
    """A JSON column's value: SQLite hands back the text, PostgreSQL's driver the object."""
    return json.loads(value) if isinstance(value, str) else value


def _by_cve(rows: Rows, table: str, columns: str) -> list[tuple[Any, ...]]:
    """Rows of a CVE-keyed table for the wanted CVEs, one key lookup each (a CVE listed
    twice gives its row twice)."""
    return rows(
        f"SELECT {columns} FROM kiln_wanted_cve w JOIN {table} x ON x.cve = w.name"  # noqa: S608 - fixed names
    )


def read_snapshots(rows: Rows) -> list[Snapshot]:
    """Every snapshot, oldest first."""
    return [
        Snapshot(id=i, source=s, digest=d, created_at=c, counts=dict(_json(n) or {}), origin=o)
        for i, s, d, c, o, n in rows(_SNAPSHOTS)
    ]


def read_vuln_data(
    rows: Rows,
    *,
    debian_sources: Iterable[str] = (),
    release: str | None = None,
    osv_keys: Iterable[tuple[str, str]] = (),
) -> VulnData:
    """Everything known about these Debian source packages and OSV (ecosystem, name)s.

    ``rows`` must run every statement on one connection (the temporary tables live there).
    """
    sources = sorted(set(debian_sources))
    keys = sorted(set(osv_keys))
    for ddl in _WANTED:
        rows(ddl)
    for table in _WANTED_TABLES:  # left over on a pooled connection after a failure
        rows(f"DELETE FROM {table}")  # noqa: S608 - fixed names
    if sources:
        rows("INSERT INTO kiln_wanted_source (name) VALUES (:name)", [{"name": s} for s in sources])
    if keys:
        rows(
            "INSERT INTO kiln_wanted_osv (ecosystem, name) VALUES (:ecosystem, :name)",
            [{"ecosystem": e, "name": n} for e, n in keys],
        )
    by_release = {"release": release}
    tracker: dict[str, list[Held[TrackerStatus]]] = {}
    if release and sources:
        for src, cve, rel, status, fixed, urgency, nodsa, reason, snap in rows(
            "SELECT source_package, cve, release, status, fixed_version, urgency, nodsa,"
            f" nodsa_reason, snapshot_id {_TRACKER_WHERE} ORDER BY id",
            by_release,
        ):
            rec = TrackerStatus(src, cve, rel, status, fixed, urgency, nodsa, reason)
            tracker.setdefault(src, []).append(Held(rec, snap))
    changelog: dict[str, list[Held[ChangelogFix]]] = {}
    if sources:
        for src, cve, version, dist, snap in rows(
            f"SELECT source_package, cve, version, distribution, snapshot_id {_CHANGELOG_WHERE}"
            " ORDER BY id"
        ):
            changelog.setdefault(src, []).append(Held(ChangelogFix(src, cve, version, dist), snap))
    archive: dict[str, list[Held[ArchiveStatus]]] = {}
    if release and sources:
        for row in rows(
            "SELECT source_package, cve, release, status, version, suite, line, confidence,"
            f" candidate, snapshot_id {_ARCHIVE_WHERE} ORDER BY id",
            by_release,
        ):
            archive.setdefault(row[0], []).append(Held(ArchiveStatus(*row[:9]), row[9]))
    osv, osv_cves = _read_osv(rows, set(keys)) if keys else ({}, set())
    # Every CVE named above, gathered by the database rather than sent back to it.
    rows(
        f"INSERT INTO kiln_wanted_cve (name) SELECT cve {_TRACKER_WHERE}"
        f" UNION SELECT cve {_CHANGELOG_WHERE} UNION SELECT cve {_ARCHIVE_WHERE}",
        by_release,
    )
    if osv_cves:
        rows("INSERT INTO kiln_wanted_cve (name) VALUES (:name)", [{"name": c} for c in osv_cves])
    descriptions = dict(_by_cve(rows, "debian_tracker_cve", "x.cve, x.description"))
    nvd = {
        cve: NvdRecord(cve, modified, text, v31, s31, v40, s40, tuple(_json(cw)), tuple(_json(rf)))
        for cve, modified, text, v31, s31, v40, s40, cw, rf in _by_cve(
            rows,
            "nvd_cve",
            "x.cve, x.last_modified, x.description, x.cvss31_vector, x.cvss31_score,"
            ' x.cvss40_vector, x.cvss40_score, x.cwes, x."references"',
        )
    }
    kev = {
        r[0]: KevRecord(*r)
        for r in _by_cve(
            rows,
            "kev",
            "x.cve, x.vendor, x.product, x.name, x.date_added, x.due_date, x.known_ransomware",
        )
    }
    epss = {r[0]: EpssRecord(*r) for r in _by_cve(rows, "epss", "x.cve, x.epss, x.percentile")}
    for table in _WANTED_TABLES:
        rows(f"DELETE FROM {table}")  # noqa: S608 - fixed names
    used = {
        h.snapshot_id for m in (tracker, changelog, archive, osv) for hs in m.values() for h in hs
    }
    every = read_snapshots(rows)
    current = {s.source: s.id for s in every}.values()  # the newest of each source
    return VulnData(
        tracker={k: tuple(v) for k, v in tracker.items()},
        changelog={k: tuple(v) for k, v in changelog.items()},
        archive={k: tuple(v) for k, v in archive.items()},
        osv={k: tuple(v) for k, v in osv.items()},
        descriptions=descriptions,
        nvd=nvd,
        kev=kev,
        epss=epss,
        # the current snapshot of each source plus any older one a row came from
        snapshots=tuple(s for s in every if s.id in used or s.id in current),
    )


def _read_osv(
    rows: Rows, wanted: set[tuple[str, str]]
) -> tuple[dict[tuple[str, str], list[Held[OsvRecord]]], set[str]]:
    """OSV advisories affecting the wanted (ecosystem, package)s, and the CVEs they name."""
    affected: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows(
        "SELECT id, advisory_id, ecosystem, package, ranges, versions FROM osv_affected"  # noqa: S608
        f" WHERE advisory_id IN ({_OSV_HITS}) ORDER BY id"
    ):
        affected.setdefault(row[1], []).append(row)
    osv: dict[tuple[str, str], list[Held[OsvRecord]]] = {}
    cves: set[str] = set()
    for adv_id, snap, aliases, title, modified, published, severity, db_sev, refs in rows(
        "SELECT id, snapshot_id, aliases, title, modified, published, severity,"  # noqa: S608
        f' database_severity, "references" FROM osv_advisory WHERE id IN ({_OSV_HITS})'
        " ORDER BY id"
    ):
        aff_rows = affected[adv_id]
        record = OsvRecord(
            id=adv_id,
            aliases=tuple(_json(aliases)),
            summary=title,
            details="",
            modified=modified,
            published=published,
            severity=tuple((s[0], s[1]) for s in _json(severity)),
            database_severity=db_sev,
            references=tuple(_json(refs)),
            affected=tuple(
                OsvAffected(
                    ecosystem=eco,
                    package=pkg,
                    ranges=tuple(
                        OsvRange(r["type"], tuple(OsvEvent(**e) for e in r["events"]))
                        for r in _json(ranges)
                    ),
                    versions=tuple(_json(versions)),
                )
                for _, _, eco, pkg, ranges, versions in aff_rows
            ),
        )
        held = Held(record, snap)
        for _, _, eco, pkg, _, _ in aff_rows:
            if (eco, pkg) not in wanted:  # only the scanned packages, as asked
                continue
            bucket = osv.setdefault((eco, pkg), [])
            if held not in bucket:
                bucket.append(held)
        cves.update(i for i in (adv_id, *record.aliases) if i.startswith("CVE-"))
    return osv, cves


class SqliteReader:
    """A vulnerability database file read through ``sqlite3``, read-only."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self._path = path

    @classmethod
    def open_current(cls, url: str) -> SqliteReader | None:
        """The database at an ``sqlite:///PATH`` URL if it exists at ``SCHEMA_HEAD``;
        ``None`` for any other URL or state (``VulnDB.open`` creates and migrates)."""
        path = url.removeprefix("sqlite:///")
        if path == url or not path or "?" in path or not Path(path).is_file():
            return None
        try:
            conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
        except sqlite3.Error:
            return None
        try:
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        except sqlite3.Error:
            revision = []
        if revision != [(SCHEMA_HEAD,)]:
            conn.close()
            return None
        return cls(conn, path)

    def _rows(
        self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] = ()
    ) -> list[tuple[Any, ...]]:
        if isinstance(params, Sequence) and params:
            self._conn.executemany(sql, params)
            return []
        return self._conn.execute(sql, params).fetchall()

    def load(
        self,
        *,
        debian_sources: Iterable[str] = (),
        release: str | None = None,
        osv_keys: Iterable[tuple[str, str]] = (),
    ) -> VulnData:
        """As ``VulnDB.load``."""
        try:
            return read_vuln_data(
                self._rows, debian_sources=debian_sources, release=release, osv_keys=osv_keys
            )
        except sqlite3.Error as exc:
            raise EnvironmentProblem(
                f"cannot read the vulnerability database {self._path}: {exc}",
                hint="another kiln process may be writing it; try again",
            ) from exc
        finally:
            self._conn.rollback()  # only the temporary tables were written

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot, oldest first."""
        return read_snapshots(self._rows)

    def close(self) -> None:
        self._conn.close()
