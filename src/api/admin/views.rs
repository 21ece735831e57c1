//! What the management API shows of each object: never a secret, a hash or a sealed value.

use serde_json::{json, Value};

use crate::admin::apps::WithSecret;
use crate::admin::signing::KeyInfo;
use crate::admin::users::UserDetail;
use crate::clock::rfc3339;
use crate::store::{
    admin_keys::ApiKey, apps::App, audit::Recorded, miniprograms::MiniProgram, pools::Pool,
    users::User,
};

pub fn pool(p: &Pool) -> Value {
    json!({
        "slug": p.slug,
        "name": p.name,
        "version": p.version,
        "created_at": rfc3339(p.created_at),
    })
}

pub fn app(a: &App) -> Value {
    json!({
        "client_id": a.client_id,
        "pool": a.pool,
        "name": a.name,
        "logo": a.logo,
        "redirect_uris": a.redirect_uris,
        "post_logout_redirect_uris": a.post_logout_redirect_uris,
        "allowed_origins": a.allowed_origins,
        "miniprogram": a.miniprogram,
        "qr_ttl_secs": a.qr_ttl_secs,
        "require_binding": a.require_binding,
        "signup": a.signup,
        "match_number": a.match_number,
        "phone": a.phone,
        "device_grant": a.device_grant,
        "public": a.client_secret_hash.is_none(),
        "managed_by": a.managed_by,
        "version": a.version,
        "created_at": rfc3339(a.created_at),
        "updated_at": rfc3339(a.updated_at),
    })
}

/// An app just created or given a new secret: the secret appears here, once.
pub fn app_with_secret(made: &WithSecret) -> Value {
    let mut v = app(&made.app);
    v["client_secret"] = json!(made.client_secret);
    v
}

pub fn user(u: &User) -> Value {
    json!({
        "id": u.id,
        "pool": u.pool,
        "nickname": u.nickname,
        "avatar_url": u.avatar_url,
        "phone": u.phone,
        "phone_country_code": u.phone_country,
        "blocked": u.blocked,
        "external_id": u.external_id,
        "provisioned": u.provisioned,
        "login_count": u.login_count,
        "last_login_at": u.last_login_at.map(rfc3339),
        "last_ip": u.last_ip,
        "created_at": rfc3339(u.created_at),
        "updated_at": rfc3339(u.updated_at),
    })
}

pub fn user_detail(d: &UserDetail) -> Value {
    let mut v = user(&d.user);
    v["identities"] = d
        .identities
        .iter()
        .map(|i| {
            json!({
                "appid": i.appid,
                "openid": i.openid,
                "unionid": i.unionid,
            })
        })
        .collect();
    v["grants"] = d
        .grants
        .iter()
        .map(|g| {
            json!({
                "id": g.id,
                "client_id": g.client_id,
                "scope": g.scope,
                "created_at": rfc3339(g.created_at),
            })
        })
        .collect();
    v["sessions"] = json!({ "browser": d.sessions.0, "miniprogram": d.sessions.1 });
    v["last_logins"] = d
        .last_logins
        .iter()
        .map(|e| json!({ "at": rfc3339(e.at), "app": e.subject, "ip": e.ip, "how": e.action }))
        .collect();
    v
}

pub fn audit_event(e: &Recorded) -> Value {
    json!({
        "id": e.id,
        "pool": e.pool,
        "at": rfc3339(e.at),
        "actor": e.actor,
        "action": e.action,
        "subject": e.subject,
        "ip": e.ip,
        "detail": e.detail,
    })
}

pub fn key(k: &ApiKey) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "role": k.role,
        "pool": k.pool,
        "created_at": rfc3339(k.created_at),
        "last_used_at": k.last_used_at.map(rfc3339),
        "revoked_at": k.revoked_at.map(rfc3339),
    })
}

/// A Mini Program: never its AppSecret, sealed or not.
pub fn miniprogram(m: &MiniProgram) -> Value {
    json!({
        "appid": m.appid,
        "pool": m.pool,
        "name": m.name,
        "managed_by": m.managed_by,
        "version": m.version,
        "created_at": rfc3339(m.created_at),
        "updated_at": rfc3339(m.updated_at),
    })
}

pub fn signing_key(k: &KeyInfo) -> Value {
    json!({
        "kid": k.kid,
        "alg": k.alg,
        "state": k.state,
        "created_at": rfc3339(k.created_at),
        "retires_at": k.retires_at.map(rfc3339),
    })
}

pub fn funnel_row(r: &crate::funnel::Row) -> Value {
    json!({
        "start": rfc3339(r.start),
        "created": r.created,
        "scanned": r.scanned,
        "confirmed": r.confirmed,
        "cancelled": r.cancelled,
        "exchanged": r.exchanged,
        "expired": r.expired,
        "phone_lookups": r.phone_lookups,
        "median_scan_to_confirm_secs": r.median_scan_to_confirm_secs,
    })
}
