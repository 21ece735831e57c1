-- The match step and the phone question, per app. An app that existed before keeps working as
-- its site was built: no number to show (new apps take the step by default, set by ScanGate).
ALTER TABLE apps ADD COLUMN match_number BIGINT NOT NULL DEFAULT 0;
ALTER TABLE apps ADD COLUMN phone TEXT NOT NULL DEFAULT 'optional';

-- Logins confirmed on the phone, as the person may review and report them ("this wasn't me"),
-- with what was minted from each: the grant (refresh and access tokens of the hosted login),
-- the browser session, and the access tokens of the native exchange (by jti, in login_tokens).
CREATE TABLE logins (
    id                   TEXT PRIMARY KEY,
    pool                 TEXT NOT NULL,
    user_id              TEXT NOT NULL,
    client_id            TEXT NOT NULL,
    random               TEXT NOT NULL,
    requester_ip         TEXT NOT NULL,
    requester_user_agent TEXT NOT NULL,
    confirmed_at         BIGINT NOT NULL,
    reported_at          BIGINT,
    grant_id             TEXT,
    session_hash         TEXT
);
CREATE INDEX logins_user_idx ON logins (user_id, confirmed_at);

CREATE TABLE login_tokens (
    jti         TEXT PRIMARY KEY,
    login_id    TEXT NOT NULL REFERENCES logins (id) ON DELETE CASCADE,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX login_tokens_login_idx ON login_tokens (login_id);
CREATE INDEX login_tokens_expiry_idx ON login_tokens (expires_at);
