"""Initial vulnerability database schema: snapshots and one table per feed record type.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "snapshot",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("cursor", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("snapshot", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_snapshot_source"), ["source"], unique=False)

    op.create_table(
        "debian_changelog_fix",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("source_package", sa.String(length=128), nullable=False),
        sa.Column("cve", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("distribution", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshot.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("debian_changelog_fix", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_debian_changelog_fix_source_package"), ["source_package"], unique=False
        )

    op.create_table(
        "debian_tracker",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("source_package", sa.String(length=128), nullable=False),
        sa.Column("cve", sa.String(length=64), nullable=False),
        sa.Column("release", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fixed_version", sa.String(length=128), nullable=True),
        sa.Column("urgency", sa.String(length=32), nullable=True),
        sa.Column("nodsa", sa.Text(), nullable=True),
        sa.Column("nodsa_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshot.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("debian_tracker", schema=None) as batch_op:
        batch_op.create_index(
            "ix_debian_tracker_release_source", ["release", "source_package"], unique=False
        )

    op.create_table(
        "debian_tracker_cve",
        sa.Column("cve", sa.String(length=64), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshot.id"],
        ),
        sa.PrimaryKeyConstraint("cve"),
    )
    op.create_table(
        "epss",
        sa.Column("cve", sa.String(length=64), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("epss", sa.Float(), nullable=False),
        sa.Column("percentile", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshot.id"],
        ),
        sa.PrimaryKeyConstraint("cve"),
    )
    op.create_table(
        "kev",
        sa.Column("cve", sa.String(length=64), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("vendor", sa.Text(), nullable=False),
        sa.Column("product", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("date_added", sa.String(length=40), nullable=False),
        sa.Column("due_date", sa.String(length=40), nullable=True),
        sa.Column("known_ransomware", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshot.id"],
        ),
        sa.PrimaryKeyConstraint("cve"),
    )
    op.create_table(
        "nvd_cve",
        sa.Column("cve", sa.String(length=64), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("last_modified", sa.String(length=40), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("cvss31_vector", sa.String(length=128), nullable=True),
        sa.Column("cvss31_score", sa.Float(), nullable=True),
        sa.Column("cvss40_vector", sa.String(length=256), nullable=True),
        sa.Column("cvss40_score", sa.Float(), nullable=True),
        sa.Column("cwes", sa.JSON(), nullable=False),
        sa.Column("references", sa.JSON(), nullable=False),
        sa.Column("configurations", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshot.id"],
        ),
        sa.PrimaryKeyConstraint("cve"),
    )
    op.create_table(
        "osv_advisory",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("modified", sa.String(length=40), nullable=False),
        sa.Column("published", sa.String(length=40), nullable=True),
        sa.Column("severity", sa.JSON(), nullable=False),
        sa.Column("database_severity", sa.String(length=32), nullable=True),
        sa.Column("references", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshot.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "osv_affected",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("advisory_id", sa.String(length=128), nullable=False),
        sa.Column("ecosystem", sa.String(length=64), nullable=False),
        sa.Column("package", sa.String(length=256), nullable=False),
        sa.Column("ranges", sa.JSON(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["advisory_id"], ["osv_advisory.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("osv_affected", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_osv_affected_advisory_id"), ["advisory_id"], unique=False
        )
        batch_op.create_index(
            "ix_osv_affected_ecosystem_package", ["ecosystem", "package"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("osv_affected", schema=None) as batch_op:
        batch_op.drop_index("ix_osv_affected_ecosystem_package")
        batch_op.drop_index(batch_op.f("ix_osv_affected_advisory_id"))

    op.drop_table("osv_affected")
    op.drop_table("osv_advisory")
    op.drop_table("nvd_cve")
    op.drop_table("kev")
    op.drop_table("epss")
    op.drop_table("debian_tracker_cve")
    with op.batch_alter_table("debian_tracker", schema=None) as batch_op:
        batch_op.drop_index("ix_debian_tracker_release_source")

    op.drop_table("debian_tracker")
    with op.batch_alter_table("debian_changelog_fix", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_debian_changelog_fix_source_package"))

    op.drop_table("debian_changelog_fix")
    with op.batch_alter_table("snapshot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snapshot_source"))

    op.drop_table("snapshot")
