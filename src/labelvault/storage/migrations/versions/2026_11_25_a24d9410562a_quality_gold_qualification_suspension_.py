"""quality: gold tasks, qualification, skills, suspensions, cached results

Revision ID: a24d9410562a
Revises: df0bd636b6e8
Create Date: 2026-11-25 18:47:08.888787
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from labelvault.storage.rls import disable_statements, enable_statements

revision = 'a24d9410562a'
down_revision = 'df0bd636b6e8'
branch_labels = None
depends_on = None

# New client-owned tables: row-level security as on every other client table.
TABLES = ("labeler_skills", "qualification_results", "quality_cache", "suspensions", "gold_scores")


def upgrade() -> None:
    op.create_table('labeler_skills',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('skill', sa.String(length=100), nullable=False),
    sa.Column('granted_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_labeler_skills_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['granted_by'], ['users.id'], name=op.f('fk_labeler_skills_granted_by_users')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_labeler_skills_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_labeler_skills')),
    sa.UniqueConstraint('client_id', 'user_id', 'skill', name='uq_labeler_skills_client_user_skill')
    )
    with op.batch_alter_table('labeler_skills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_labeler_skills_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_labeler_skills_user_id'), ['user_id'], unique=False)

    op.create_table('qualification_results',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('granted_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_qualification_results_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['granted_by'], ['users.id'], name=op.f('fk_qualification_results_granted_by_users')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_qualification_results_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_qualification_results_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qualification_results')),
    sa.UniqueConstraint('project_id', 'user_id', name='uq_qualification_results_project_user')
    )
    with op.batch_alter_table('qualification_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qualification_results_client_id'), ['client_id'], unique=False)

    op.create_table('quality_cache',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('version', sa.String(length=100), nullable=False),
    sa.Column('data_key_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_quality_cache_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['data_key_id'], ['data_keys.id'], name=op.f('fk_quality_cache_data_key_id_data_keys')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_quality_cache_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quality_cache')),
    sa.UniqueConstraint('project_id', 'kind', name='uq_quality_cache_project_kind')
    )
    with op.batch_alter_table('quality_cache', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quality_cache_client_id'), ['client_id'], unique=False)

    op.create_table('suspensions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('accuracy', sa.Float(), nullable=True),
    sa.Column('upper', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('lifted_at', sa.DateTime(), nullable=True),
    sa.Column('lifted_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_suspensions_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lifted_by'], ['users.id'], name=op.f('fk_suspensions_lifted_by_users')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_suspensions_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_suspensions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suspensions'))
    )
    with op.batch_alter_table('suspensions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suspensions_client_id'), ['client_id'], unique=False)
        batch_op.create_index('ix_suspensions_project_user', ['project_id', 'user_id'], unique=False)

    op.create_table('gold_scores',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('task_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('answer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('question', sa.String(length=200), nullable=False),
    sa.Column('credit', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['answer_id'], ['answers.id'], name=op.f('fk_gold_scores_answer_id_answers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_gold_scores_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_gold_scores_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_gold_scores_task_id_tasks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_gold_scores_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gold_scores')),
    sa.UniqueConstraint('answer_id', 'question', name='uq_gold_scores_answer_question')
    )
    with op.batch_alter_table('gold_scores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gold_scores_client_id'), ['client_id'], unique=False)
        batch_op.create_index('ix_gold_scores_project_user', ['project_id', 'user_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_gold_scores_task_id'), ['task_id'], unique=False)

    # Plain ALTER TABLE (no batch copy): a copy on SQLite would lose the DESC order of ix_tasks_queue.
    with op.batch_alter_table('projects', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('gold_rate', sa.Float(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('show_gold_feedback', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('qualification_required', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('qualification_pass_mark', sa.Float(), server_default='0.8', nullable=False))
        batch_op.add_column(sa.Column('required_skills_json', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('suspension_threshold', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('suspension_min_answers', sa.Integer(), server_default='10', nullable=False))
        batch_op.add_column(sa.Column('max_overlap', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('confidence_threshold', sa.Float(), server_default='0.7', nullable=False))
        batch_op.add_column(sa.Column('quality_version', sa.BigInteger(), server_default='0', nullable=False))

    # Plain ALTER TABLE (no batch copy): a copy on SQLite would lose the DESC order of ix_tasks_queue.
    with op.batch_alter_table('tasks', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('is_gold', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('in_qualification', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('gold_answer', sa.LargeBinary(), nullable=True))

    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            for statement in enable_statements(table):
                op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            for statement in disable_statements(table):
                op.execute(statement)
    with op.batch_alter_table('tasks', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('gold_answer')
        batch_op.drop_column('in_qualification')
        batch_op.drop_column('is_gold')

    with op.batch_alter_table('projects', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('quality_version')
        batch_op.drop_column('confidence_threshold')
        batch_op.drop_column('max_overlap')
        batch_op.drop_column('suspension_min_answers')
        batch_op.drop_column('suspension_threshold')
        batch_op.drop_column('required_skills_json')
        batch_op.drop_column('qualification_pass_mark')
        batch_op.drop_column('qualification_required')
        batch_op.drop_column('show_gold_feedback')
        batch_op.drop_column('gold_rate')

    with op.batch_alter_table('gold_scores', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gold_scores_task_id'))
        batch_op.drop_index('ix_gold_scores_project_user')
        batch_op.drop_index(batch_op.f('ix_gold_scores_client_id'))

    op.drop_table('gold_scores')
    with op.batch_alter_table('suspensions', schema=None) as batch_op:
        batch_op.drop_index('ix_suspensions_project_user')
        batch_op.drop_index(batch_op.f('ix_suspensions_client_id'))

    op.drop_table('suspensions')
    with op.batch_alter_table('quality_cache', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quality_cache_client_id'))

    op.drop_table('quality_cache')
    with op.batch_alter_table('qualification_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qualification_results_client_id'))

    op.drop_table('qualification_results')
    with op.batch_alter_table('labeler_skills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_labeler_skills_user_id'))
        batch_op.drop_index(batch_op.f('ix_labeler_skills_client_id'))

    op.drop_table('labeler_skills')
