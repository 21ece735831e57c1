-- The management API: API keys, which rows the config file owns, a version per app, pool and
-- Mini Program for If-Match, and indexes for listing and searching users.
-- Portable SQL (SQLite and PostgreSQL); times are Unix milliseconds. It touches only tables of
-- the first migration, so it applies the same before or after the later-numbered ones.

CREATE TABLE admin_api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    -- viewer, admin or owner.
    role          TEXT NOT NULL,
    -- NULL: every pool.
    pool          TEXT REFERENCES pools (slug),
    -- SHA-256 (hex) of the key; the key itself is shown once and never stored.
    key_hash      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT,
    CONSTRAINT admin_api_keys_hash_key UNIQUE (key_hash)
);

-- 'config' for rows the config file declares (the API refuses to change them), else 'api'.
ALTER TABLE apps ADD COLUMN managed_by TEXT NOT NULL DEFAULT 'api';
ALTER TABLE miniprograms ADD COLUMN managed_by TEXT NOT NULL DEFAULT 'api';

-- Moves with every change; the API's ETag.
ALTER TABLE apps ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE pools ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE miniprograms ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

CREATE INDEX users_pool_id_idx ON users (pool, id);
CREATE INDEX users_pool_nickname_idx ON users (pool, nickname);
CREATE INDEX users_pool_phone_idx ON users (pool, phone);
CREATE INDEX identities_pool_openid_idx ON identities (pool, openid);
CREATE INDEX audit_events_pool_id_idx ON audit_events (pool, id);

-- Logos ScanGate serves at /media/logos/{digest}.png: normalised PNGs (base64, portable across
-- both databases), named by their SHA-256.
CREATE TABLE logos (
    digest      TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Linking before creating: users an operator provisions ahead of their first scan, keyed by
-- phone number and/or unionid, with the id the site knows them by; and which apps let a
-- stranger sign up.
ALTER TABLE users ADD COLUMN external_id TEXT;
ALTER TABLE users ADD COLUMN provisioned_unionid TEXT;
ALTER TABLE users ADD COLUMN provisioned_at BIGINT;
CREATE UNIQUE INDEX users_pool_external_id_key ON users (pool, external_id);
CREATE INDEX users_pool_provisioned_unionid_idx ON users (pool, provisioned_unionid);
-- 'open' (a first scan creates a user) or 'existing_only'.
ALTER TABLE apps ADD COLUMN signup TEXT NOT NULL DEFAULT 'open';
