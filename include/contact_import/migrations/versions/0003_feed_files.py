"""feed_files: each file a partner feed took, by content hash, so it is imported once.

Revision ID: 0003
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE cdp.feed_files (
    id bigserial PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES cdp.workspaces(id) ON DELETE CASCADE,
    feed text NOT NULL,
    sha256 text NOT NULL,
    uri text NOT NULL,               -- where the file was found in the inbox
    size bigint NOT NULL,
    modified text,                   -- the inbox's own modification stamp, to skip re-hashing
    import_id uuid REFERENCES cdp.imports(id) ON DELETE SET NULL,
    outcome text,                    -- NULL while the import runs; then 'done' or 'failed'
    moved_to text,                   -- where the file went when its import ended
    taken_at timestamptz NOT NULL DEFAULT now(),
    settled_at timestamptz,
    UNIQUE (workspace_id, feed, sha256)
)""")
    op.execute("CREATE INDEX feed_files_open ON cdp.feed_files (feed) WHERE settled_at IS NULL")


def downgrade() -> None:
    op.execute("DROP TABLE cdp.feed_files")
