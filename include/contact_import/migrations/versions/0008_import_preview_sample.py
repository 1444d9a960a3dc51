"""imports.preview_sample: the first concrete changes the preview found (up to 20: a
contact's stored value and the new one, tags added or removed, a new contact, a binding),
so the approval step and the page show what the import will change, not only counts.
Null for an import made without a preview.

Revision ID: 0008
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE cdp.imports ADD COLUMN preview_sample jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE cdp.imports DROP COLUMN preview_sample")
