-- PostgreSQL only (SQLite compares bytes already, and its `GLOB` search uses the shared
-- indexes). A prefix search is a range in byte order; the database's own collation may order
-- text otherwise (linguistic collations skip punctuation), so the ranges are taken in "C" and
-- these indexes follow it. See `store::users::page`.
CREATE INDEX users_pool_id_c_idx ON users (pool, id COLLATE "C");
CREATE INDEX users_pool_nickname_c_idx ON users (pool, nickname COLLATE "C");
CREATE INDEX users_pool_phone_c_idx ON users (pool, phone COLLATE "C");
CREATE INDEX identities_pool_openid_c_idx ON identities (pool, openid COLLATE "C");
CREATE INDEX identities_pool_unionid_c_idx ON identities (pool, unionid COLLATE "C");
