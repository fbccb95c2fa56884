"""device identity lifecycle: certificate expiry and a renewal awaiting its first use

Revision ID: 0004_lifecycle
Revises: 0003
Create Date: 2026-12-02 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("devices", sa.Column("cert_not_after", sa.DateTime(timezone=True), nullable=True))
    op.add_column("devices", sa.Column("renewed_cert_serial", sa.String(length=64), nullable=True))
    op.add_column(
        "devices", sa.Column("renewed_not_after", sa.DateTime(timezone=True), nullable=True)
    )
    # A unique index (not a constraint): SQLite cannot add a constraint to an existing table.
    op.create_index(
        op.f("ix_devices_renewed_cert_serial"), "devices", ["renewed_cert_serial"], unique=True
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_devices_renewed_cert_serial"), table_name="devices")
    op.drop_column("devices", "renewed_not_after")
    op.drop_column("devices", "renewed_cert_serial")
    op.drop_column("devices", "cert_not_after")
