"""The SQLite schema as an ordered list of migrations, and the code that applies them.

Each migration is a tuple of SQL statements. A database records how many migrations it has in
``schema_version``; opening a store applies the missing ones, each in its own transaction.
Never edit a released migration: append a new one.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: accounts, keys, usage events, billing records, audit log
    (
        """
        CREATE TABLE accounts (
            id          TEXT PRIMARY KEY,
            email       TEXT NOT NULL UNIQUE,
            first_name  TEXT NOT NULL,
            last_name   TEXT NOT NULL DEFAULT '',
            phone       TEXT,
            company     TEXT,
            billing     TEXT,
            role        TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
            status      TEXT NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'suspended', 'deleted')),
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL,
            deleted_at  TEXT
        )
        """,
        "CREATE INDEX accounts_created ON accounts (created_at, id)",
        """
        CREATE TABLE api_keys (
            id            TEXT PRIMARY KEY,
            account_id    TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            name          TEXT NOT NULL,
            prefix        TEXT NOT NULL,
            hash          TEXT NOT NULL UNIQUE,
            created_at    TEXT NOT NULL,
            last_used_at  TEXT,
            expires_at    TEXT,
            revoked       INTEGER NOT NULL DEFAULT 0,
            revoked_at    TEXT,
            rpm           INTEGER,
            tpm           INTEGER,
            concurrent    INTEGER,
            budget_usd    TEXT,
            models        TEXT
        )
        """,
        "CREATE INDEX api_keys_account ON api_keys (account_id, created_at)",
        """
        CREATE TABLE usage_events (
            request_id     TEXT NOT NULL UNIQUE,
            account_id     TEXT,
            key_id         TEXT,
            model          TEXT NOT NULL,
            provider       TEXT NOT NULL,
            input_tokens   INTEGER NOT NULL,
            output_tokens  INTEGER NOT NULL,
            cost_usd       TEXT NOT NULL,
            status         INTEGER NOT NULL,
            latency_ms     INTEGER NOT NULL,
            ip             TEXT,
            user_agent     TEXT,
            created_at     TEXT NOT NULL
        )
        """,
        "CREATE INDEX usage_events_created ON usage_events (created_at)",
        "CREATE INDEX usage_events_account ON usage_events (account_id, created_at)",
        "CREATE INDEX usage_events_key ON usage_events (key_id, created_at)",
        """
        CREATE TABLE billing_records (
            account_id     TEXT NOT NULL,
            month          TEXT NOT NULL,
            requests       INTEGER NOT NULL,
            input_tokens   INTEGER NOT NULL,
            output_tokens  INTEGER NOT NULL,
            cost_usd       TEXT NOT NULL,
            updated_at     TEXT NOT NULL,
            PRIMARY KEY (account_id, month)
        )
        """,
        """
        CREATE TABLE audit_log (
            id       TEXT PRIMARY KEY,
            at       TEXT NOT NULL,
            actor    TEXT NOT NULL,
            action   TEXT NOT NULL,
            target   TEXT,
            details  TEXT NOT NULL
        )
        """,
        "CREATE INDEX audit_log_at ON audit_log (at)",
        "CREATE INDEX audit_log_target ON audit_log (target, at)",
    ),
    # 2: metering (what served each request, token details, flags), account budgets, billing
    # line items and the closing of a month
    (
        "ALTER TABLE usage_events ADD COLUMN surface TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE usage_events ADD COLUMN provider_model TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE usage_events ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE usage_events ADD COLUMN error_type TEXT",
        "ALTER TABLE usage_events ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE usage_events ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE usage_events ADD COLUMN ttft_ms INTEGER",
        "ALTER TABLE usage_events ADD COLUMN streamed INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE usage_events ADD COLUMN flags TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE usage_events ADD COLUMN billable INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE usage_events ADD COLUMN client_request_id TEXT",
        "ALTER TABLE accounts ADD COLUMN budget_usd TEXT",
        "ALTER TABLE billing_records ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE billing_records ADD COLUMN lines TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE billing_records ADD COLUMN closed_at TEXT",
    ),
    # 3: privacy: allowed regions of accounts and keys, the audit log's hash chain (and no
    # edits or deletions of chained entries), objections, privacy-policy acceptance, job
    # leases, and indexes for the retention purges
    (
        "ALTER TABLE accounts ADD COLUMN regions TEXT",
        "ALTER TABLE api_keys ADD COLUMN regions TEXT",
        "ALTER TABLE audit_log ADD COLUMN seq INTEGER",
        "ALTER TABLE audit_log ADD COLUMN prev_hash TEXT",
        "ALTER TABLE audit_log ADD COLUMN hash TEXT",
        "CREATE UNIQUE INDEX audit_log_seq ON audit_log (seq)",
        """
        CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
        WHEN OLD.seq IS NOT NULL
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
        """,
        """
        CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
        """,
        """
        CREATE TABLE objections (
            id           TEXT PRIMARY KEY,
            account_id   TEXT NOT NULL,
            reason       TEXT NOT NULL,
            actor        TEXT NOT NULL,
            created_at   TEXT NOT NULL,
            decision     TEXT,
            status       TEXT NOT NULL DEFAULT 'open'
                         CHECK (status IN ('open', 'upheld', 'rejected')),
            resolved_at  TEXT,
            resolved_by  TEXT,
            resolution   TEXT
        )
        """,
        "CREATE INDEX objections_status ON objections (status, created_at)",
        "CREATE INDEX objections_account ON objections (account_id, created_at)",
        """
        CREATE TABLE policy_acceptances (
            account_id      TEXT PRIMARY KEY,
            version         TEXT,
            accepted_at     TEXT,
            notice_version  TEXT,
            notice_at       TEXT
        )
        """,
        """
        CREATE TABLE job_leases (
            name    TEXT PRIMARY KEY,
            holder  TEXT NOT NULL,
            until   TEXT NOT NULL
        )
        """,
        "CREATE INDEX accounts_deleted ON accounts (status, deleted_at)",
        "CREATE INDEX billing_records_month ON billing_records (month)",
    ),
    # 4: security: suspended keys (when, by whom, why) and the security plugin's events
    (
        "ALTER TABLE api_keys ADD COLUMN suspended_at TEXT",
        "ALTER TABLE api_keys ADD COLUMN suspended_by TEXT",
        "ALTER TABLE api_keys ADD COLUMN suspended_reason TEXT",
        """
        CREATE TABLE security_events (
            id          TEXT PRIMARY KEY,
            kind        TEXT NOT NULL,
            at          TEXT NOT NULL,
            action      TEXT NOT NULL CHECK (action IN ('log', 'suspend')),
            key_id      TEXT,
            account_id  TEXT,
            client      TEXT,
            reason      TEXT NOT NULL DEFAULT '',
            evidence    TEXT NOT NULL DEFAULT '{}'
        )
        """,
        "CREATE INDEX security_events_at ON security_events (at)",
        "CREATE INDEX security_events_account ON security_events (account_id, at)",
        "CREATE INDEX security_events_key ON security_events (key_id, at)",
    ),
    # 5: an objection names the automatic suspension it contests (its security event)
    (
        "ALTER TABLE objections ADD COLUMN event_id TEXT",
        "ALTER TABLE objections ADD COLUMN key_id TEXT",
        "ALTER TABLE objections ADD COLUMN decided_at TEXT",
    ),
    # 6: dashboard roles: owner keys (the only ones that manage the account in the dashboard;
    # keys from before are not), which key's session created a key, and dashboard sessions
    # ended by signing out (kept until the session would have expired)
    (
        "ALTER TABLE api_keys ADD COLUMN owner INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE api_keys ADD COLUMN created_by TEXT",
        """
        CREATE TABLE revoked_sessions (
            id     TEXT PRIMARY KEY,
            until  TEXT NOT NULL
        )
        """,
    ),
    # 7: uses of provider-run tools priced per use (web searches ...), as a JSON object
    (
        "ALTER TABLE usage_events ADD COLUMN server_tool_uses TEXT NOT NULL DEFAULT '{}'",
    ),
)


#: The triggers that keep the audit log append-only (migration 3), by name. Someone with the
#: file can drop them; :func:`restore_triggers` puts them back at every open.
AUDIT_TRIGGERS = {
    "audit_log_append_only_update": MIGRATIONS[2][6],
    "audit_log_append_only_delete": MIGRATIONS[2][7],
}


def restore_triggers(conn: sqlite3.Connection) -> list[str]:
    """Recreate the audit log's protection triggers that are missing; their names."""
    if schema_version(conn) < 3:
        return []
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    missing = [name for name in AUDIT_TRIGGERS if name not in present]
    for name in missing:
        # IF NOT EXISTS: another process opening the file may restore them at the same time.
        conn.execute(AUDIT_TRIGGERS[name].replace("TRIGGER", "TRIGGER IF NOT EXISTS", 1))
    return missing


class SchemaTooNewError(Exception):
    """The database was written by a newer onyproxy with migrations this one does not know."""


def schema_version(conn: sqlite3.Connection) -> int:
    """The number of migrations applied to ``conn``'s database (0 for a new file)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(
    conn: sqlite3.Connection, migrations: tuple[tuple[str, ...], ...] = MIGRATIONS
) -> int:
    """Apply the migrations ``conn`` lacks, each atomically; return the resulting version.

    The version is read under the write lock, so processes opening one file at the same time
    apply each migration once. ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = schema_version(conn)
            if current > len(migrations):
                raise SchemaTooNewError(
                    f"schema version {current} is newer than this onyproxy knows "
                    f"({len(migrations)})"
                )
            if current == len(migrations):
                conn.execute("COMMIT")
                return current
            for statement in migrations[current]:
                conn.execute(statement)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (current + 1,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
