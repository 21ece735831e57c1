//! Identities: (Mini Program AppID, openid) → user, with the latest sealed session_key.

use sqlx::Row as _;

use super::{is_unique_violation, new_id, users, Db, Row};

#[derive(Clone)]
pub struct Identity {
    pub id: String,
    pub user_id: String,
    pub pool: String,
    pub appid: String,
    pub openid: String,
    pub unionid: Option<String>,
    pub session_key_enc: Option<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("appid", &self.appid)
            .field("openid", &self.openid)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, user_id, pool, appid, openid, unionid, session_key_enc";

pub async fn get(db: &Db, id: &str) -> Result<Option<Identity>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM identities WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

async fn find(db: &Db, appid: &str, openid: &str) -> Result<Option<Identity>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM identities WHERE appid = $1 AND openid = $2"
    ))
    .bind(appid)
    .bind(openid)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every identity of a user, oldest first.
pub async fn of_user(db: &Db, user_id: &str) -> Result<Vec<Identity>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM identities WHERE user_id = $1 ORDER BY created_at, id"
    ))
    .bind(user_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The outcome of a Mini Program login.
pub struct Upserted {
    pub identity: Identity,
    /// A user was created by this login.
    pub is_new: bool,
}

/// Records a login of (`appid`, `openid`): updates the identity's session key and unionid, or
/// creates the identity — linked to the user of another identity with the same unionid in the
/// pool, else to a new user. Safe under concurrent first logins of one person: the unique
/// (appid, openid) constraint decides, and the loser reads the winner's row.
pub async fn upsert_login(
    db: &Db,
    pool: &str,
    appid: &str,
    openid: &str,
    unionid: Option<&str>,
    session_key_enc: &str,
    now: i64,
) -> Result<Upserted, sqlx::Error> {
    for _ in 0..3 {
        if let Some(mut identity) = find(db, appid, openid).await? {
            sqlx::query(
                "UPDATE identities SET session_key_enc = $2, unionid = COALESCE($3, unionid), updated_at = $4 WHERE id = $1",
            )
            .bind(&identity.id)
            .bind(session_key_enc)
            .bind(unionid)
            .bind(now)
            .execute(&db.pool)
            .await?;
            identity.session_key_enc = Some(session_key_enc.to_owned());
            if unionid.is_some() {
                identity.unionid = unionid.map(str::to_owned);
            }
            return Ok(Upserted {
                identity,
                is_new: false,
            });
        }

        // The person's user: that of another identity with this unionid, else one an operator
        // provisioned for it.
        let linked: Option<String> = match unionid {
            Some(u) => sqlx::query(
                "SELECT user_id FROM (
                     SELECT user_id, 0 AS rank, created_at FROM identities WHERE pool = $1 AND unionid = $2
                     UNION ALL
                     SELECT id AS user_id, 1 AS rank, created_at FROM users WHERE pool = $1 AND provisioned_unionid = $2
                 ) found ORDER BY rank, created_at LIMIT 1",
            )
            .bind(pool)
            .bind(u)
            .fetch_optional(&db.pool)
            .await?
            .map(|r| r.try_get("user_id"))
            .transpose()?,
            None => None,
        };

        let mut tx = db.pool.begin().await?;
        let (user_id, is_new) = match linked {
            Some(id) => (id, false),
            None => {
                let id = new_id();
                users::insert(&mut *tx, &id, pool, now).await?;
                (id, true)
            }
        };
        let identity = Identity {
            id: new_id(),
            user_id,
            pool: pool.to_owned(),
            appid: appid.to_owned(),
            openid: openid.to_owned(),
            unionid: unionid.map(str::to_owned),
            session_key_enc: Some(session_key_enc.to_owned()),
        };
        let inserted = sqlx::query(
            "INSERT INTO identities (id, user_id, pool, appid, openid, unionid, session_key_enc, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&identity.id)
        .bind(&identity.user_id)
        .bind(&identity.pool)
        .bind(&identity.appid)
        .bind(&identity.openid)
        .bind(&identity.unionid)
        .bind(&identity.session_key_enc)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                return Ok(Upserted { identity, is_new });
            }
            // A concurrent first login won the race: drop our user and take theirs.
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await?;
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Err(sqlx::Error::Protocol(
        "identity upsert did not settle".into(),
    ))
}

fn from_row(r: &Row) -> Result<Identity, sqlx::Error> {
    Ok(Identity {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        pool: r.try_get("pool")?,
        appid: r.try_get("appid")?,
        openid: r.try_get("openid")?,
        unionid: r.try_get("unionid")?,
        session_key_enc: r.try_get("session_key_enc")?,
    })
}
