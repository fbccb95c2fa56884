"""segments with a recording quota, and the enterprise's Teams access (interop gateway legs)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08 00:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # existing enterprises keep admitting interop legs, as they did before this column
    op.add_column(
        "enterprises",
        sa.Column("interop_enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    op.create_table(
        "segments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("enterprise_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("recording_minutes", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["enterprise_id"],
            ["enterprises.id"],
            name=op.f("fk_segments_enterprise_id_enterprises"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("enterprise_id", "name", name=op.f("uq_segments_enterprise_id")),
    )
    op.create_index(op.f("ix_segments_enterprise_id"), "segments", ["enterprise_id"], unique=False)
    op.create_table(
        "segment_members",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("segment_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_segment_members_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segments.id"], name=op.f("fk_segment_members_segment_id_segments")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_segment_members")),
    )
    op.create_index(
        op.f("ix_segment_members_segment_id"), "segment_members", ["segment_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_segment_members_segment_id"), table_name="segment_members")
    op.drop_table("segment_members")
    op.drop_index(op.f("ix_segments_enterprise_id"), table_name="segments")
    op.drop_table("segments")
    with op.batch_alter_table("enterprises") as batch:
        batch.drop_column("interop_enabled")
