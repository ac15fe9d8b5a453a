"""Case-insensitive lookups of match keys (contact email, organisation domain) use an index.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_contacts_email_lower", "contacts", [sa.func.lower(sa.text("email"))])
    op.create_index("ix_organisations_domain_lower", "organisations",
                    [sa.func.lower(sa.text("domain"))])


def downgrade() -> None:
    op.drop_index("ix_organisations_domain_lower", table_name="organisations")
    op.drop_index("ix_contacts_email_lower", table_name="contacts")
