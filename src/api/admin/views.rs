//! What the management API shows of each object: never a secret, a hash or a sealed value.
//!
//! Each view is a struct, so that the OpenAPI document describes exactly what is sent. Times
//! are RFC 3339 strings; a field without a value is `null`, never left out.

use serde::Serialize;
use utoipa::ToSchema;

use crate::admin::apps::WithSecret;
use crate::admin::keys::Created;
use crate::admin::signing::KeyInfo;
use crate::admin::users::UserDetail;
use crate::clock::rfc3339;
use crate::domain::{AppId, ClientId, PoolSlug};
use crate::store::apps::{ManagedBy, PhoneAsk, Signup};
use crate::store::{
    admin_keys::ApiKey, apps::App, audit::Recorded, grants::Grant, identities::Identity,
    miniprograms::MiniProgram, pools::Pool, users::User,
};

/// One page of a list, in a stable order.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The `cursor` of the next page; `null` on the last (and for lists that are never paged).
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A list short enough to be answered whole.
    pub fn whole(items: Vec<T>) -> Self {
        Page {
            items,
            next_cursor: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PoolView {
    /// Part of the pool's issuer URL (`/pools/{slug}/oidc`): 1–64 of `[a-z0-9_-]`.
    pub slug: String,
    pub name: String,
    /// Moves with every change: the `ETag`.
    pub version: i64,
    pub created_at: String,
}

impl From<&Pool> for PoolView {
    fn from(p: &Pool) -> Self {
        PoolView {
            slug: p.slug.clone(),
            name: p.name.clone(),
            version: p.version,
            created_at: rfc3339(p.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AppView {
    /// 1–64 of `[A-Za-z0-9._-]`.
    #[schema(value_type = String)]
    pub client_id: ClientId,
    /// The pool whose users sign in to the app.
    #[schema(value_type = String)]
    pub pool: PoolSlug,
    pub name: String,
    /// Where the logo is shown from: a URL, or ScanGate's media path for one uploaded or given
    /// as a `data:` URI; `null` for none.
    pub logo: Option<String>,
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser back to (exact match).
    pub post_logout_redirect_uris: Vec<String>,
    pub allowed_origins: Vec<String>,
    /// The AppID of the Mini Program that scans the app's codes.
    #[schema(value_type = String)]
    pub miniprogram: AppId,
    pub qr_ttl_secs: i64,
    pub require_binding: bool,
    /// Whether a stranger's first scan creates a user.
    pub signup: Signup,
    /// Whether a scanned code shows a number on the PC that the person taps on the phone.
    pub match_number: bool,
    /// Whether the Mini Program asks for the person's phone number on confirming.
    pub phone: PhoneAsk,
    /// Whether the app may use the device authorization grant (RFC 8628).
    pub device_grant: bool,
    /// A public client (PKCE, no secret).
    pub public: bool,
    /// `config`: declared in the config file, so read-only here.
    pub managed_by: ManagedBy,
    /// Moves with every change: the `ETag`.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&App> for AppView {
    fn from(a: &App) -> Self {
        AppView {
            client_id: a.client_id.clone(),
            pool: a.pool.clone(),
            name: a.name.clone(),
            logo: a.logo.clone(),
            redirect_uris: a.redirect_uris.clone(),
            post_logout_redirect_uris: a.post_logout_redirect_uris.clone(),
            allowed_origins: a.allowed_origins.clone(),
            miniprogram: a.miniprogram.clone(),
            qr_ttl_secs: a.qr_ttl_secs,
            require_binding: a.require_binding,
            signup: a.signup,
            match_number: a.match_number,
            phone: a.phone,
            device_grant: a.device_grant,
            public: a.client_secret_hash.is_none(),
            managed_by: a.managed_by,
            version: a.version,
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
        }
    }
}

/// An app just created or given a new secret: the secret appears here, once.
#[derive(Serialize, ToSchema)]
pub struct AppWithSecretView {
    #[serde(flatten)]
    pub app: AppView,
    /// Shown this once and never again; `null` for a public app.
    pub client_secret: Option<String>,
}

impl From<&WithSecret> for AppWithSecretView {
    fn from(made: &WithSecret) -> Self {
        AppWithSecretView {
            app: AppView::from(&made.app),
            client_secret: made.client_secret.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub pool: String,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    /// The national number, digits only.
    pub phone: Option<String>,
    /// The country calling code, digits only.
    pub phone_country_code: Option<String>,
    pub blocked: bool,
    /// The id the site knows this person by, set when an operator provisioned them.
    pub external_id: Option<String>,
    /// Provisioned by an operator rather than created by a first scan.
    pub provisioned: bool,
    pub login_count: i64,
    pub last_login_at: Option<String>,
    pub last_ip: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.clone(),
            pool: u.pool.clone(),
            nickname: u.nickname.clone(),
            avatar_url: u.avatar_url.clone(),
            phone: u.phone.clone(),
            phone_country_code: u.phone_country.clone(),
            blocked: u.blocked,
            external_id: u.external_id.clone(),
            provisioned: u.provisioned,
            login_count: u.login_count,
            last_login_at: u.last_login_at.map(rfc3339),
            last_ip: u.last_ip.clone(),
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
        }
    }
}

/// A WeChat identity a user signs in with.
#[derive(Serialize, ToSchema)]
pub struct IdentityView {
    /// The Mini Program the openid belongs to.
    pub appid: String,
    pub openid: String,
    pub unionid: Option<String>,
}

impl From<&Identity> for IdentityView {
    fn from(i: &Identity) -> Self {
        IdentityView {
            appid: i.appid.clone(),
            openid: i.openid.clone(),
            unionid: i.unionid.clone(),
        }
    }
}

/// A live grant: an app that holds the user's tokens.
#[derive(Serialize, ToSchema)]
pub struct GrantView {
    pub id: String,
    pub client_id: String,
    pub scope: String,
    pub created_at: String,
}

impl From<&Grant> for GrantView {
    fn from(g: &Grant) -> Self {
        GrantView {
            id: g.id.clone(),
            client_id: g.client_id.clone(),
            scope: g.scope.clone(),
            created_at: rfc3339(g.created_at),
        }
    }
}

/// How many sessions of each kind are live.
#[derive(Serialize, ToSchema)]
pub struct SessionsView {
    /// Browser (single sign-on) sessions.
    pub browser: i64,
    pub miniprogram: i64,
}

/// One login, from the audit log.
#[derive(Serialize, ToSchema)]
pub struct LoginView {
    pub at: String,
    /// The client id of the app signed in to.
    pub app: Option<String>,
    pub ip: Option<String>,
    /// The audit action: `login.exchange`, `login.oidc` or `login.sso`.
    pub how: String,
}

impl From<&Recorded> for LoginView {
    fn from(e: &Recorded) -> Self {
        LoginView {
            at: rfc3339(e.at),
            app: e.subject.clone(),
            ip: e.ip.clone(),
            how: e.action.clone(),
        }
    }
}

/// A user with the identities they sign in with, what they are signed in to, and their last
/// logins (newest first, at most ten).
#[derive(Serialize, ToSchema)]
pub struct UserDetailView {
    #[serde(flatten)]
    pub user: UserView,
    pub identities: Vec<IdentityView>,
    pub grants: Vec<GrantView>,
    pub sessions: SessionsView,
    pub last_logins: Vec<LoginView>,
}

impl From<&UserDetail> for UserDetailView {
    fn from(d: &UserDetail) -> Self {
        UserDetailView {
            user: UserView::from(&d.user),
            identities: d.identities.iter().map(IdentityView::from).collect(),
            grants: d.grants.iter().map(GrantView::from).collect(),
            sessions: SessionsView {
                browser: d.sessions.0,
                miniprogram: d.sessions.1,
            },
            last_logins: d.last_logins.iter().map(LoginView::from).collect(),
        }
    }
}

/// What `POST /users/{id}/sign-out` ended.
#[derive(Serialize, ToSchema)]
pub struct SignedOutView {
    pub grants_revoked: u64,
}

/// One event of the audit log; also one line of the export.
#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    /// Time-ordered (a UUIDv7).
    pub id: String,
    pub pool: Option<String>,
    pub at: String,
    /// `key:{name}` for an API key, a user id for a login, `cli` for the command line.
    pub actor: Option<String>,
    /// Such as `admin.app.update` or `login.exchange`.
    pub action: String,
    pub subject: Option<String>,
    pub ip: Option<String>,
    /// What changed (`{"changed": {field: {"from", "to"}}}`) or other detail; never a secret.
    pub detail: Option<serde_json::Value>,
}

impl From<&Recorded> for AuditEventView {
    fn from(e: &Recorded) -> Self {
        AuditEventView {
            id: e.id.clone(),
            pool: e.pool.clone(),
            at: rfc3339(e.at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            subject: e.subject.clone(),
            ip: e.ip.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// A management API key: never the key itself, which only its creation answers, once.
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    /// `viewer`, `admin` or `owner`.
    pub role: String,
    /// The one pool the key may see; `null` for every pool.
    pub pool: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        KeyView {
            id: k.id.clone(),
            name: k.name.clone(),
            role: k.role.clone(),
            pool: k.pool.clone(),
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

/// A key just created, with its secret.
#[derive(Serialize, ToSchema)]
pub struct CreatedKeyView {
    #[serde(flatten)]
    pub api_key: KeyView,
    /// The bearer token (`sgk_…`): shown this once; only its hash is stored.
    pub key: String,
}

impl From<&Created> for CreatedKeyView {
    fn from(made: &Created) -> Self {
        CreatedKeyView {
            api_key: KeyView::from(&made.key),
            key: made.secret.clone(),
        }
    }
}

/// A Mini Program: never its AppSecret, sealed or not.
#[derive(Serialize, ToSchema)]
pub struct MiniProgramView {
    pub appid: String,
    pub pool: String,
    pub name: Option<String>,
    /// `config`: declared in the config file, so read-only here.
    pub managed_by: ManagedBy,
    /// Moves with every change: the `ETag`.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&MiniProgram> for MiniProgramView {
    fn from(m: &MiniProgram) -> Self {
        MiniProgramView {
            appid: m.appid.clone(),
            pool: m.pool.clone(),
            name: m.name.clone(),
            managed_by: m.managed_by,
            version: m.version,
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
        }
    }
}

/// A pool's signing key: no private part.
#[derive(Serialize, ToSchema)]
pub struct SigningKeyView {
    /// The `kid` of the JWKS and of tokens' headers.
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// `active` (signs) or `retired` (still published, so tokens it signed verify).
    #[schema(value_type = String)]
    pub state: &'static str,
    pub created_at: String,
    /// When a retired key leaves the JWKS; `null` for the active key.
    pub retires_at: Option<String>,
}

impl From<&KeyInfo> for SigningKeyView {
    fn from(k: &KeyInfo) -> Self {
        SigningKeyView {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            state: k.state,
            created_at: rfc3339(k.created_at),
            retires_at: k.retires_at.map(rfc3339),
        }
    }
}

/// One bucket of an app's scan funnel.
#[derive(Serialize, ToSchema)]
pub struct FunnelRowView {
    /// Where the bucket starts.
    pub start: String,
    pub created: u64,
    pub scanned: u64,
    pub confirmed: u64,
    pub cancelled: u64,
    pub exchanged: u64,
    /// Codes that ended unconfirmed and uncancelled; `null` until every code of the bucket
    /// has had its whole life.
    pub expired: Option<u64>,
    pub phone_lookups: u64,
    /// Median seconds from scan to confirm, as the upper bound of the timing bucket it falls
    /// in (2, 5, 10, 20, 30, 60, 120 or 300); `null` beyond or without confirmations.
    pub median_scan_to_confirm_secs: Option<u64>,
}

impl From<&crate::funnel::Row> for FunnelRowView {
    fn from(r: &crate::funnel::Row) -> Self {
        FunnelRowView {
            start: rfc3339(r.start),
            created: r.created,
            scanned: r.scanned,
            confirmed: r.confirmed,
            cancelled: r.cancelled,
            exchanged: r.exchanged,
            expired: r.expired,
            phone_lookups: r.phone_lookups,
            median_scan_to_confirm_secs: r.median_scan_to_confirm_secs,
        }
    }
}
