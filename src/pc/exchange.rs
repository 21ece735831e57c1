//! Exchanging a one-time ticket for the user and tokens.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::accounts::Login;
use crate::clock::rfc3339;
use crate::domain::ClientId;
use crate::error::{AppError, AppResult};
use crate::extract::{binding, Json, Requester};
use crate::funnel::Step;
use crate::ratelimit::Limit;
use crate::state::AppState;
use crate::store::users::User;
use crate::tickets::{ExchangeTicket, Take};
use crate::tokens::{IdClaims, TOKEN_TTL_SECS};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ExchangeRequest {
    /// The one-time ticket the status showed the creator once confirmed.
    pub ticket: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ExchangeResponse {
    /// The user, with the fields the app may see.
    #[schema(value_type = Object)]
    pub user: Value,
    pub id_token: String,
    pub access_token: String,
    #[schema(value_type = String, example = "Bearer")]
    pub token_type: &'static str,
    pub expires_in: i64,
}

/// Exchanges a confirmed code's one-time ticket for the user and tokens. Only the browser
/// that created the code (its cookie or `X-Scangate-Bind`) may, and only once.
#[utoipa::path(post, path = "/api/v1/qrcodes/exchange", tag = "pc",
    request_body = ExchangeRequest,
    responses(
        (status = 200, description = "The user and tokens.", body = ExchangeResponse),
        (status = 400, description = "No ticket.", body = crate::error::ErrorBody),
        (status = 403, description = "Another browser created the code, or the user is blocked.", body = crate::error::ErrorBody),
        (status = 404, description = "No such ticket, or it was used.", body = crate::error::ErrorBody),
        (status = 429, description = "Too many exchanges from this address.", body = crate::error::ErrorBody),
    ))]
pub async fn exchange_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    requester: Requester,
    Json(req): Json<ExchangeRequest>,
) -> AppResult<Response> {
    let (user, tokens) = redeem(&state, &req.ticket, &binding(&headers, &jar), &requester).await?;
    let body = ExchangeResponse {
        user: user_json(&user),
        id_token: tokens.id_token,
        access_token: tokens.access_token,
        token_type: "Bearer",
        expires_in: tokens.expires_in,
    };
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        axum::Extension(crate::cors::ForApp(tokens.client_id)),
        axum::Json(body),
    )
        .into_response())
}

/// Consumes a ticket (once, and only for its QR code's creator), records the login and issues
/// tokens.
pub async fn redeem(
    state: &AppState,
    ticket: &str,
    binding: &crate::tickets::Binding,
    requester: &Requester,
) -> AppResult<(User, IssuedTokens)> {
    state.limiter.check(Limit::Exchanges, &requester.ip).await?;
    if ticket.is_empty() || ticket.len() > 128 {
        return Err(AppError::invalid("the ticket is unknown, used or expired"));
    }
    let now = state.clock.now();
    let t = match state.tickets.take_ticket(ticket, binding, now).await? {
        Take::Taken(t) => {
            state.funnel.step(&t.client_id, Step::Exchanged).await;
            t
        }
        Take::Missing => return Err(AppError::invalid("the ticket is unknown, used or expired")),
        Take::NotBound => {
            return Err(AppError::Forbidden(
                "this ticket belongs to another browser".into(),
            ))
        }
    };
    let user = crate::accounts::complete_login(
        &state.db,
        &t.user_id,
        Login {
            pool: &t.pool_id,
            client_id: &t.client_id,
            ip: &requester.ip,
            user_agent: &requester.user_agent,
            action: "login.exchange",
            random: &t.random,
        },
        now,
    )
    .await?;
    let tokens = issue_tokens(state, &t, &user, None, "openid profile phone").await?;
    Ok((user, tokens))
}

pub struct IssuedTokens {
    /// The app (audience) the tokens were issued to.
    pub client_id: ClientId,
    pub id_token: String,
    pub access_token: String,
    pub expires_in: i64,
    pub expires_at: i64,
}

/// Signs an ID token and an access token for `user` logged in through `t`.
pub async fn issue_tokens(
    state: &AppState,
    t: &ExchangeTicket,
    user: &User,
    nonce: Option<&str>,
    scope: &str,
) -> AppResult<IssuedTokens> {
    let pool = t.pool_id.as_str();
    let issuer = state.config.issuer(pool);
    let id = IdClaims::for_user(
        &issuer,
        user,
        &t.client_id,
        scope,
        state.clock.now_secs(),
        t.confirmed_at.div_euclid(1000),
        nonce,
    );
    let jti = crate::crypto::random_token(16);
    let access = id.access(scope, jti.clone(), None);
    let id_token = state
        .keys
        .sign(pool, "JWT", &id)
        .await
        .map_err(AppError::Internal)?;
    let access_token = state
        .keys
        .sign(pool, "at+jwt", &access)
        .await
        .map_err(AppError::Internal)?;
    if let Some(login) = &t.login_id {
        // No grant names these tokens: the login keeps their jti, to revoke on a report.
        crate::store::logins::add_token(&state.db, login, &jti, id.exp * 1000).await?;
    }
    Ok(IssuedTokens {
        client_id: t.client_id.clone(),
        id_token,
        access_token,
        expires_in: TOKEN_TTL_SECS,
        expires_at: id.exp,
    })
}

/// The user as the PC side sees it.
pub fn user_json(user: &User) -> Value {
    json!({
        "id": user.id,
        "nickname": user.nickname,
        "avatar_url": user.avatar_url,
        "phone": user.phone,
        "phone_country_code": user.phone_country,
        "login_count": user.login_count,
        "last_login_at": user.last_login_at.map(rfc3339),
        "created_at": rfc3339(user.created_at),
    })
}
