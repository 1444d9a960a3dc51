"""imports.step and friends: which step a running import is in (reading, checking,
preview, importing, binding) and how many of the file's rows that step has done, updated
once per chunk, so the page and the API can show movement, a rate and the time left.

step_rows_at_start: rows counted as done when the step started (rows validation left out
as unchanged, chunks an earlier attempt committed), kept out of the rate.

Revision ID: 0007
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
ALTER TABLE cdp.imports
    ADD COLUMN step text CHECK (step IN ('reading', 'checking', 'preview', 'importing', 'binding')),
    ADD COLUMN step_rows integer,
    ADD COLUMN step_rows_at_start integer,
    ADD COLUMN step_started_at timestamptz,
    ADD COLUMN step_updated_at timestamptz
""")


def downgrade() -> None:
    op.execute("""
ALTER TABLE cdp.imports
    DROP COLUMN step, DROP COLUMN step_rows, DROP COLUMN step_rows_at_start,
    DROP COLUMN step_started_at, DROP COLUMN step_updated_at
""")
