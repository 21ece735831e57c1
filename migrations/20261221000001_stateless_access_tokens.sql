-- Access tokens are JWTs that name their grant: checked by signature, expiry and the grant, not
-- stored. Only a revoked one is written down, until it expires.
DROP TABLE oidc_access_tokens;

CREATE TABLE oidc_revoked_access_tokens (
    jti         TEXT PRIMARY KEY,
    revoked_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- Expired rows are purged periodically.
CREATE INDEX oidc_revoked_access_tokens_expiry_idx ON oidc_revoked_access_tokens (expires_at);
CREATE INDEX oidc_codes_expiry_idx ON oidc_codes (expires_at);
CREATE INDEX oidc_refresh_tokens_expiry_idx ON oidc_refresh_tokens (expires_at);
CREATE INDEX oidc_sessions_expiry_idx ON oidc_sessions (expires_at);
