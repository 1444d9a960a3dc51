"""Who may use a workspace (its file's `access`): cdp.workspaces.access_users and
access_roles, both null for a workspace open to everyone Airflow lets use imports; and
cdp.imports.requested_by, the Airflow user the upload API accepted an import for (it
checked that user's access), so the import's DAG run knows its trigger was checked.

Revision ID: 0011
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE cdp.workspaces ADD COLUMN access_users text[], ADD COLUMN access_roles text[]")
    op.execute("ALTER TABLE cdp.imports ADD COLUMN requested_by text")


def downgrade() -> None:
    op.execute("ALTER TABLE cdp.imports DROP COLUMN requested_by")
    op.execute("ALTER TABLE cdp.workspaces DROP COLUMN access_users, DROP COLUMN access_roles")
