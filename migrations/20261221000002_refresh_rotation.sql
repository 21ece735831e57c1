-- A rotated refresh token names the token it replaced. Using a token is inserting its successor,
-- one statement: the unique index lets exactly one successor in, and a token with a successor is
-- used.
ALTER TABLE oidc_refresh_tokens ADD COLUMN parent_hash TEXT;
CREATE UNIQUE INDEX oidc_refresh_tokens_parent_idx ON oidc_refresh_tokens (parent_hash);
ALTER TABLE oidc_refresh_tokens DROP COLUMN used_at;
