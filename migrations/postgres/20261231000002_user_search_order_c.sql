-- PostgreSQL only: the search's ranges and order are in the "C" collation, byte order (see
-- `20261223000001_user_search_prefix.sql`), so its indexes are too, each with the id after the
-- key as the order's tie-break. The shared migration's indexes in the database's own collation
-- serve no query here.
DROP INDEX users_pool_nickname_id_idx;
DROP INDEX users_pool_phone_id_idx;
DROP INDEX identities_pool_openid_user_idx;
DROP INDEX identities_pool_unionid_user_idx;
DROP INDEX users_pool_nickname_c_idx;
DROP INDEX users_pool_phone_c_idx;
DROP INDEX identities_pool_openid_c_idx;
DROP INDEX identities_pool_unionid_c_idx;
CREATE INDEX users_pool_nickname_id_c_idx ON users (pool, nickname COLLATE "C", id COLLATE "C");
CREATE INDEX users_pool_phone_id_c_idx ON users (pool, phone COLLATE "C", id COLLATE "C");
CREATE INDEX identities_pool_openid_user_c_idx
    ON identities (pool, openid COLLATE "C", user_id COLLATE "C");
CREATE INDEX identities_pool_unionid_user_c_idx
    ON identities (pool, unionid COLLATE "C", user_id COLLATE "C");
