-- ScanGate schema. Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Times are Unix milliseconds (BIGINT); booleans are BIGINT 0/1; lists are JSON text.
-- Constraint names matter: the store maps unique violations on them to `conflict`.

CREATE TABLE pools (
    slug        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE miniprograms (
    appid       TEXT PRIMARY KEY,
    pool        TEXT NOT NULL REFERENCES pools (slug),
    name        TEXT,
    -- AppSecret sealed with secret_key (AES-256-GCM).
    secret_enc  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE apps (
    client_id           TEXT PRIMARY KEY,
    pool                TEXT NOT NULL REFERENCES pools (slug),
    name                TEXT NOT NULL,
    logo                TEXT,
    -- Argon2id PHC string; NULL for a public client.
    client_secret_hash  TEXT,
    redirect_uris       TEXT NOT NULL,
    allowed_origins     TEXT NOT NULL,
    miniprogram         TEXT NOT NULL REFERENCES miniprograms (appid),
    qr_ttl_secs         BIGINT NOT NULL,
    require_binding     BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    pool            TEXT NOT NULL REFERENCES pools (slug),
    nickname        TEXT,
    avatar_url      TEXT,
    phone           TEXT,
    phone_country   TEXT,
    login_count     BIGINT NOT NULL DEFAULT 0,
    last_login_at   BIGINT,
    last_ip         TEXT,
    blocked         BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX users_pool_idx ON users (pool, created_at);

-- One row per (Mini Program, openid): the identity anchor. A unionid links identities of one
-- person (across Mini Programs of one Open Platform account) to one user.
CREATE TABLE identities (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    pool            TEXT NOT NULL REFERENCES pools (slug),
    appid           TEXT NOT NULL REFERENCES miniprograms (appid),
    openid          TEXT NOT NULL,
    unionid         TEXT,
    -- The latest session_key, sealed. It never leaves the server.
    session_key_enc TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    CONSTRAINT identities_appid_openid_key UNIQUE (appid, openid)
);

CREATE INDEX identities_unionid_idx ON identities (pool, unionid);
CREATE INDEX identities_user_idx ON identities (user_id);

-- Bearer tokens of the Mini Program API, stored as SHA-256.
CREATE TABLE mp_sessions (
    token_hash   TEXT PRIMARY KEY,
    identity_id  TEXT NOT NULL REFERENCES identities (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE INDEX mp_sessions_expiry_idx ON mp_sessions (expires_at);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    pool            TEXT NOT NULL REFERENCES pools (slug),
    alg             TEXT NOT NULL,
    -- PKCS#8 DER, sealed.
    private_key_enc TEXT NOT NULL,
    -- The public JWK as JSON.
    public_jwk      TEXT NOT NULL,
    -- 1 for the key that signs; old keys stay published until their tokens expire.
    active          BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    retired_at      BIGINT
);

CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (pool) WHERE active = 1;

CREATE TABLE avatars (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    content_type  TEXT NOT NULL,
    -- base64 of the image bytes (portable across both databases).
    data          TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    pool        TEXT,
    at          BIGINT NOT NULL,
    actor       TEXT,
    action      TEXT NOT NULL,
    subject     TEXT,
    ip          TEXT,
    detail      TEXT
);

CREATE INDEX audit_events_at_idx ON audit_events (pool, at);
