//! The reference server of the benchmarks: axum answering each request with one Redis `GET`,
//! the least any status poll backed by Redis can do. ScanGate's status endpoint is measured
//! against it in the same run (`bench/run.sh`).
//!
//! `bench-reference LISTEN REDIS_URL` serves `GET /api/v1/qrcodes/{random}` from the key
//! `bench:{random}`.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use redis::aio::ConnectionManager;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let redis_url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    // The same multiplexed connection ScanGate's Redis store uses.
    let conn = ConnectionManager::new(redis::Client::open(redis_url)?).await?;
    let app = Router::new()
        .route("/api/v1/qrcodes/{random}", get(status_get))
        .with_state(conn);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn status_get(
    State(mut conn): State<ConnectionManager>,
    Path(random): Path<String>,
) -> Response {
    let body: redis::RedisResult<Option<String>> = redis::cmd("GET")
        .arg(format!("bench:{random}"))
        .query_async(&mut conn)
        .await;
    match body {
        Ok(Some(body)) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
