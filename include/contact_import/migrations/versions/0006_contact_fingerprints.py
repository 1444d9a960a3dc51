"""contact_fingerprints: for each contact, the fingerprint of the file row whose import
left it as it is, and the triggers that forget it as soon as anything that row's outcome
depends on changes (docs/design.md#unchanged-rows).

A fingerprint says: "this row, imported again now under the same rules, changes nothing
and warns of nothing". It stays true until one of these changes, and each trigger
forgets the fingerprints that may have become false:

- the contact's customer (any field), or the set of contacts that customer has (a
  contact added, moved or removed): every contact of that customer;
- a customer taking an email or phone: every contact of the customers holding it (the
  oldest holder of an email is the one a row matches: another can cause an identity
  conflict). A new customer takes an id from the sequence, newer than every holder, so
  it never becomes the oldest holder: inserting customers forgets nothing, which keeps
  a first import of a million rows from probing every email it writes;
- the contact's tags, or a tag's name; its binding.

An import's own writes set `contact_import.applying` for their transaction and the
triggers leave them alone: each upsert chunk forgets, in the same transaction, what its
plan changed (unchanged.forget_changed: the same rules, from the plan's sets instead of
a join per statement, which cost a first import of a million rows about 20 s) before it
stores its rows' fingerprints; the binding step writes the bindings of rows whose
fingerprints the upsert has just stored (and forgotten for every other row it took), so
they stay true.

The workspace's rules (attribute definitions, teammates, stores, settings), the
mapping, the tag mode, the suite and the code are part of each fingerprint instead:
changing any of them changes every row's fingerprint.

Revision ID: 0006
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE cdp.contact_fingerprints (
    contact_id bigint PRIMARY KEY REFERENCES cdp.contacts ON DELETE CASCADE,
    fingerprint uuid NOT NULL
);

-- every contact of the given customers, and of the customers holding the given emails/phones
CREATE FUNCTION cdp.forget_fingerprints_of_customers(customer_ids bigint[], workspace bigint,
                                                     emails text[], phones text[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM cdp.contact_fingerprints f USING cdp.contacts c
    WHERE f.contact_id = c.id AND c.customer_id IN (
        SELECT unnest(customer_ids)
        UNION SELECT id FROM cdp.customers WHERE workspace_id = workspace AND email = ANY(emails)
        UNION SELECT id FROM cdp.customers WHERE workspace_id = workspace AND phone = ANY(phones))
$$;

CREATE FUNCTION cdp.customers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed record;
BEGIN
    IF current_setting('contact_import.applying', true) = 'on'
       OR NOT EXISTS (SELECT 1 FROM cdp.contact_fingerprints) THEN
        RETURN NULL;
    END IF;
    FOR changed IN
        SELECT workspace_id, array_agg(id) AS ids,
               array_agg(email) FILTER (WHERE email IS NOT NULL) AS emails,
               array_agg(phone) FILTER (WHERE phone IS NOT NULL) AS phones
        FROM new_rows GROUP BY workspace_id
    LOOP
        PERFORM cdp.forget_fingerprints_of_customers(
            changed.ids, changed.workspace_id,
            coalesce(changed.emails, '{}'), coalesce(changed.phones, '{}'));
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER customers_updated AFTER UPDATE ON cdp.customers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cdp.customers_changed();

-- a contact added to, moved between or removed from customers: the contacts of those customers
CREATE FUNCTION cdp.contacts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('contact_import.applying', true) = 'on'
       OR NOT EXISTS (SELECT 1 FROM cdp.contact_fingerprints) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        DELETE FROM cdp.contact_fingerprints f USING cdp.contacts c
        WHERE f.contact_id = c.id AND c.customer_id IN (SELECT customer_id FROM new_rows);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM cdp.contact_fingerprints f USING cdp.contacts c
        WHERE f.contact_id = c.id AND c.customer_id IN (SELECT customer_id FROM old_rows);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_inserted AFTER INSERT ON cdp.contacts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cdp.contacts_changed();
CREATE TRIGGER contacts_updated AFTER UPDATE ON cdp.contacts
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION cdp.contacts_changed();
CREATE TRIGGER contacts_deleted AFTER DELETE ON cdp.contacts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cdp.contacts_changed();

-- tags and bindings: the contacts they belong to
CREATE FUNCTION cdp.contact_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('contact_import.applying', true) = 'on'
       OR NOT EXISTS (SELECT 1 FROM cdp.contact_fingerprints) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        DELETE FROM cdp.contact_fingerprints WHERE contact_id IN (SELECT contact_id FROM new_rows);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM cdp.contact_fingerprints WHERE contact_id IN (SELECT contact_id FROM old_rows);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER contact_tags_inserted AFTER INSERT ON cdp.contact_tags
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cdp.contact_rows_changed();
CREATE TRIGGER contact_tags_updated AFTER UPDATE ON cdp.contact_tags
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION cdp.contact_rows_changed();
CREATE TRIGGER contact_tags_deleted AFTER DELETE ON cdp.contact_tags
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cdp.contact_rows_changed();
CREATE TRIGGER bindings_inserted AFTER INSERT ON cdp.bindings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cdp.contact_rows_changed();
CREATE TRIGGER bindings_updated AFTER UPDATE ON cdp.bindings
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION cdp.contact_rows_changed();
CREATE TRIGGER bindings_deleted AFTER DELETE ON cdp.bindings
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cdp.contact_rows_changed();

-- a tag renamed: the contacts that have it
CREATE FUNCTION cdp.tags_renamed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM cdp.contact_fingerprints WHERE contact_id IN (
        SELECT ct.contact_id FROM cdp.contact_tags ct
        JOIN new_rows n ON n.id = ct.tag_id JOIN old_rows o ON o.id = n.id
        WHERE n.name IS DISTINCT FROM o.name OR n.workspace_id IS DISTINCT FROM o.workspace_id);
    RETURN NULL;
END $$;

CREATE TRIGGER tags_updated AFTER UPDATE ON cdp.tags
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION cdp.tags_renamed();
""")


def downgrade() -> None:
    op.execute("""
DROP TRIGGER tags_updated ON cdp.tags;
DROP FUNCTION cdp.tags_renamed();
DROP TRIGGER contact_tags_inserted ON cdp.contact_tags;
DROP TRIGGER contact_tags_updated ON cdp.contact_tags;
DROP TRIGGER contact_tags_deleted ON cdp.contact_tags;
DROP TRIGGER bindings_inserted ON cdp.bindings;
DROP TRIGGER bindings_updated ON cdp.bindings;
DROP TRIGGER bindings_deleted ON cdp.bindings;
DROP FUNCTION cdp.contact_rows_changed();
DROP TRIGGER contacts_inserted ON cdp.contacts;
DROP TRIGGER contacts_updated ON cdp.contacts;
DROP TRIGGER contacts_deleted ON cdp.contacts;
DROP FUNCTION cdp.contacts_changed();
DROP TRIGGER customers_updated ON cdp.customers;
DROP FUNCTION cdp.customers_changed();
DROP FUNCTION cdp.forget_fingerprints_of_customers(bigint[], bigint, text[], text[]);
DROP TABLE cdp.contact_fingerprints;
""")
