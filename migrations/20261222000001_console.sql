-- The admin console: each account gains a role and an optional pool scope (as API keys have),
-- its sessions live here so that signing out ends them on every instance, and every sign-in
-- attempt is kept for the account's history and for lockout.
-- Portable SQL (SQLite and PostgreSQL); times are Unix milliseconds.
ALTER TABLE admins ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';
ALTER TABLE admins ADD COLUMN pool TEXT;

CREATE TABLE admin_sessions (
    -- SHA-256 of the cookie's random token: the token itself is never stored.
    id_hash      TEXT PRIMARY KEY,
    username     TEXT NOT NULL REFERENCES admins (username) ON DELETE CASCADE,
    -- Sent back with every form and state-changing request (double submit is not enough:
    -- the token must be one this server handed to this session).
    csrf         TEXT NOT NULL,
    ip           TEXT NOT NULL,
    user_agent   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX admin_sessions_username_idx ON admin_sessions (username);

CREATE TABLE admin_sign_ins (
    id          TEXT PRIMARY KEY,
    -- As typed (truncated): a failure may name no account.
    username    TEXT NOT NULL,
    at          BIGINT NOT NULL,
    ip          TEXT NOT NULL,
    user_agent  TEXT NOT NULL,
    -- 1 signed in, 0 refused.
    ok          BIGINT NOT NULL
);
CREATE INDEX admin_sign_ins_username_idx ON admin_sign_ins (username, at);
CREATE INDEX admin_sign_ins_ip_idx ON admin_sign_ins (ip, at);
