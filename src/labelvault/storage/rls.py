"""PostgreSQL row-level security: the database enforces the client scope under the ORM's.

Every client-owned table gets RLS enabled and FORCEd (so even the table owner is filtered) with
one policy: a row is visible and writable only when its ``client_id`` equals the transaction's
``app.client_id`` setting, or when the transaction was opened for all clients (``app.all_clients``
= 'on', named operator work). The unit of work sets both with ``set_config(..., true)``, which
lasts until the end of the transaction and never leaks to the next user of a pooled connection;
after a transaction the settings read '' (not NULL), hence the NULLIF.

The application connects as a role that is neither owner nor superuser (superusers and BYPASSRLS
roles skip every policy); migrations run as the owner. ``grant_app_role`` gives such a role what
it needs, and no UPDATE or DELETE on the audit log.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

POLICY = "client_scope"
_PREDICATE = (
    "(current_setting('app.all_clients', true) = 'on'"
    " OR client_id = NULLIF(current_setting('app.client_id', true), '')::bigint)"
)
APPEND_ONLY_TABLES = ("audit_entries", "audit_checkpoints")


def enable_statements(table: str) -> list[str]:
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS {POLICY} ON {table}",
        f"CREATE POLICY {POLICY} ON {table} USING {_PREDICATE} WITH CHECK {_PREDICATE}",
    ]


def disable_statements(table: str) -> list[str]:
    return [
        f"DROP POLICY IF EXISTS {POLICY} ON {table}",
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ]


def _quote_ident(connection: Connection, name: str) -> str:
    return str(connection.execute(text("SELECT quote_ident(:n)"), {"n": name}).scalar())


def grant_app_role(connection: Connection, role: str) -> None:
    """Grant an (existing) application role what the app needs: DML on every table, sequences,
    and only SELECT and INSERT on the append-only audit tables. Run as the owner, after migrating."""
    quoted = _quote_ident(connection, role)
    is_superuser = connection.execute(
        text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": role}
    ).scalar()
    if is_superuser is None:
        raise ValueError(f"role {role!r} does not exist")
    if is_superuser:
        raise ValueError(f"role {role!r} is a superuser or bypasses RLS: the app must not use it")
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {quoted}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
    ]
    statements += [f"REVOKE UPDATE, DELETE, TRUNCATE ON {t} FROM {quoted}" for t in APPEND_ONLY_TABLES]
    # audit_head is updated by every append (the Merkle frontier); its rows are checked by verify.
    for statement in statements:
        connection.execute(text(statement))
