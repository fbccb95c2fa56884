"""replicas that agree: one open alert per condition, one firmware command per rollout, device
and operation, device-chosen telemetry ids, and an index of undelivered commands

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN = "state IN ('active', 'acknowledged')"


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    # Open alerts raised twice by racing evaluators: keep the first of each condition open.
    op.execute(
        sa.text(
            f"UPDATE alerts SET state = 'cleared', cleared_at = raised_at WHERE {OPEN} AND id NOT IN"
            f" (SELECT min(id) FROM alerts WHERE {OPEN}"
            " GROUP BY device_id, rule, coalesce(component, ''))"
        )
    )
    op.create_index(
        "uq_alerts_open_condition",
        "alerts",
        ["device_id", "rule", sa.text("coalesce(component, '')")],
        unique=True,
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )

    op.add_column("device_commands", sa.Column("rollout_id", sa.String(length=32), nullable=True))
    op.add_column("device_commands", sa.Column("operation", sa.String(length=16), nullable=True))
    # Firmware commands already queued: the first of each (rollout, device, operation) is named.
    if postgres:
        rollout, operation = "payload->>'rollout_id'", "payload->>'op'"
    else:
        rollout, operation = "json_extract(payload, '$.rollout_id')", "json_extract(payload, '$.op')"
    op.execute(
        sa.text(
            f"UPDATE device_commands SET rollout_id = {rollout}, operation = {operation}"
            f" WHERE id IN (SELECT min(id) FROM device_commands WHERE kind = 'firmware'"
            f" AND {rollout} IS NOT NULL GROUP BY {rollout}, device_id, {operation})"
        )
    )
    op.create_index(
        "uq_device_commands_rollout_device_operation",
        "device_commands",
        ["rollout_id", "device_id", "operation"],
        unique=True,
    )
    op.create_index(
        "ix_device_commands_undelivered",
        "device_commands",
        ["device_id"],
        unique=False,
        postgresql_where=sa.text("delivered_at IS NULL"),
        sqlite_where=sa.text("delivered_at IS NULL"),
    )

    op.add_column("telemetry", sa.Column("report_id", sa.String(length=64), nullable=True))
    op.create_index(
        "uq_telemetry_device_id_report_id", "telemetry", ["device_id", "report_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_telemetry_device_id_report_id", table_name="telemetry")
    with op.batch_alter_table("telemetry") as batch:
        batch.drop_column("report_id")
    op.drop_index("ix_device_commands_undelivered", table_name="device_commands")
    op.drop_index("uq_device_commands_rollout_device_operation", table_name="device_commands")
    with op.batch_alter_table("device_commands") as batch:
        batch.drop_column("operation")
        batch.drop_column("rollout_id")
    op.drop_index("uq_alerts_open_condition", table_name="alerts")
