"""ORM classes over the vulnerability database's tables (``schema.py``).

For ad-hoc queries and tests; kiln's own reads and writes use the Core tables, so a
scan does not load the ORM. Each class maps one table as it is; the annotations only
type the attributes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped

from kiln.vuln.db import schema


class Base(DeclarativeBase):
    metadata = schema.metadata


class SnapshotRow(Base):
    __table__ = schema.snapshot

    id: Mapped[int]
    source: Mapped[str]
    digest: Mapped[str]
    created_at: Mapped[str]
    origin: Mapped[str]
    counts: Mapped[dict[str, Any]]
    cursor: Mapped[str | None]


class TrackerRow(Base):
    __table__ = schema.tracker

    id: Mapped[int]
    snapshot_id: Mapped[int]
    source_package: Mapped[str]
    cve: Mapped[str]
    release: Mapped[str]
    status: Mapped[str]
    fixed_version: Mapped[str | None]
    urgency: Mapped[str | None]
    nodsa: Mapped[str | None]
    nodsa_reason: Mapped[str | None]


class TrackerCveRow(Base):
    __table__ = schema.tracker_cve

    cve: Mapped[str]
    snapshot_id: Mapped[int]
    description: Mapped[str]


class ChangelogRow(Base):
    __table__ = schema.changelog

    id: Mapped[int]
    snapshot_id: Mapped[int]
    source_package: Mapped[str]
    cve: Mapped[str]
    version: Mapped[str]
    distribution: Mapped[str]


class OsvAdvisoryRow(Base):
    __table__ = schema.osv_advisory

    id: Mapped[str]
    snapshot_id: Mapped[int]
    aliases: Mapped[list[str]]
    title: Mapped[str]
    modified: Mapped[str]
    published: Mapped[str | None]
    severity: Mapped[list[list[str]]]
    database_severity: Mapped[str | None]
    references: Mapped[list[str]]


class OsvAffectedRow(Base):
    __table__ = schema.osv_affected

    id: Mapped[int]
    advisory_id: Mapped[str]
    ecosystem: Mapped[str]
    package: Mapped[str]
    ranges: Mapped[list[dict[str, Any]]]
    versions: Mapped[list[str]]


class NvdRow(Base):
    __table__ = schema.nvd

    cve: Mapped[str]
    snapshot_id: Mapped[int]
    last_modified: Mapped[str]
    description: Mapped[str]
    cvss31_vector: Mapped[str | None]
    cvss31_score: Mapped[float | None]
    cvss40_vector: Mapped[str | None]
    cvss40_score: Mapped[float | None]
    cwes: Mapped[list[str]]
    references: Mapped[list[str]]
    configurations: Mapped[list[dict[str, Any]]]


class KevRow(Base):
    __table__ = schema.kev

    cve: Mapped[str]
    snapshot_id: Mapped[int]
    vendor: Mapped[str]
    product: Mapped[str]
    name: Mapped[str]
    date_added: Mapped[str]
    due_date: Mapped[str | None]
    known_ransomware: Mapped[str | None]


class EpssRow(Base):
    __table__ = schema.epss

    cve: Mapped[str]
    snapshot_id: Mapped[int]
    epss: Mapped[float]
    percentile: Mapped[float]
