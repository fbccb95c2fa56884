"""initial meeting store

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 10:33:11.920122
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('enterprises',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('region', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('contract_end', sa.Date(), nullable=True),
    sa.Column('chat_enabled', sa.Boolean(), nullable=False),
    sa.Column('recording_enabled', sa.Boolean(), nullable=False),
    sa.Column('live_streaming_enabled', sa.Boolean(), nullable=False),
    sa.Column('recording_view_restricted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enterprises'))
    )
    op.create_table('operation_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('enterprise_id', sa.String(length=64), nullable=True),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operation_log'))
    )
    op.create_index(op.f('ix_operation_log_action'), 'operation_log', ['action'], unique=False)
    op.create_index(op.f('ix_operation_log_at'), 'operation_log', ['at'], unique=False)
    op.create_index(op.f('ix_operation_log_enterprise_id'), 'operation_log', ['enterprise_id'], unique=False)
    op.create_table('call_records',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('enterprise_id', sa.String(length=32), nullable=False),
    sa.Column('conference_id', sa.String(length=40), nullable=False),
    sa.Column('region', sa.String(length=8), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_call_records_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_records'))
    )
    op.create_index(op.f('ix_call_records_conference_id'), 'call_records', ['conference_id'], unique=False)
    op.create_index(op.f('ix_call_records_enterprise_id'), 'call_records', ['enterprise_id'], unique=False)
    op.create_table('custom_roles',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('enterprise_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('permissions', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_custom_roles_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_custom_roles')),
    sa.UniqueConstraint('enterprise_id', 'name', name=op.f('uq_custom_roles_enterprise_id'))
    )
    op.create_index(op.f('ix_custom_roles_enterprise_id'), 'custom_roles', ['enterprise_id'], unique=False)
    op.create_table('accounts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('enterprise_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('custom_role_id', sa.String(length=32), nullable=True),
    sa.Column('username', sa.String(length=254), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('sso', sa.Boolean(), nullable=False),
    sa.Column('first_name', sa.String(length=100), nullable=True),
    sa.Column('last_name', sa.String(length=100), nullable=True),
    sa.Column('address', sa.String(length=300), nullable=True),
    sa.Column('company', sa.String(length=200), nullable=True),
    sa.Column('access', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('registration_digest', sa.String(length=64), nullable=True),
    sa.Column('cert_serial', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['custom_role_id'], ['custom_roles.id'], name=op.f('fk_accounts_custom_role_id_custom_roles')),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_accounts_enterprise_id_enterprises')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('cert_serial', name=op.f('uq_accounts_cert_serial')),
    sa.UniqueConstraint('registration_digest', name=op.f('uq_accounts_registration_digest')),
    sa.UniqueConstraint('username', name=op.f('uq_accounts_username'))
    )
    op.create_index(op.f('ix_accounts_enterprise_id'), 'accounts', ['enterprise_id'], unique=False)
    op.create_table('call_legs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('left_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('encrypted', sa.Boolean(), nullable=False),
    sa.Column('transport', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['call_records.id'], name=op.f('fk_call_legs_call_id_call_records')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_legs'))
    )
    op.create_index(op.f('ix_call_legs_account_id'), 'call_legs', ['account_id'], unique=False)
    op.create_index(op.f('ix_call_legs_call_id'), 'call_legs', ['call_id'], unique=False)
    op.create_table('account_sessions',
    sa.Column('token_digest', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_sessions_account_id_accounts')),
    sa.PrimaryKeyConstraint('token_digest', name=op.f('pk_account_sessions'))
    )
    op.create_index(op.f('ix_account_sessions_account_id'), 'account_sessions', ['account_id'], unique=False)
    op.create_table('conferences',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('enterprise_id', sa.String(length=32), nullable=False),
    sa.Column('owner_id', sa.String(length=32), nullable=False),
    sa.Column('region', sa.String(length=8), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('locked', sa.Boolean(), nullable=False),
    sa.Column('escalation', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_conferences_enterprise_id_enterprises')),
    sa.ForeignKeyConstraint(['owner_id'], ['accounts.id'], name=op.f('fk_conferences_owner_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conferences'))
    )
    op.create_index(op.f('ix_conferences_enterprise_id'), 'conferences', ['enterprise_id'], unique=False)
    op.create_index(op.f('ix_conferences_owner_id'), 'conferences', ['owner_id'], unique=False)
    op.create_table('recordings',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('enterprise_id', sa.String(length=32), nullable=False),
    sa.Column('conference_id', sa.String(length=40), nullable=False),
    sa.Column('region', sa.String(length=8), nullable=False),
    sa.Column('recorder_id', sa.String(length=32), nullable=False),
    sa.Column('participant_ids', sa.JSON(), nullable=False),
    sa.Column('shared_with', sa.JSON(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('file_name', sa.String(length=64), nullable=False),
    sa.Column('wrapped_key', sa.String(length=200), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], name=op.f('fk_recordings_enterprise_id_enterprises')),
    sa.ForeignKeyConstraint(['recorder_id'], ['accounts.id'], name=op.f('fk_recordings_recorder_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recordings'))
    )
    op.create_index(op.f('ix_recordings_conference_id'), 'recordings', ['conference_id'], unique=False)
    op.create_index(op.f('ix_recordings_enterprise_id'), 'recordings', ['enterprise_id'], unique=False)
    op.create_index(op.f('ix_recordings_recorder_id'), 'recordings', ['recorder_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_recordings_recorder_id'), table_name='recordings')
    op.drop_index(op.f('ix_recordings_enterprise_id'), table_name='recordings')
    op.drop_index(op.f('ix_recordings_conference_id'), table_name='recordings')
    op.drop_table('recordings')
    op.drop_index(op.f('ix_conferences_owner_id'), table_name='conferences')
    op.drop_index(op.f('ix_conferences_enterprise_id'), table_name='conferences')
    op.drop_table('conferences')
    op.drop_index(op.f('ix_account_sessions_account_id'), table_name='account_sessions')
    op.drop_table('account_sessions')
    op.drop_index(op.f('ix_call_legs_call_id'), table_name='call_legs')
    op.drop_index(op.f('ix_call_legs_account_id'), table_name='call_legs')
    op.drop_table('call_legs')
    op.drop_index(op.f('ix_accounts_enterprise_id'), table_name='accounts')
    op.drop_table('accounts')
    op.drop_index(op.f('ix_custom_roles_enterprise_id'), table_name='custom_roles')
    op.drop_table('custom_roles')
    op.drop_index(op.f('ix_call_records_enterprise_id'), table_name='call_records')
    op.drop_index(op.f('ix_call_records_conference_id'), table_name='call_records')
    op.drop_table('call_records')
    op.drop_index(op.f('ix_operation_log_enterprise_id'), table_name='operation_log')
    op.drop_index(op.f('ix_operation_log_at'), table_name='operation_log')
    op.drop_index(op.f('ix_operation_log_action'), table_name='operation_log')
    op.drop_table('operation_log')
    op.drop_table('enterprises')
