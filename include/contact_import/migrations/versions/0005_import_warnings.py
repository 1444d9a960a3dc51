"""import_warnings: the rows behind an import's warnings, written by the upsert with each
chunk's commit, so a resumed upsert keeps the earlier chunks' rows and the report is
exact without a preview.

Revision ID: 0005
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE cdp.import_warnings (
    import_id uuid NOT NULL REFERENCES cdp.imports(id) ON DELETE CASCADE,
    row integer,
    "column" text NOT NULL DEFAULT '',
    value text NOT NULL DEFAULT '',
    code text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX import_warnings_import ON cdp.import_warnings (import_id, row);
""")


def downgrade() -> None:
    op.execute("DROP TABLE cdp.import_warnings")
