"""The tables of the vulnerability database (SQLAlchemy Core; SQLite by default, PostgreSQL too).

One table per feed record type, each row tagged with the snapshot that wrote it; the
``snapshot`` table is the import history. Lookups are by (release, source package) for
Debian and (ecosystem, package) for OSV, hence the indexes. The schema is created and
upgraded only by the Alembic migrations in ``migrations/``. Plain Core tables, so that
a scan reads them without loading the ORM; ``models.py`` maps classes onto them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

snapshot = Table(
    "snapshot",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False, index=True),
    Column("digest", String(80), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("origin", Text, nullable=False),
    Column("counts", JSON, nullable=False),
    Column("cursor", String(64)),  # NVD: end of the last window
)

tracker = Table(
    "debian_tracker",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("snapshot_id", ForeignKey("snapshot.id"), nullable=False),
    Column("source_package", String(128), nullable=False),
    Column("cve", String(64), nullable=False),
    Column("release", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("fixed_version", String(128)),
    Column("urgency", String(32)),
    Column("nodsa", Text),
    Column("nodsa_reason", String(32)),
    Index("ix_debian_tracker_release_source", "release", "source_package"),
)

tracker_cve = Table(
    "debian_tracker_cve",
    metadata,
    Column("cve", String(64), primary_key=True),
    Column("snapshot_id", ForeignKey("snapshot.id"), nullable=False),
    Column("description", Text, nullable=False),
)

changelog = Table(
    "debian_changelog_fix",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("snapshot_id", ForeignKey("snapshot.id"), nullable=False),
    Column("source_package", String(128), nullable=False, index=True),
    Column("cve", String(64), nullable=False),
    Column("version", String(128), nullable=False),
    Column("distribution", String(64), nullable=False),
)

archive_mention = Table(
    "debian_archive_mention",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("snapshot_id", ForeignKey("snapshot.id"), nullable=False),
    Column("source_package", String(128), nullable=False, index=True),
    Column("cve", String(64), nullable=False),
    Column("suite", String(64), nullable=False),
    Column("version", String(128), nullable=False),
    Column("line", Text, nullable=False),
    Column("confidence", String(8), nullable=False),
)

archive_status = Table(
    "debian_archive_status",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("snapshot_id", ForeignKey("snapshot.id"), nullable=False),
    Column("source_package", String(128), nullable=False),
    Column("cve", String(64), nullable=False),
    Column("release", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", String(128), nullable=False),
    Column("suite", String(64), nullable=False),
    Column("line", Text, nullable=False),
    Column("confidence", String(8), nullable=False),
    Column("candidate", String(128), nullable=False),
    Index("ix_debian_archive_status_release_source", "release", "source_package"),
)

osv_advisory = Table(
    "osv_advisory",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("snapshot_id", ForeignKey("snapshot.id"), nullable=False),
    Column("aliases", JSON, nullable=False),
    Column("title", Text, nullable=False),
    Column("modified", String(40), nullable=False),
    Column("published", String(40)),
    Column("severity", JSON, nullable=False),
    Column("database_severity", String(32)),
    Column("references", JSON, nullable=False),
)

osv_affected = Table(
    "osv_affected",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "advisory_id",
        ForeignKey("osv_advisory.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("ecosystem", String(64), nullable=False),
    Column("package", String(256), nullable=False),
    Column("ranges", JSON, nullable=False),
    Column("versions", JSON, nullable=False),
    Index("ix_osv_affected_ecosystem_package", "ecosystem", "package"),
)

nvd = Table(
    "nvd_cve",
    metadata,
    Column("cve", String(64), primary_key=True),
    Column("snapshot_id", ForeignKey("snapshot.id"), nullable=False),
    Column("last_modified", String(40), nullable=False),
    Column("description", Text, nullable=False),
    Column("cvss31_vector", String(128)),
    Column("cvss31_score", Float),
    Column("cvss40_vector", String(256)),
    Column("cvss40_score", Float),
    Column("cwes", JSON, nullable=False),
    Column("references", JSON, nullable=False),
    Column("configurations", JSON, nullable=False),
)

kev = Table(
    "kev",
    metadata,
    Column("cve", String(64), primary_key=True),
    Column("snapshot_id", ForeignKey("snapshot.id"), nullable=False),
    Column("vendor", Text, nullable=False),
    Column("product", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("date_added", String(40), nullable=False),
    Column("due_date", String(40)),
    Column("known_ransomware", String(32)),
)

epss = Table(
    "epss",
    metadata,
    Column("cve", String(64), primary_key=True),
    Column("snapshot_id", ForeignKey("snapshot.id"), nullable=False),
    Column("epss", Float, nullable=False),
    Column("percentile", Float, nullable=False),
)

# The advisory event log (kiln.vuln.advisories): append-only, one row per event about one
# (image, vulnerability). ``data`` is the event's canonical JSON text (kind-specific, checked
# by the advisories package on write and on read). Reads are per image and per (image, vuln),
# in append order (``id``).
advisory_events = Table(
    "advisory_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("image", String(200), nullable=False),
    Column("vuln_id", String(64), nullable=False),
    Column("package", String(256)),
    Column("kind", String(48), nullable=False),
    Column("time", String(40), nullable=False),
    Column("data", Text, nullable=False),
    Index("ix_advisory_events_image", "image"),
    Index("ix_advisory_events_image_vuln", "image", "vuln_id", "id"),
)
