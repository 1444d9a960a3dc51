"""The import option "complete local numbers with the workspace's region"
(imports.complete_local_phones, off by default: the international form is the contract),
and which stage found each warning row (import_warnings.found_by): validation's
`phone_completed` rows stay when an upsert starts again from its first chunk and
replaces its own.

Revision ID: 0009
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
ALTER TABLE cdp.imports ADD COLUMN complete_local_phones boolean NOT NULL DEFAULT false;
ALTER TABLE cdp.import_warnings ADD COLUMN found_by text NOT NULL DEFAULT 'upsert'
    CHECK (found_by IN ('validation', 'upsert'));
""")


def downgrade() -> None:
    op.execute("""
ALTER TABLE cdp.import_warnings DROP COLUMN found_by;
ALTER TABLE cdp.imports DROP COLUMN complete_local_phones;
""")
