"""imports.timings: seconds spent per stage and step, for operators and `make bench`.

Revision ID: 0002
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE cdp.imports ADD COLUMN timings jsonb NOT NULL DEFAULT '{}'::jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE cdp.imports DROP COLUMN timings")
