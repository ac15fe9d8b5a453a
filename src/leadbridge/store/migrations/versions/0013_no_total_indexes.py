"""totals: no index on the columns every hit changes (score weight, last visit)

Every stored hit changes the score weight of its Website Visitor and contact and the Website
Visitor's last visit, so an index on them is rewritten on every batch. On PostgreSQL it also
rules out heap-only updates: each update then writes a new entry into every index of the
table, and the writer's backend spent twice the CPU per hit. The views that filter on the last
visit or order by score read the table and sort what their filters leave; the band-change query
of the sync reads the table together with `updated_at`, which has no index either.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_organisations_score_weight", table_name="organisations")
    op.drop_index("ix_contacts_score_weight", table_name="contacts")
    op.drop_index("ix_organisations_last_visit_at", table_name="organisations")


def downgrade() -> None:
    op.create_index("ix_organisations_last_visit_at", "organisations", ["last_visit_at"])
    op.create_index("ix_contacts_score_weight", "contacts", ["score_weight"])
    op.create_index("ix_organisations_score_weight", "organisations", ["score_weight"])
