"""imports.data_docs: where GX's page of a failed validation was stored, recorded when it
is written, so reading an import never has to look into object storage.

Revision ID: 0004
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE cdp.imports ADD COLUMN data_docs text")


def downgrade() -> None:
    op.execute("ALTER TABLE cdp.imports DROP COLUMN data_docs")
