"""The cdp schema of docs/design.md#data-model.

Revision ID: 0001
"""
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE cdp.workspaces (
    id bigserial PRIMARY KEY,
    slug text NOT NULL UNIQUE,
    name text NOT NULL,
    omo_enabled boolean NOT NULL DEFAULT false,
    default_region char(2),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cdp.stores (
    id bigserial PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES cdp.workspaces ON DELETE CASCADE,
    code text NOT NULL,
    name text NOT NULL,
    UNIQUE (workspace_id, code)
);

CREATE TABLE cdp.teammates (
    id bigserial PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES cdp.workspaces ON DELETE CASCADE,
    email text NOT NULL,
    name text,
    role text NOT NULL CHECK (role IN ('admin', 'agent', 'sales_rep', 'sales_manager')),
    active boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX teammates_workspace_email ON cdp.teammates (workspace_id, lower(email));

CREATE TABLE cdp.teammate_stores (
    teammate_id bigint NOT NULL REFERENCES cdp.teammates ON DELETE CASCADE,
    store_id bigint NOT NULL REFERENCES cdp.stores ON DELETE CASCADE,
    PRIMARY KEY (teammate_id, store_id)
);

CREATE TABLE cdp.attribute_definitions (
    id bigserial PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES cdp.workspaces ON DELETE CASCADE,
    key text NOT NULL,
    label text NOT NULL,
    type text NOT NULL CHECK (type IN ('text', 'number', 'date', 'boolean', 'select')),
    options jsonb,
    UNIQUE (workspace_id, key)
);

CREATE TABLE cdp.customers (
    id bigserial PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES cdp.workspaces ON DELETE CASCADE,
    name text,
    email text,
    phone text,
    gender text CHECK (gender IN ('male', 'female', 'other')),
    birthday date,
    attributes jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_workspace_email ON cdp.customers (workspace_id, email) WHERE email IS NOT NULL;
CREATE INDEX customers_workspace_phone ON cdp.customers (workspace_id, phone) WHERE phone IS NOT NULL;

CREATE TABLE cdp.contacts (
    id bigserial PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES cdp.workspaces ON DELETE CASCADE,
    channel text NOT NULL,
    channel_user_id text NOT NULL,
    customer_id bigint NOT NULL REFERENCES cdp.customers,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, channel, channel_user_id)
);
CREATE INDEX contacts_customer ON cdp.contacts (customer_id);

CREATE TABLE cdp.tags (
    id bigserial PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES cdp.workspaces ON DELETE CASCADE,
    name text NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE cdp.contact_tags (
    contact_id bigint NOT NULL REFERENCES cdp.contacts ON DELETE CASCADE,
    tag_id bigint NOT NULL REFERENCES cdp.tags ON DELETE CASCADE,
    PRIMARY KEY (contact_id, tag_id)
);

CREATE TABLE cdp.bindings (
    contact_id bigint PRIMARY KEY REFERENCES cdp.contacts ON DELETE CASCADE,
    teammate_id bigint NOT NULL REFERENCES cdp.teammates ON DELETE CASCADE,
    store_id bigint NOT NULL REFERENCES cdp.stores ON DELETE CASCADE,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cdp.imports (
    id uuid PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES cdp.workspaces ON DELETE CASCADE,
    channel text NOT NULL,
    tag_mode text NOT NULL CHECK (tag_mode IN ('append', 'overwrite')),
    status text NOT NULL,
    source text NOT NULL,            -- 'cli', 'api', 'ui', 'feed'
    file_name text,
    file_uri text NOT NULL,
    file_sha256 text,
    work_dir text,
    encoding text,
    delimiter text,
    mapping jsonb,
    require_approval boolean NOT NULL DEFAULT false,
    total_rows integer,
    processed_rows integer NOT NULL DEFAULT 0,
    last_chunk integer NOT NULL DEFAULT -1,
    errors integer NOT NULL DEFAULT 0,
    warnings jsonb NOT NULL DEFAULT '{}'::jsonb,
    preview jsonb,
    result jsonb,
    error_report text,
    message text,
    dag_run_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX imports_workspace_created ON cdp.imports (workspace_id, created_at DESC);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP SCHEMA cdp CASCADE")
