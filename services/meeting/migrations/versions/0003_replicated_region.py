"""a replicated meeting region: relays, placements, relay members, conference owners

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('relays',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('media_address', sa.String(length=200), nullable=False),
    sa.Column('control_url', sa.String(length=300), nullable=False),
    sa.Column('ca_file', sa.String(length=500), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lost', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_relays'))
    )
    op.create_table('relay_placements',
    sa.Column('conference_id', sa.String(length=32), nullable=False),
    sa.Column('relay_name', sa.String(length=64), nullable=False),
    sa.Column('moves', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('conference_id', name=op.f('pk_relay_placements'))
    )
    op.create_table('relay_members',
    sa.Column('participant_id', sa.String(length=64), nullable=False),
    sa.Column('conference_id', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('participant_id', name=op.f('pk_relay_members'))
    )
    op.create_index(op.f('ix_relay_members_conference_id'), 'relay_members', ['conference_id'], unique=False)
    op.create_table('conference_owners',
    sa.Column('conference_id', sa.String(length=32), nullable=False),
    sa.Column('replica_id', sa.String(length=64), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('snapshot', sa.JSON(), nullable=False),
    sa.Column('resume_tokens', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('conference_id', name=op.f('pk_conference_owners'))
    )


def downgrade() -> None:
    op.drop_table('conference_owners')
    op.drop_index(op.f('ix_relay_members_conference_id'), table_name='relay_members')
    op.drop_table('relay_members')
    op.drop_table('relay_placements')
    op.drop_table('relays')
