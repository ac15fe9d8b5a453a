"""jobs: the in-process job runner's queue (and procrastinate jobs' failure reasons)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import leadbridge.store.tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.Column("lock", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_at", leadbridge.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", leadbridge.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", leadbridge.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", leadbridge.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_until", leadbridge.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(length=100), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("procrastinate_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("procrastinate_id", name=op.f("uq_jobs_procrastinate_id")),
    )
    op.create_index("ix_jobs_status_run_at", "jobs", ["status", "run_at"])
    op.create_index("uq_jobs_waiting_key", "jobs", ["key"], unique=True,
                    sqlite_where=sa.text("status = 'waiting'"),
                    postgresql_where=sa.text("status = 'waiting'"))
    op.create_index("uq_jobs_running_lock", "jobs", ["lock"], unique=True,
                    sqlite_where=sa.text("status = 'running'"),
                    postgresql_where=sa.text("status = 'running'"))


def downgrade() -> None:
    op.drop_index("uq_jobs_running_lock", table_name="jobs")
    op.drop_index("uq_jobs_waiting_key", table_name="jobs")
    op.drop_index("ix_jobs_status_run_at", table_name="jobs")
    op.drop_table("jobs")
