"""The advisory event log: append-only events per (image, vulnerability).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "advisory_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("image", sa.String(length=200), nullable=False),
        sa.Column("vuln_id", sa.String(length=64), nullable=False),
        sa.Column("package", sa.String(length=256), nullable=True),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("time", sa.String(length=40), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("advisory_events", schema=None) as batch_op:
        batch_op.create_index("ix_advisory_events_image", ["image"], unique=False)
        batch_op.create_index(
            "ix_advisory_events_image_vuln", ["image", "vuln_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("advisory_events", schema=None) as batch_op:
        batch_op.drop_index("ix_advisory_events_image_vuln")
        batch_op.drop_index("ix_advisory_events_image")
    op.drop_table("advisory_events")
