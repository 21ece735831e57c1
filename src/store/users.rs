//! Users: one person in one pool, with the profile the Mini Program supplied.

use sqlx::Row as _;

use super::{Db, DbKind, Row};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub pool: String,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    pub phone: Option<String>,
    pub phone_country: Option<String>,
    pub login_count: i64,
    pub last_login_at: Option<i64>,
    pub last_ip: Option<String>,
    pub blocked: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// The id the site knows this person by, set when an operator provisioned them.
    pub external_id: Option<String>,
    /// Provisioned by an operator (rather than created by a first scan): an existing account
    /// for apps with `signup = "existing_only"`.
    pub provisioned: bool,
}

const COLUMNS: &str =
    "id, pool, nickname, avatar_url, phone, phone_country, login_count, last_login_at, \
                       last_ip, blocked, created_at, updated_at, external_id, provisioned_at";

pub async fn get<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    id: &str,
) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn insert<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    id: &str,
    pool: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO users (id, pool, created_at, updated_at) VALUES ($1, $2, $3, $3)")
        .bind(id)
        .bind(pool)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

/// Sets the fields given; `None` leaves a field as it is.
pub async fn update_profile(
    db: &Db,
    id: &str,
    nickname: Option<&str>,
    avatar_url: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET nickname = COALESCE($2, nickname), avatar_url = COALESCE($3, avatar_url), updated_at = $4
         WHERE id = $1",
    )
    .bind(id)
    .bind(nickname)
    .bind(avatar_url)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(())
}

