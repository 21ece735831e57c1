-- OpenID Connect: grants, authorization codes, refresh and access tokens, browser sessions.
-- Portable SQL (SQLite and PostgreSQL); times are Unix milliseconds; secrets stored as SHA-256.

-- Where an app may send the browser after RP-initiated logout (JSON list, exact match).
ALTER TABLE apps ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';

-- One authorization of an app by a user: the code and every token issued from it form a
-- family. Replaying the code or reusing a rotated refresh token revokes the family whole.
CREATE TABLE oidc_grants (
    id          TEXT PRIMARY KEY,
    pool        TEXT NOT NULL REFERENCES pools (slug),
    client_id   TEXT NOT NULL REFERENCES apps (client_id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    scope       TEXT NOT NULL,
    -- When the user scanned and confirmed: the tokens' auth_time.
    auth_time   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Authorization codes: single use, short-lived.
CREATE TABLE oidc_codes (
    code_hash       TEXT PRIMARY KEY,
    grant_id        TEXT NOT NULL REFERENCES oidc_grants (id),
    redirect_uri    TEXT NOT NULL,
    nonce           TEXT,
    -- PKCE S256 challenge (RFC 7636), when the request carried one.
    code_challenge  TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);

-- Refresh tokens rotate: each use marks the token used and issues a successor.
CREATE TABLE oidc_refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL REFERENCES oidc_grants (id),
    scope       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    revoked_at  BIGINT
);

CREATE INDEX oidc_refresh_tokens_grant_idx ON oidc_refresh_tokens (grant_id);

-- Access tokens are JWTs; their `jti` is kept so they can be revoked before they expire.
CREATE TABLE oidc_access_tokens (
    jti         TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL REFERENCES oidc_grants (id),
    scope       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE INDEX oidc_access_tokens_grant_idx ON oidc_access_tokens (grant_id);

-- The browser session of the hosted login (SSO): the cookie's SHA-256.
CREATE TABLE oidc_sessions (
    id_hash     TEXT PRIMARY KEY,
    pool        TEXT NOT NULL REFERENCES pools (slug),
    user_id     TEXT NOT NULL REFERENCES users (id),
    auth_time   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    ended_at    BIGINT
);
