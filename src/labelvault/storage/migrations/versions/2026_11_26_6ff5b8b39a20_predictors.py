"""model-assisted labeling: project predictors and the model version of each task's suggestion

Revision ID: 6ff5b8b39a20
Revises: 7954f55f9008
Create Date: 2026-11-26 01:26:18.107486
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from labelvault.storage.rls import disable_statements, enable_statements

revision = '6ff5b8b39a20'
down_revision = '7954f55f9008'
branch_labels = None
depends_on = None

TABLES = ("project_predictors", "task_predictions")


def upgrade() -> None:
    op.create_table('project_predictors',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('target', sa.String(length=2000), nullable=False),
    sa.Column('question', sa.String(length=200), nullable=False),
    sa.Column('model_name', sa.String(length=100), nullable=False),
    sa.Column('model_version', sa.String(length=100), nullable=False),
    sa.Column('batch_size', sa.Integer(), nullable=False),
    sa.Column('timeout_seconds', sa.Float(), nullable=False),
    sa.Column('auth_header', sa.String(length=100), nullable=True),
    sa.Column('auth_secret', sa.String(length=100), nullable=True),
    sa.Column('options_json', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_project_predictors_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_predictors_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_project_predictors')),
    sa.UniqueConstraint('project_id', name=op.f('uq_project_predictors_project_id'))
    )
    with op.batch_alter_table('project_predictors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_predictors_client_id'), ['client_id'], unique=False)

    op.create_table('task_predictions',
    sa.Column('task_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('model_version', sa.String(length=100), nullable=False),
    sa.Column('predicted_at', sa.DateTime(), nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_task_predictions_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_task_predictions_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_task_predictions_task_id_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('task_id', name=op.f('pk_task_predictions'))
    )
    with op.batch_alter_table('task_predictions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_predictions_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_predictions_project_id'), ['project_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            for statement in enable_statements(table):
                op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            for statement in disable_statements(table):
                op.execute(statement)
    with op.batch_alter_table('task_predictions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_predictions_project_id'))
        batch_op.drop_index(batch_op.f('ix_task_predictions_client_id'))

    op.drop_table('task_predictions')
    with op.batch_alter_table('project_predictors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_predictors_client_id'))

    op.drop_table('project_predictors')
