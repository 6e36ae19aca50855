"""review, ledger and money settings

Revision ID: 85b7b0ded4b8
Revises: f8ae2518d79d
Create Date: 2026-11-25 18:19:00.970075
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '85b7b0ded4b8'
down_revision = 'f8ae2518d79d'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('answer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('review_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('task_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_ledger_entries_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_ledger_entries_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_ledger_entries_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_entries_answer_id'), ['answer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_user_id'), ['user_id'], unique=False)

    op.create_table('review_leases',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('task_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_review_leases_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_review_leases_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_review_leases_task_id_tasks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_review_leases_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_leases')),
    sa.UniqueConstraint('task_id', name=op.f('uq_review_leases_task_id'))
    )
    with op.batch_alter_table('review_leases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_leases_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_leases_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_leases_user_id'), ['user_id'], unique=False)

    op.create_table('reviews',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('task_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reviewer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('decision', sa.String(length=10), nullable=False),
    sa.Column('data_key_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('corrected_value', sa.LargeBinary(), nullable=True),
    sa.Column('reason', sa.LargeBinary(), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('time_spent_ms', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_reviews_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['data_key_id'], ['data_keys.id'], name=op.f('fk_reviews_data_key_id_data_keys')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_reviews_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_reviews_reviewer_id_users')),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_reviews_task_id_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews'))
    )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reviews_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reviews_project_id'), ['project_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reviews_task_id'), ['task_id'], unique=False)

    with op.batch_alter_table('answers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reviewed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('review_note', sa.LargeBinary(), nullable=True))
        batch_op.create_index('ix_answers_user_created', ['user_id', 'created_at'], unique=False)

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_policy', sa.String(length=20), nullable=False, server_default='none'))
        batch_op.add_column(sa.Column('review_sample_rate', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('pay_on', sa.String(length=10), nullable=False, server_default='submit'))
        batch_op.add_column(sa.Column('rate_per_answer', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('rate_per_review', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('question_rates_json', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('budget_cap', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('spent', sa.BigInteger(), nullable=False, server_default='0'))

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_state', sa.String(length=10), nullable=False, server_default='none'))
        batch_op.create_index('ix_tasks_review_queue', ['project_id', 'review_state', 'id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_review_queue')
        batch_op.drop_column('review_state')

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('spent')
        batch_op.drop_column('budget_cap')
        batch_op.drop_column('question_rates_json')
        batch_op.drop_column('rate_per_review')
        batch_op.drop_column('rate_per_answer')
        batch_op.drop_column('pay_on')
        batch_op.drop_column('review_sample_rate')
        batch_op.drop_column('review_policy')

    with op.batch_alter_table('answers', schema=None) as batch_op:
        batch_op.drop_index('ix_answers_user_created')
        batch_op.drop_column('review_note')
        batch_op.drop_column('reviewed_at')

    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reviews_task_id'))
        batch_op.drop_index(batch_op.f('ix_reviews_project_id'))
        batch_op.drop_index(batch_op.f('ix_reviews_client_id'))

    op.drop_table('reviews')
    with op.batch_alter_table('review_leases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_leases_user_id'))
        batch_op.drop_index(batch_op.f('ix_review_leases_expires_at'))
        batch_op.drop_index(batch_op.f('ix_review_leases_client_id'))

    op.drop_table('review_leases')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entries_user_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entries_project_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entries_created_at'))
        batch_op.drop_index(batch_op.f('ix_ledger_entries_client_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entries_answer_id'))

    op.drop_table('ledger_entries')

