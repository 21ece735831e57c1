//! PostgreSQL over TLS: `?sslmode=require` in `database_url` encrypts every connection.

use sqlx::Row as _;

use crate::helpers::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_connects_over_tls() {
    let app = TestApp::spawn_with(Backend::Distributed, |c| {
        c.database_url.push_str("&sslmode=require");
    })
    .await;
    assert!(app.config.database_url.contains("sslmode=require"));
    // The server works on it: a QR code is stored and read back.
    let qr = app.create_qr().await;
    let random = qr["random"].as_str().unwrap();
    assert_eq!(app.status(&app.client, random).await["status"], "pending");
    // And the connection it uses is encrypted.
    let row = sqlx::query(
        "SELECT CASE WHEN ssl THEN 1 ELSE 0 END AS on_tls FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(row.try_get::<i32, _>("on_tls").unwrap(), 1);
}
