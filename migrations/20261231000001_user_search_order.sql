-- A search page is ordered by the value that matched, then the user's id
-- (`store::users::search`). Each searched key's index carries the id after the key, so the
-- page is the first rows of one index range per key, however many users the prefix finds.
DROP INDEX users_pool_nickname_idx;
DROP INDEX users_pool_phone_idx;
DROP INDEX identities_pool_openid_idx;
CREATE INDEX users_pool_nickname_id_idx ON users (pool, nickname, id);
CREATE INDEX users_pool_phone_id_idx ON users (pool, phone, id);
CREATE INDEX identities_pool_openid_user_idx ON identities (pool, openid, user_id);
CREATE INDEX identities_pool_unionid_user_idx ON identities (pool, unionid, user_id);
