-- Accounts of the admin console, created with `scangate admin create`.
-- Portable SQL (SQLite and PostgreSQL); times are Unix milliseconds.
CREATE TABLE admins (
    username       TEXT PRIMARY KEY,
    -- Argon2id, PHC string.
    password_hash  TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
