-- The device authorization grant (RFC 8628) is opt-in per app: a TV or a command-line tool
-- that cannot show a browser asks for it, and an app that never did must not start accepting it.
ALTER TABLE apps ADD COLUMN device_grant BIGINT NOT NULL DEFAULT 0;
