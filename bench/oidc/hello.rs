//! The baseline of the OpenID Connect benchmark: a bare axum endpoint answering a fixed JSON
//! body, the most any server on this stack can do per request.
//!
//! `cargo run --release --example bench-oidc-hello -- LISTEN`

use axum::http::header;
use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18300".into());
    let app = Router::new().route(
        "/hello",
        get(|| async {
            (
                [(header::CONTENT_TYPE, "application/json")],
                "{\"hello\":\"world\"}",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
