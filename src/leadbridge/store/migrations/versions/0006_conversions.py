"""conversions: marketing sources, tracking numbers, calls, conversions and their imports

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import leadbridge.store.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_UTC = leadbridge.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_index("ix_browser_visitors_visitor_key", "browser_visitors", ["visitor_key"])
    op.create_table(
        "marketing_sources",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.Column("source", sa.String(length=300), nullable=True),
        sa.Column("campaign", sa.String(length=300), nullable=True),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_marketing_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_marketing_sources_name")),
    )
    op.create_table(
        "tracking_numbers",
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("marketing_source_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["marketing_source_id"], ["marketing_sources.id"],
                                name=op.f("fk_tracking_numbers_marketing_source_id_marketing_sources"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_tracking_numbers")),
    )
    op.create_table(
        "calls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("call_ref", sa.String(length=100), nullable=False),
        sa.Column("tracking_number", sa.String(length=20), nullable=False),
        sa.Column("caller_number", sa.String(length=20), nullable=True),
        sa.Column("started_at", _UTC(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("browser_visitor_id", sa.Integer(), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("marketing_source_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("call_ref", name=op.f("uq_calls_call_ref")),
    )
    op.create_table(
        "conversions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=True),
        sa.Column("occurred_at", _UTC(timezone=True), nullable=False),
        sa.Column("transaction_ref", sa.String(length=200), nullable=True),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("margin", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("visitor_key", sa.String(length=64), nullable=True),
        sa.Column("call_ref", sa.String(length=100), nullable=True),
        sa.Column("browser_visitor_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.BigInteger(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=300), nullable=False),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversions")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_conversions_dedupe_key")),
    )
    op.create_index("ix_conversions_occurred_at", "conversions", ["occurred_at"])
    op.create_index("ix_conversions_transaction_ref", "conversions", ["transaction_ref"],
                    sqlite_where=sa.text("transaction_ref IS NOT NULL"),
                    postgresql_where=sa.text("transaction_ref IS NOT NULL"))
    op.create_table(
        "conversion_imports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("filename", sa.String(length=500), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("started_at", _UTC(timezone=True), nullable=False),
        sa.Column("finished_at", _UTC(timezone=True), nullable=True),
        sa.Column("rows_read", sa.BigInteger(), nullable=False),
        sa.Column("accepted", sa.BigInteger(), nullable=False),
        sa.Column("merged", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion_imports")),
    )
    op.create_table(
        "conversion_rejections",
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("row_number", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["import_id"], ["conversion_imports.id"],
                                name=op.f("fk_conversion_rejections_import_id_conversion_imports"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("import_id", "row_number", name=op.f("pk_conversion_rejections")),
    )


def downgrade() -> None:
    op.drop_table("conversion_rejections")
    op.drop_table("conversion_imports")
    op.drop_index("ix_conversions_transaction_ref", table_name="conversions")
    op.drop_index("ix_conversions_occurred_at", table_name="conversions")
    op.drop_table("conversions")
    op.drop_table("calls")
    op.drop_table("tracking_numbers")
    op.drop_table("marketing_sources")
    op.drop_index("ix_browser_visitors_visitor_key", table_name="browser_visitors")
