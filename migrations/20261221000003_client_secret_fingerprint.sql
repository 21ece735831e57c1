-- A keyed fingerprint (HMAC-SHA256 under a key derived from secret_key) of an app's client
-- secret: start-up recognises an unchanged configured secret without hashing it again.
ALTER TABLE apps ADD COLUMN client_secret_fingerprint TEXT;
