-- What the console needs beyond its sign-in: the last WeChat errors and the access-token
-- state of each Mini Program (shared by every instance), and the lifecycle of admin accounts.
-- Portable SQL (SQLite and PostgreSQL); times are Unix milliseconds.

-- One row per Mini Program and errcode WeChat answered with: how often, when last, and
-- WeChat's errmsg (scrubbed of secrets before it is stored).
CREATE TABLE wechat_errors (
    appid         TEXT NOT NULL,
    errcode       BIGINT NOT NULL,
    count         BIGINT NOT NULL,
    first_at      BIGINT NOT NULL,
    last_at       BIGINT NOT NULL,
    last_path     TEXT NOT NULL,
    last_message  TEXT NOT NULL,
    PRIMARY KEY (appid, errcode)
);

-- The last access-token fetch of each Mini Program (the token itself lives in the shared
-- cache only).
CREATE TABLE wechat_token_state (
    appid           TEXT PRIMARY KEY,
    refreshed_at    BIGINT,
    expires_at      BIGINT,
    error_at        BIGINT,
    error_code      BIGINT,
    error_message   TEXT
);

-- A disabled admin cannot sign in. An invited or reset admin holds a one-time set-password
-- token, stored as its SHA-256 only.
ALTER TABLE admins ADD COLUMN disabled_at BIGINT;
ALTER TABLE admins ADD COLUMN setup_token_hash TEXT;
ALTER TABLE admins ADD COLUMN setup_expires_at BIGINT;
ALTER TABLE admins ADD COLUMN invited_by TEXT;
CREATE UNIQUE INDEX admins_setup_token ON admins (setup_token_hash);
