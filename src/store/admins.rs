//! Admin console accounts.

use sqlx::Row as _;

use super::Db;

#[derive(Clone)]
pub struct Admin {
    pub username: String,
    /// Argon2id hash (PHC string).
    pub password_hash: String,
    pub created_at: i64,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Inserts a new admin; `false` when the username is taken (nothing is changed then).
pub async fn create(db: &Db, admin: &Admin) -> Result<bool, sqlx::Error> {
    let result =
        sqlx::query("INSERT INTO admins (username, password_hash, created_at) VALUES ($1, $2, $3)")
            .bind(&admin.username)
            .bind(&admin.password_hash)
            .bind(admin.created_at)
            .execute(&db.pool)
            .await;
    match result {
        Ok(_) => Ok(true),
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

pub async fn get(db: &Db, username: &str) -> Result<Option<Admin>, sqlx::Error> {
    let row =
        sqlx::query("SELECT username, password_hash, created_at FROM admins WHERE username = $1")
            .bind(username)
            .fetch_optional(&db.pool)
            .await?;
    row.map(|r| {
        Ok(Admin {
            username: r.try_get("username")?,
            password_hash: r.try_get("password_hash")?,
            created_at: r.try_get("created_at")?,
        })
    })
    .transpose()
}