pub async fn set_phone(
    db: &Db,
    id: &str,
    phone: &str,
    country: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET phone = $2, phone_country = $3, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(phone)
        .bind(country)
        .bind(now)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Counts a completed login.
pub async fn record_login(db: &Db, id: &str, ip: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET login_count = login_count + 1, last_login_at = $2, last_ip = $3, updated_at = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(ip)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// One page of a pool's users in id order (ids are time-ordered UUIDv7s), after the id
/// `after`.
pub async fn page(
    db: &Db,
    pool: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<User>, sqlx::Error> {
    let columns = COLUMNS;
    let rows = match after {
        None => {
            sqlx::query(&format!(
                "SELECT {columns} FROM users WHERE pool = $1 ORDER BY id LIMIT $2"
            ))
            .bind(pool)
            .bind(limit)
            .fetch_all(&db.pool)
            .await?
        }
        Some(after) => {
            sqlx::query(&format!(
                "SELECT {columns} FROM users WHERE pool = $1 AND id > $3 ORDER BY id LIMIT $2"
            ))
            .bind(pool)
            .bind(limit)
            .bind(after)
            .fetch_all(&db.pool)
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Where a user stands in a search: the value that matched (the least, when several of the
/// user's keys start with the prefix) and the user's id, compared as bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SearchKey {
    pub value: String,
    pub id: String,
}

/// A page of a search.
pub struct Found {
    /// Up to the limit asked for, in [`SearchKey`] order, each user once.
    pub users: Vec<(SearchKey, User)>,
    /// Set when fewer users than asked for came back but more may follow: where the next page
    /// starts (one key's range was read only this far).
    pub resume: Option<SearchKey>,
}

/// The keys a search looks in: a column of `users` or `identities`, and that table's user id.
const SEARCHED: [(&str, &str, &str); 5] = [
    ("users", "id", "id"),
    ("users", "nickname", "id"),
    ("users", "phone", "id"),
    ("identities", "openid", "user_id"),
    ("identities", "unionid", "user_id"),
];

/// The pool's users whose id, nickname, phone, openid or unionid starts with `prefix`,
/// ordered by the value that matched and then the id, after `after`; up to `limit` of them.
///
/// Each key is one range of its index (`(pool, key, id)`; on PostgreSQL in the `"C"` collation,
/// byte order, as on SQLite, whatever the database's own collation) read from the cursor for
/// at most `limit` rows, so a prefix that finds ten thousand people costs what one that finds
/// fifty does. The five ranges are merged here. A user found under several keys (an openid and
/// a unionid both starting with `o`) is shown once, at the least of them: so each user has one
/// place in the order and no page repeats another's. Measured with 1,000,000 users
/// (`bench/console/users.rs`).
pub async fn search(
    db: &Db,
    pool: &str,
    prefix: &str,
    after: Option<&SearchKey>,
    limit: i64,
) -> Result<Found, sqlx::Error> {
    let upper = successor(prefix);
    let low = after.map_or(prefix, |a| a.value.as_str());
    let mut candidates: Vec<SearchKey> = Vec::new();
    let mut horizon: Option<SearchKey> = None;
    for (table, key, user) in SEARCHED {
        let (col, uid) = match db.kind {
            DbKind::Sqlite => (key.to_owned(), user.to_owned()),
            DbKind::Postgres => (
                format!("{key} COLLATE \"C\""),
                format!("{user} COLLATE \"C\""),
            ),
        };
        // $1 pool, $2 limit, $3 the range's start, then its end and the cursor's id as present.
        let mut sql =
            format!("SELECT {key} AS k, {user} AS u FROM {table} WHERE pool = $1 AND {col} >= $3");
        let mut next = 4;
        if upper.is_some() {
            sql.push_str(&format!(" AND {col} < ${next}"));
            next += 1;
        }
        if after.is_some() {
            sql.push_str(&format!(" AND ({col} > $3 OR {uid} > ${next})"));
        }
        if key == user {
            sql.push_str(&format!(" ORDER BY {col} LIMIT $2"));
        } else {
            sql.push_str(&format!(" ORDER BY {col}, {uid} LIMIT $2"));
        }
        let mut query = sqlx::query(&sql).bind(pool).bind(limit).bind(low);
        if let Some(upper) = &upper {
            query = query.bind(upper);
        }
        if let Some(after) = after {
            query = query.bind(&after.id);
        }
        let rows = query.fetch_all(&db.pool).await?;
        let found: Vec<SearchKey> = rows
            .iter()
            .map(|r| {
                Ok(SearchKey {
                    value: r.try_get("k")?,
                    id: r.try_get("u")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        // A range read to the limit may go on: past its last row, nothing is known.
        if found.len() as i64 >= limit {
            if let Some(last) = found.last() {
                if horizon.as_ref().is_none_or(|h| last < h) {
                    horizon = Some(last.clone());
                }
            }
        }
        candidates.extend(found);
    }
    candidates.sort();
    candidates.dedup();
    if let Some(h) = &horizon {
        candidates.retain(|c| c <= h);
    }
    let least = least_keys(db, pool, prefix, &candidates).await?;
    let mut users = Vec::new();
    for candidate in candidates {
        if users.len() as i64 >= limit {
            break;
        }
        // Elsewhere in the order, under a lesser key of the same user.
        let Some((least, user)) = least.get(&candidate.id) else {
            continue;
        };
        if *least == candidate.value {
            users.push((candidate, user.clone()));
        }
    }
    let resume = if (users.len() as i64) < limit {
        horizon
    } else {
        None
    };
    Ok(Found { users, resume })
}

/// The candidates' users, each with the least of its keys that start with `prefix`.
async fn least_keys(
    db: &Db,
    pool: &str,
    prefix: &str,
    candidates: &[SearchKey],
) -> Result<std::collections::HashMap<String, (String, User)>, sqlx::Error> {
    let mut ids: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let users_sql = format!(
        "SELECT {COLUMNS} FROM users WHERE pool = $1 AND id IN ({})",
        placeholders(2, ids.len())
    );
    let mut query = sqlx::query(&users_sql).bind(pool);
    for id in &ids {
        query = query.bind(*id);
    }
    let users = query.fetch_all(&db.pool).await?;
    // By user alone (a user's identities are in its pool): with the pool named too, SQLite
    // would walk the pool's whole range of a `(pool, …)` index instead of `identities_user_idx`.
    let identities_sql = format!(
        "SELECT user_id, openid, unionid FROM identities WHERE user_id IN ({})",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query(&identities_sql);
    for id in &ids {
        query = query.bind(*id);
    }
    let identities = query.fetch_all(&db.pool).await?;
    let mut least: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut offer = |user: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| v.starts_with(prefix)) {
            let entry = least
                .entry(user.to_owned())
                .or_insert_with(|| value.clone());
            if value < *entry {
                *entry = value;
            }
        }
    };
    for row in &identities {
        let user: String = row.try_get("user_id")?;
        offer(&user, row.try_get("openid")?);
        offer(&user, row.try_get("unionid")?);
    }
    let users: Vec<User> = users.iter().map(from_row).collect::<Result<_, _>>()?;
    for user in &users {
        offer(&user.id, Some(user.id.clone()));
        offer(&user.id, user.nickname.clone());
        offer(&user.id, user.phone.clone());
    }
    for user in users {
        if let Some(value) = least.get(&user.id) {
            out.insert(user.id.clone(), (value.clone(), user));
        }
    }
    Ok(out)
}

/// `$first, …` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The least string greater than every string that starts with `prefix`, in code point order
/// (the `"C"` collation's order for UTF-8): the prefix with its last character that can be
/// incremented incremented and what follows it dropped; `None` when no character can be.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value, skipping the surrogates that no string holds.
        let next = match last as u32 {
            0xD7FF => Some('\u{E000}'),
            n => char::from_u32(n + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Who an operator provisions ahead of their first scan.
#[derive(Clone, Debug, Default)]
pub struct Provisioned<'a> {
    pub phone: Option<&'a str>,
    pub phone_country: Option<&'a str>,
    pub unionid: Option<&'a str>,
    pub external_id: Option<&'a str>,
    pub nickname: Option<&'a str>,
}

/// Creates a provisioned user; `false` when the pool already has a user with this external id.
pub async fn provision(
    db: &Db,
    id: &str,
    pool: &str,
    p: &Provisioned<'_>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO users (id, pool, nickname, phone, phone_country, external_id, provisioned_unionid,
             provisioned_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8)",
    )
    .bind(id)
    .bind(pool)
    .bind(p.nickname)
    .bind(p.phone)
    .bind(p.phone_country)
    .bind(p.external_id)
    .bind(p.unionid)
    .bind(now)
    .execute(&db.pool)
    .await;
    match done {
        Ok(_) => Ok(true),
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The provisioned user of `pool` waiting for this phone number (none of whose identities
/// exist yet), other than `except`.
pub async fn provisioned_with_phone(
    db: &Db,
    pool: &str,
    phone: &str,
    except: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT u.id FROM users u
         WHERE u.pool = $1 AND u.phone = $2 AND u.provisioned_at IS NOT NULL AND u.id <> $3
           AND NOT EXISTS (SELECT 1 FROM identities i WHERE i.user_id = u.id)
         ORDER BY u.created_at LIMIT 1",
    )
    .bind(pool)
    .bind(phone)
    .bind(except)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| r.try_get("id")).transpose()
}

/// Blocks or unblocks a user; `false` when there is no such user.
pub async fn set_blocked(db: &Db, id: &str, blocked: bool, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET blocked = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(i64::from(blocked))
        .bind(now)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends everything a user is signed in with: Mini Program sessions, browser sessions and
/// every grant (with its refresh and access tokens). Returns how many grants were revoked.
pub async fn sign_out_everywhere(db: &Db, id: &str, now: i64) -> Result<u64, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM mp_sessions WHERE user_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE oidc_sessions SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let grants = sqlx::query(
        "UPDATE oidc_grants SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(grants.rows_affected())
}

/// Erases a user: profile, identities, avatars, sessions, grants and their tokens. `false`
/// when there is no such user. The audit log keeps the id, and nothing else of them.
pub async fn delete(db: &Db, id: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    erase_sign_ins(&mut tx, id).await?;
    for statement in [
        "DELETE FROM mp_sessions WHERE user_id = $1",
        "DELETE FROM identities WHERE user_id = $1",
    ] {
        sqlx::query(statement).bind(id).execute(&mut *tx).await?;
    }
    let done = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// What becomes of an absorbed user's Mini Program sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sessions {
    /// They move with the identities: the phone stays signed in, as the kept user (linking).
    Move,
    /// They end: the person signs in again (an operator's merge).
    End,
}

/// Moves everything `absorbed` signs in with to `kept` (same pool): its identities, its Mini
/// Program sessions as `sessions` says, and any profile field `kept` lacks; ends the rest of
/// `absorbed`'s sessions and grants and erases it. Returns how many identities moved.
pub async fn absorb(
    db: &Db,
    kept: &str,
    absorbed: &str,
    sessions: Sessions,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    let moved =
        sqlx::query("UPDATE identities SET user_id = $1, updated_at = $3 WHERE user_id = $2")
            .bind(kept)
            .bind(absorbed)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    let mp_sessions = match sessions {
        Sessions::Move => sqlx::query("UPDATE mp_sessions SET user_id = $2 WHERE user_id = $1")
            .bind(absorbed)
            .bind(kept),
        Sessions::End => sqlx::query("DELETE FROM mp_sessions WHERE user_id = $1").bind(absorbed),
    };
    mp_sessions.execute(&mut *tx).await?;
    sqlx::query(
        "UPDATE users SET
             nickname = COALESCE(nickname, (SELECT nickname FROM users WHERE id = $2)),
             avatar_url = COALESCE(avatar_url, (SELECT avatar_url FROM users WHERE id = $2)),
             phone_country = CASE WHEN phone IS NULL THEN (SELECT phone_country FROM users WHERE id = $2) ELSE phone_country END,
             phone = COALESCE(phone, (SELECT phone FROM users WHERE id = $2)),
             updated_at = $3
         WHERE id = $1",
    )
    .bind(kept)
    .bind(absorbed)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    erase_sign_ins(&mut tx, absorbed).await?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(absorbed)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(moved)
}

/// Deletes, inside `tx`, what signs `user_id` in through browsers and relying parties —
/// authorization codes, refresh tokens, grants, browser sessions, the record of its logins —
/// and its avatars: the part
/// that deleting, merging away and linking a user all erase.
async fn erase_sign_ins(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    let grants = "SELECT id FROM oidc_grants WHERE user_id = $1";
    for statement in [
        format!("DELETE FROM oidc_codes WHERE grant_id IN ({grants})"),
        format!("DELETE FROM oidc_refresh_tokens WHERE grant_id IN ({grants})"),
        "DELETE FROM oidc_grants WHERE user_id = $1".to_owned(),
        "DELETE FROM oidc_sessions WHERE user_id = $1".to_owned(),
        "DELETE FROM avatars WHERE user_id = $1".to_owned(),
        "DELETE FROM login_tokens WHERE login_id IN (SELECT id FROM logins WHERE user_id = $1)"
            .to_owned(),
        "DELETE FROM logins WHERE user_id = $1".to_owned(),
    ] {
        sqlx::query(&statement)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(crate) fn from_row(r: &Row) -> Result<User, sqlx::Error> {
    Ok(User {
        id: r.try_get("id")?,
        pool: r.try_get("pool")?,
        nickname: r.try_get("nickname")?,
        avatar_url: r.try_get("avatar_url")?,
        phone: r.try_get("phone")?,
        phone_country: r.try_get("phone_country")?,
        login_count: r.try_get("login_count")?,
        last_login_at: r.try_get("last_login_at")?,
        last_ip: r.try_get("last_ip")?,
        blocked: r.try_get::<i64, _>("blocked")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        external_id: r.try_get("external_id")?,
        provisioned: r.try_get::<Option<i64>, _>("provisioned_at")?.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn the_successor_bounds_every_string_with_the_prefix() {
        assert_eq!(successor("abc").as_deref(), Some("abd"));
        assert_eq!(successor("a-").as_deref(), Some("a."));
        assert_eq!(successor("张").as_deref(), Some("弡"));
        assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{10FFFF}"), None);
        assert_eq!(successor(""), None);
        for (prefix, s) in [("abc", "abc\u{10FFFF}x"), ("张", "张三"), ("a-", "a-z")] {
            assert!(s.starts_with(prefix) && s < successor(prefix).unwrap().as_str());
        }
    }
}
