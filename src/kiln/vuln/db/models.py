"""SQLAlchemy 2.0 models of the vulnerability database (SQLite by default, PostgreSQL too).

One table per feed record type, each row tagged with the snapshot that wrote it; the
``snapshot`` table is the import history. Lookups are by (release, source package) for
Debian and (ecosystem, package) for OSV, hence the indexes. The schema is created and
upgraded only by the Alembic migrations in ``migrations/``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class SnapshotRow(Base):
    __tablename__ = "snapshot"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32), index=True)
    digest: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[str] = mapped_column(String(40))
    origin: Mapped[str] = mapped_column(Text)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    cursor: Mapped[str | None] = mapped_column(String(64))  # NVD: end of the last window


class TrackerRow(Base):
    __tablename__ = "debian_tracker"
    __table_args__ = (Index("ix_debian_tracker_release_source", "release", "source_package"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshot.id"))
    source_package: Mapped[str] = mapped_column(String(128))
    cve: Mapped[str] = mapped_column(String(64))
    release: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    fixed_version: Mapped[str | None] = mapped_column(String(128))
    urgency: Mapped[str | None] = mapped_column(String(32))
    nodsa: Mapped[str | None] = mapped_column(Text)
    nodsa_reason: Mapped[str | None] = mapped_column(String(32))


class TrackerCveRow(Base):
    __tablename__ = "debian_tracker_cve"

    cve: Mapped[str] = mapped_column(String(64), primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshot.id"))
    description: Mapped[str] = mapped_column(Text)


class ChangelogRow(Base):
    __tablename__ = "debian_changelog_fix"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshot.id"))
    source_package: Mapped[str] = mapped_column(String(128), index=True)
    cve: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(128))
    distribution: Mapped[str] = mapped_column(String(64))


class OsvAdvisoryRow(Base):
    __tablename__ = "osv_advisory"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshot.id"))
    aliases: Mapped[list[str]] = mapped_column(JSON)
    title: Mapped[str] = mapped_column(Text)
    modified: Mapped[str] = mapped_column(String(40))
    published: Mapped[str | None] = mapped_column(String(40))
    severity: Mapped[list[list[str]]] = mapped_column(JSON)
    database_severity: Mapped[str | None] = mapped_column(String(32))
    references: Mapped[list[str]] = mapped_column(JSON)


class OsvAffectedRow(Base):
    __tablename__ = "osv_affected"
    __table_args__ = (Index("ix_osv_affected_ecosystem_package", "ecosystem", "package"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    advisory_id: Mapped[str] = mapped_column(
        ForeignKey("osv_advisory.id", ondelete="CASCADE"), index=True
    )
    ecosystem: Mapped[str] = mapped_column(String(64))
    package: Mapped[str] = mapped_column(String(256))
    ranges: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    versions: Mapped[list[str]] = mapped_column(JSON)


class NvdRow(Base):
    __tablename__ = "nvd_cve"

    cve: Mapped[str] = mapped_column(String(64), primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshot.id"))
    last_modified: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text)
    cvss31_vector: Mapped[str | None] = mapped_column(String(128))
    cvss31_score: Mapped[float | None] = mapped_column(Float)
    cvss40_vector: Mapped[str | None] = mapped_column(String(256))
    cvss40_score: Mapped[float | None] = mapped_column(Float)
    cwes: Mapped[list[str]] = mapped_column(JSON)
    references: Mapped[list[str]] = mapped_column(JSON)
    configurations: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class KevRow(Base):
    __tablename__ = "kev"

    cve: Mapped[str] = mapped_column(String(64), primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshot.id"))
    vendor: Mapped[str] = mapped_column(Text)
    product: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    date_added: Mapped[str] = mapped_column(String(40))
    due_date: Mapped[str | None] = mapped_column(String(40))
    known_ransomware: Mapped[str | None] = mapped_column(String(32))


class EpssRow(Base):
    __tablename__ = "epss"

    cve: Mapped[str] = mapped_column(String(64), primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshot.id"))
    epss: Mapped[float] = mapped_column(Float)
    percentile: Mapped[float] = mapped_column(Float)
