"""The debian-archive feed: changelog mentions per suite and derived stable statuses.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "debian_archive_mention",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("source_package", sa.String(length=128), nullable=False),
        sa.Column("cve", sa.String(length=64), nullable=False),
        sa.Column("suite", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("confidence", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(["snapshot_id"], ["snapshot.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("debian_archive_mention", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_debian_archive_mention_source_package"), ["source_package"], unique=False
        )
    op.create_table(
        "debian_archive_status",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("source_package", sa.String(length=128), nullable=False),
        sa.Column("cve", sa.String(length=64), nullable=False),
        sa.Column("release", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("suite", sa.String(length=64), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("confidence", sa.String(length=8), nullable=False),
        sa.Column("candidate", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["snapshot_id"], ["snapshot.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("debian_archive_status", schema=None) as batch_op:
        batch_op.create_index(
            "ix_debian_archive_status_release_source",
            ["release", "source_package"],
            unique=False,
        )


def downgrade() -> None:
    op.drop_table("debian_archive_status")
    op.drop_table("debian_archive_mention")
