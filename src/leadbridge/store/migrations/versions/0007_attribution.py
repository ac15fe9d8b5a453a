"""attribution: conversion credits per touch, CRM records carrying marketing ids, goal events

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import leadbridge.store.tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_UTC = leadbridge.store.tables.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "conversion_credits",
        sa.Column("conversion_id", sa.Uuid(), nullable=False),
        sa.Column("touch", sa.Integer(), nullable=False),
        sa.Column("touches", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("campaign", sa.String(length=300), nullable=False),
        sa.Column("session_started_at", _UTC(timezone=True), nullable=True),
        sa.Column("w_first", sa.Float(), nullable=False),
        sa.Column("w_last", sa.Float(), nullable=False),
        sa.Column("w_linear", sa.Float(), nullable=False),
        sa.Column("w_position", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("conversion_id", "touch", name=op.f("pk_conversion_credits")),
    )
    op.create_table(
        "crm_marketing_refs",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("remote_object", sa.String(length=60), nullable=False),
        sa.Column("remote_id", sa.String(length=100), nullable=False),
        sa.Column("visitor_key", sa.String(length=64), nullable=True),
        sa.Column("call_ref", sa.String(length=100), nullable=True),
        sa.Column("seen_at", _UTC(timezone=True), nullable=False),
        sa.Column("conversion_id", sa.Uuid(), nullable=True),
        sa.Column("conversion_at", _UTC(timezone=True), nullable=True),
        sa.Column("due", sa.Boolean(), nullable=False),
        sa.Column("written", sa.JSON(), nullable=True),
        sa.Column("written_at", _UTC(timezone=True), nullable=True),
        sa.Column("write_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["connection_id"], ["connections.id"],
                                name=op.f("fk_crm_marketing_refs_connection_id_connections"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("connection_id", "remote_object", "remote_id",
                                name=op.f("pk_crm_marketing_refs")),
    )
    op.create_index("ix_crm_marketing_refs_visitor_key", "crm_marketing_refs", ["visitor_key"])
    op.create_index("ix_crm_marketing_refs_call_ref", "crm_marketing_refs", ["call_ref"])
    op.create_index("ix_crm_marketing_refs_conversion_id", "crm_marketing_refs",
                    ["conversion_id"])
    op.create_table(
        "crm_goal_events",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("remote_object", sa.String(length=60), nullable=False),
        sa.Column("remote_id", sa.String(length=100), nullable=False),
        sa.Column("stage", sa.String(length=100), nullable=False),
        sa.Column("conversion_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("recorded_at", _UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["connection_id"], ["connections.id"],
                                name=op.f("fk_crm_goal_events_connection_id_connections"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("connection_id", "remote_object", "remote_id", "stage",
                                name=op.f("pk_crm_goal_events")),
    )


def downgrade() -> None:
    op.drop_table("crm_goal_events")
    op.drop_index("ix_crm_marketing_refs_conversion_id", table_name="crm_marketing_refs")
    op.drop_index("ix_crm_marketing_refs_call_ref", table_name="crm_marketing_refs")
    op.drop_index("ix_crm_marketing_refs_visitor_key", table_name="crm_marketing_refs")
    op.drop_table("crm_marketing_refs")
    op.drop_table("conversion_credits")
