//! Apps: list, create, edit, delete, a new client secret (shown once), the live QR preview,
//! the callback checker and "Try it". Apps declared in the config file are shown read-only.
//!
//! The preview renders the branded QR from the form's values without saving anything: as the
//! operator edits (`POST /admin/apps/preview`, answered with JSON for `console.js`), or with
//! the form's "Preview" button when scripts are off.

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use sha2::Digest as _;

use super::form::Upload;
use super::{form_error, with_status, Chrome, ConfirmPage, Form, FormView, Signed};
use crate::admin::apps::{AppChange, NewApp};
use crate::admin::PageRequest;
use crate::config::{AppConfig, QrMode};
use crate::error::AppResult;
use crate::extract::{Path, Query};
use crate::pages::{page, see_other, Lang};
use crate::qr::logo::{stored_digest, MAX_LOGO_BYTES};
use crate::qr::{Branding, Format};
use crate::state::AppState;
use crate::store::apps::{App, ManagedBy, PhoneAsk, Signup};
use crate::store::miniprograms::MiniProgram;
use crate::store::pools::Pool;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/apps", get(apps_get).post(apps_post))
        .route("/admin/apps/new", get(app_new_get))
        .route("/admin/apps/preview", post(preview_post))
        .route("/admin/apps/{client_id}", get(app_get).post(app_post))
        .route("/admin/apps/{client_id}/callback", get(callback_get))
        .route("/admin/apps/{client_id}/secret", post(secret_post))
        .route(
            "/admin/apps/{client_id}/delete",
            get(app_delete_get).post(app_delete_post),
        )
}

#[derive(Template)]
#[template(path = "console/apps.html")]
struct AppsPage {
    c: Chrome,
    apps: Vec<App>,
    next: Option<String>,
    notice: Option<&'static str>,
}

impl AppsPage {
    fn in_config_file(&self, app: &App) -> bool {
        app.managed_by == ManagedBy::Config
    }
}

#[derive(Template)]
#[template(path = "console/app.html")]
struct AppPage {
    c: Chrome,
    /// `None` for a new app.
    app: Option<App>,
    pools: Vec<Pool>,
    miniprograms: Vec<MiniProgram>,
    form: FormView,
    saved: bool,
    /// A client secret just made: shown this once.
    secret: Option<String>,
    preview: Preview,
    callback: Option<CallbackCheck>,
    /// The hosted login of this app, for "Try it".
    try_url: Option<String>,
}

impl AppPage {
    fn read_only(&self) -> bool {
        !self.c.can("admin") || self.in_config_file()
    }

    fn in_config_file(&self) -> bool {
        self.app
            .as_ref()
            .is_some_and(|a| a.managed_by == ManagedBy::Config)
    }

    fn action(&self) -> String {
        match &self.app {
            Some(a) => format!("/admin/apps/{}", a.client_id),
            None => "/admin/apps".into(),
        }
    }
}

/// The QR image the form's values make, and what to know about it.
pub struct Preview {
    /// A `data:image/svg+xml` URI.
    pub image: String,
    pub note: String,
    /// The note is a warning.
    pub warn: bool,
    /// Changes whenever the branding does.
    pub fingerprint: String,
}

/// Whether `/oidc/auth` would accept a URL as `redirect_uri`, and if not, why.
pub struct CallbackCheck {
    pub url: String,
    pub ok: bool,
    pub reason: String,
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    cursor: Option<String>,
    done: Option<String>,
}

/// `GET /admin/apps`
async fn apps_get(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Response {
    let page_request = PageRequest {
        limit: Some(50),
        cursor: q.cursor,
    };
    match state.admin.list_apps(signed.actor(), &page_request).await {
        Ok(listed) => page(&AppsPage {
            notice: q
                .done
                .as_deref()
                .map(|_| signed.lang.pick("应用已删除。", "The app was deleted.")),
            c: signed.chrome("apps"),
            apps: listed.items,
            next: listed.next_cursor,
        }),
        Err(e) => signed.error(e),
    }
}

/// The preview fields' defaults: `[[apps]]`'s.
fn preview_defaults(values: &mut FormView) {
    let d = AppConfig::default();
    for (k, v) in [
        ("qr_foreground", d.qr_foreground),
        ("qr_background", d.qr_background),
        ("qr_size", d.qr_size.to_string()),
        ("qr_quiet_zone", d.qr_quiet_zone.to_string()),
        ("qr_mode", "qrcode".to_owned()),
    ] {
        values.values.entry(k.to_owned()).or_insert(v);
    }
}

fn values_of(app: &App) -> FormView {
    let mut view = FormView::with(&[
        ("name", app.name.clone()),
        ("logo", app.logo.clone().unwrap_or_default()),
        ("redirect_uris", app.redirect_uris.join("\n")),
        (
            "post_logout_redirect_uris",
            app.post_logout_redirect_uris.join("\n"),
        ),
        ("allowed_origins", app.allowed_origins.join("\n")),
        ("miniprogram", app.miniprogram.to_string()),
        ("qr_ttl_secs", app.qr_ttl_secs.to_string()),
        (
            "require_binding",
            if app.require_binding { "1" } else { "" }.to_owned(),
        ),
        ("signup", app.signup.as_str().to_owned()),
        (
            "match_number",
            if app.match_number { "1" } else { "" }.to_owned(),
        ),
        ("phone", app.phone.as_str().to_owned()),
        (
            "device_grant",
            if app.device_grant { "1" } else { "" }.to_owned(),
        ),
        ("version", app.version.to_string()),
    ]);
    preview_defaults(&mut view);
    view
}

struct Shown {
    app: Option<App>,
    form: FormView,
    saved: bool,
    secret: Option<String>,
    callback: Option<CallbackCheck>,
    upload: Option<Upload>,
}

impl Shown {
    fn new(app: Option<App>, form: FormView) -> Shown {
        Shown {
            app,
            form,
            saved: false,
            secret: None,
            callback: None,
            upload: None,
        }
    }
}

async fn show(state: &AppState, signed: &Signed, shown: Shown) -> AppResult<AppPage> {
    let Shown {
        app,
        mut form,
        saved,
        secret,
        callback,
        upload,
    } = shown;
    // An app of the config file is drawn as it is configured (its `qr_*` keys).
    let configured = app
        .as_ref()
        .filter(|a| a.managed_by == ManagedBy::Config)
        .and_then(|a| state.qr.configured(a.client_id.as_str()));
    if let Some(b) = configured {
        for (k, v) in [
            ("qr_foreground", b.foreground.hex()),
            ("qr_background", b.background.hex()),
            ("qr_size", b.size.to_string()),
            ("qr_quiet_zone", b.quiet_zone.to_string()),
            (
                "qr_mode",
                if b.mode == QrMode::Wxacode {
                    "wxacode"
                } else {
                    "qrcode"
                }
                .to_owned(),
            ),
        ] {
            form.values.insert(k.to_owned(), v);
        }
    }
    preview_defaults(&mut form);
    let preview = preview(
        state,
        signed.lang,
        &form.clone(),
        upload.as_ref(),
        &mut form,
    )
    .await;
    let try_url = app.as_ref().and_then(try_url);
    Ok(AppPage {
        c: signed.chrome("apps"),
        pools: state.admin.list_pools(signed.actor()).await?,
        miniprograms: state.admin.list_miniprograms(signed.actor()).await?,
        app,
        form,
        saved,
        secret,
        preview,
        callback,
        try_url,
    })
}

fn respond(signed: &Signed, status: StatusCode, view: AppResult<AppPage>) -> Response {
    match view {
        Ok(v) => with_status(status, page(&v)),
        Err(e) => signed.error(e),
    }
}

/// `GET /admin/apps/new`
async fn app_new_get(State(state): State<AppState>, signed: Signed) -> Response {
    let d = AppConfig::default();
    // A Mini Program of the pool preselected, so that the defaults fit together.
    let miniprogram = state
        .admin
        .list_miniprograms(signed.actor())
        .await
        .ok()
        .and_then(|mps| mps.into_iter().find(|m| m.pool == "default"))
        .map(|m| m.appid)
        .unwrap_or_default();
    let form = FormView::with(&[
        ("pool", "default".into()),
        ("miniprogram", miniprogram),
        ("qr_ttl_secs", d.qr_ttl_secs.to_string()),
        ("require_binding", "1".into()),
        ("match_number", "1".into()),
        ("signup", "open".into()),
        ("phone", "optional".into()),
    ]);
    let view = show(&state, &signed, Shown::new(None, form)).await;
    respond(&signed, StatusCode::OK, view)
}

/// Checks what the console checks before the management layer does: numbers that are not
/// numbers, the name, and an uploaded logo (size, type, scripts in an SVG). Returns the logo
/// to send, as a `data:` URI, when a file was chosen.
fn check_form(form: &Form, lang: Lang, view: &mut FormView) -> Option<String> {
    let name = form.text("name");
    if name.is_empty() || name.chars().count() > 100 {
        view.add(
            "name",
            lang.pick("必须是 1 到 100 个字符", "must be 1 to 100 characters"),
        );
    }
    if form.text("qr_ttl_secs").parse::<u64>().is_err() {
        view.add(
            "qr_ttl_secs",
            lang.pick(
                "必须是整数秒（30 到 3600）",
                "must be a whole number of seconds (30 to 3600)",
            ),
        );
    }
    let upload = form.file("logo_file")?;
    match logo_data_uri(upload) {
        Ok(uri) => Some(uri),
        Err(message) => {
            view.add("logo_file", lang.pick(message.0, message.1));
            None
        }
    }
}

/// An uploaded logo as a `data:` URI, or why it cannot be one (Chinese, English).
fn logo_data_uri(upload: &Upload) -> Result<String, (&'static str, &'static str)> {
    if upload.bytes.len() > MAX_LOGO_BYTES {
        return Err(("图片不能超过 1 MiB", "the image must be at most 1 MiB"));
    }
    let kind = sniff(&upload.bytes).ok_or((
        "必须是 PNG、JPEG、WebP 或 SVG 图片",
        "must be a PNG, JPEG, WebP or SVG image",
    ))?;
    if kind == "image/svg+xml" && has_script(&upload.bytes) {
        return Err((
            "SVG 中含有脚本或事件处理器；请导出不含脚本的 SVG",
            "the SVG contains a script or event handler; export it without them",
        ));
    }
    Ok(format!(
        "data:{kind};base64,{}",
        STANDARD.encode(&upload.bytes)
    ))
}

/// The image type of `bytes`, by their first bytes (whatever the browser claimed).
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).to_ascii_lowercase();
        head.contains("<svg").then_some("image/svg+xml")
    }
}

/// Whether an SVG carries a script: a `<script>` element, an `on…=` handler or a
/// `javascript:` URL.
fn has_script(svg: &[u8]) -> bool {
    let text = String::from_utf8_lossy(svg).to_ascii_lowercase();
    let handler = text
        .match_indices(" on")
        .chain(text.match_indices("\ton"))
        .chain(text.match_indices("\non"))
        .any(|(at, _)| {
            let rest = &text[at + 3..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            !name.is_empty() && rest[name.len()..].trim_start().starts_with('=')
        });
    text.contains("<script") || text.contains("javascript:") || handler
}

fn signup_of(value: &str) -> Signup {
    if value == "existing_only" {
        Signup::ExistingOnly
    } else {
        Signup::Open
    }
}

/// `POST /admin/apps`: create, or with `action=preview` only show the preview.
async fn apps_post(State(state): State<AppState>, signed: Signed, form: Form) -> Response {
    let mut view = form.view();
    let mut shown_upload = form.file("logo_file").cloned();
    if form.get("action") == Some("preview") {
        let page = show(
            &state,
            &signed,
            Shown {
                upload: shown_upload,
                ..Shown::new(None, view)
            },
        )
        .await;
        return respond(&signed, StatusCode::OK, page);
    }
    let uploaded = check_form(&form, signed.lang, &mut view);
    if view.has_errors() {
        shown_upload = None;
        let page = show(
            &state,
            &signed,
            Shown {
                upload: shown_upload,
                ..Shown::new(None, view)
            },
        )
        .await;
        return respond(&signed, StatusCode::BAD_REQUEST, page);
    }
    let logo = uploaded.or_else(|| Some(form.text("logo")).filter(|l| !l.is_empty()));
    let new = NewApp {
        client_id: form.text("client_id"),
        pool: form.text("pool"),
        name: form.text("name"),
        logo,
        redirect_uris: form.lines("redirect_uris"),
        post_logout_redirect_uris: form.lines("post_logout_redirect_uris"),
        allowed_origins: form.lines("allowed_origins"),
        miniprogram: form.text("miniprogram"),
        qr_ttl_secs: form.text("qr_ttl_secs").parse().unwrap_or(0),
        require_binding: form.checked("require_binding"),
        public: form.checked("public"),
        signup: signup_of(&form.text("signup")),
        match_number: form.checked("match_number"),
        phone: PhoneAsk::parse(&form.text("phone")),
        device_grant: form.checked("device_grant"),
    };
    match state.admin.create_app(signed.actor(), new).await {
        Ok(made) => {
            let mut values = values_of(&made.app);
            carry_preview(&form, &mut values);
            let shown = Shown {
                saved: true,
                secret: made.client_secret,
                ..Shown::new(Some(made.app), values)
            };
            let page = show(&state, &signed, shown).await;
            respond(&signed, StatusCode::CREATED, page)
        }
        Err(e) => match form_error(e, &mut view) {
            Ok(status) => {
                let page = show(&state, &signed, Shown::new(None, view)).await;
                respond(&signed, status, page)
            }
            Err(e) => signed.error(e),
        },
    }
}

/// Keeps the preview-only fields as they were typed.
fn carry_preview(form: &Form, values: &mut FormView) {
    for k in [
        "qr_foreground",
        "qr_background",
        "qr_size",
        "qr_quiet_zone",
        "qr_mode",
    ] {
        if let Some(v) = form.get(k) {
            values.values.insert(k.into(), v.into());
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct Saved {
    saved: Option<String>,
}

/// `GET /admin/apps/{client_id}`
async fn app_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(client_id): Path<String>,
    Query(q): Query<Saved>,
) -> Response {
    let view = async {
        let app = state.admin.app(signed.actor(), &client_id).await?;
        let form = values_of(&app);
        let shown = Shown {
            saved: q.saved.is_some(),
            ..Shown::new(Some(app), form)
        };
        show(&state, &signed, shown).await
    }
    .await;
    respond(&signed, StatusCode::OK, view)
}

/// `POST /admin/apps/{client_id}`: save every field, or with `action=preview` only preview.
async fn app_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(client_id): Path<String>,
    form: Form,
) -> Response {
    let current = match state.admin.app(signed.actor(), &client_id).await {
        Ok(app) => app,
        Err(e) => return signed.error(e),
    };
    let mut view = form.view();
    if form.get("action") == Some("preview") {
        let shown = Shown {
            upload: form.file("logo_file").cloned(),
            ..Shown::new(Some(current), view)
        };
        let page = show(&state, &signed, shown).await;
        return respond(&signed, StatusCode::OK, page);
    }
    let uploaded = check_form(&form, signed.lang, &mut view);
    if view.has_errors() {
        let page = show(&state, &signed, Shown::new(Some(current), view)).await;
        return respond(&signed, StatusCode::BAD_REQUEST, page);
    }
    let typed = form.text("logo");
    let logo = match uploaded {
        Some(uri) => Some(Some(uri)),
        None if typed.is_empty() => current.logo.as_ref().map(|_| None),
        None if Some(&typed) == current.logo.as_ref() => None,
        None => Some(Some(typed)),
    };
    let change = AppChange {
        name: Some(form.text("name")),
        logo,
        redirect_uris: Some(form.lines("redirect_uris")),
        post_logout_redirect_uris: Some(form.lines("post_logout_redirect_uris")),
        allowed_origins: Some(form.lines("allowed_origins")),
        miniprogram: Some(form.text("miniprogram")),
        qr_ttl_secs: form.text("qr_ttl_secs").parse().ok(),
        require_binding: Some(form.checked("require_binding")),
        signup: Some(signup_of(&form.text("signup"))),
        match_number: Some(form.checked("match_number")),
        phone: Some(PhoneAsk::parse(&form.text("phone"))),
        device_grant: Some(form.checked("device_grant")),
    };
    let version = form.text("version").parse().ok();
    match state
        .admin
        .update_app(signed.actor(), &client_id, change, version)
        .await
    {
        Ok(app) => {
            let mut values = values_of(&app);
            carry_preview(&form, &mut values);
            let shown = Shown {
                saved: true,
                ..Shown::new(Some(app), values)
            };
            let page = show(&state, &signed, shown).await;
            respond(&signed, StatusCode::OK, page)
        }
        Err(e) => match form_error(e, &mut view) {
            Ok(status) => {
                let page = show(&state, &signed, Shown::new(Some(current), view)).await;
                respond(&signed, status, page)
            }
            Err(e) => signed.error(e),
        },
    }
}

/// `POST /admin/apps/{client_id}/secret` (`version`): a new client secret, shown once.
async fn secret_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(client_id): Path<String>,
    form: Form,
) -> Response {
    let version = form.text("version").parse().ok();
    let view = async {
        let made = state
            .admin
            .rotate_secret(signed.actor(), &client_id, version)
            .await?;
        let form = values_of(&made.app);
        let shown = Shown {
            secret: made.client_secret,
            ..Shown::new(Some(made.app), form)
        };
        show(&state, &signed, shown).await
    }
    .await;
    respond(&signed, StatusCode::OK, view)
}

#[derive(serde::Deserialize)]
struct CallbackQuery {
    url: Option<String>,
}

/// `GET /admin/apps/{client_id}/callback?url=`: would `/oidc/auth` accept `url` as this app's
/// `redirect_uri`? The reasons are the hosted error page's.
async fn callback_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(client_id): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let view = async {
        let app = state.admin.app(signed.actor(), &client_id).await?;
        let url: String = q
            .url
            .unwrap_or_default()
            .trim()
            .chars()
            .take(2048)
            .collect();
        let callback = (!url.is_empty()).then(|| check_callback(&app, &url, signed.lang));
        let form = values_of(&app);
        let shown = Shown {
            callback,
            ..Shown::new(Some(app), form)
        };
        show(&state, &signed, shown).await
    }
    .await;
    respond(&signed, StatusCode::OK, view)
}

fn check_callback(app: &App, url: &str, lang: Lang) -> CallbackCheck {
    if app.redirect_uris.iter().any(|r| r == url) {
        return CallbackCheck {
            url: url.to_owned(),
            ok: true,
            reason: lang
                .pick(
                    "与登记的回调地址完全一致：/oidc/auth 会接受它。",
                    "It matches a registered redirect URI exactly: /oidc/auth accepts it.",
                )
                .to_owned(),
        };
    }
    let (en, zh) = crate::oauth::request::explain_mismatch(url, &app.redirect_uris);
    CallbackCheck {
        url: url.to_owned(),
        ok: false,
        reason: match lang {
            Lang::Zh => zh,
            Lang::En => en,
        },
    }
}

/// The hosted login of `app` on its first redirect URI, as a relying party would send a
/// browser there (with PKCE, which every client may use).
fn try_url(app: &App) -> Option<String> {
    let redirect = app.redirect_uris.first()?;
    let issuer = if app.pool.as_str() == "default" {
        "/oidc".to_owned()
    } else {
        format!("/pools/{}/oidc", app.pool)
    };
    let verifier = crate::crypto::random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", app.client_id.as_str())
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid profile")
        .append_pair("state", "console-try")
        .append_pair("prompt", "login")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    Some(format!("{issuer}/auth?{query}"))
}

/// `GET /admin/apps/{client_id}/delete`: asks first.
async fn app_delete_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(client_id): Path<String>,
) -> Response {
    match state.admin.app(signed.actor(), &client_id).await {
        Ok(app) => page(&ConfirmPage::delete(
            signed.chrome("apps"),
            format!("/admin/apps/{}/delete", app.client_id),
            format!("/admin/apps/{}", app.client_id),
            app.name.clone(),
            app.version,
        )),
        Err(e) => signed.error(e),
    }
}

/// `POST /admin/apps/{client_id}/delete` (`version`)
async fn app_delete_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(client_id): Path<String>,
    form: Form,
) -> Response {
    let version = form.text("version").parse().ok();
    match state
        .admin
        .delete_app(signed.actor(), &client_id, version)
        .await
    {
        Ok(()) => see_other("/admin/apps?done=deleted"),
        Err(e) => signed.error(e),
    }
}

/// `POST /admin/apps/preview`: the preview of the posted form as JSON
/// (`{"image", "note", "warn", "fingerprint", "errors"}`), nothing saved.
async fn preview_post(State(state): State<AppState>, signed: Signed, form: Form) -> Response {
    let values = form.view();
    let mut view = values.clone();
    let p = preview(
        &state,
        signed.lang,
        &values,
        form.file("logo_file"),
        &mut view,
    )
    .await;
    let errors: serde_json::Map<String, serde_json::Value> = view
        .errors
        .iter()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
        .collect();
    let mut res = axum::Json(serde_json::json!({
        "image": p.image,
        "note": p.note,
        "warn": p.warn,
        "fingerprint": p.fingerprint,
        "errors": errors,
    }))
    .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// What the preview encodes: a code URL as long as a real one.
const SAMPLE_PATH: &str = "/q/preview-preview-preview-preview";

/// Renders the QR image `values` describe (colours, size, quiet zone, mode, logo: an upload, a
/// stored logo or a `data:` URI); what is wrong goes beside its field in `view`, and the
/// image is then drawn without it.
async fn preview(
    state: &AppState,
    lang: Lang,
    values: &FormView,
    upload: Option<&Upload>,
    view: &mut FormView,
) -> Preview {
    let mut notes: Vec<String> = Vec::new();
    let mut warn = false;
    let number = |name: &str, default: u32, view: &mut FormView| -> u32 {
        match values.value(name).trim().parse::<u32>() {
            Ok(n) => n,
            Err(_) if values.value(name).trim().is_empty() => default,
            Err(_) => {
                view.add(name, lang.pick("必须是整数", "must be a whole number"));
                default
            }
        }
    };
    let d = AppConfig::default();
    let mut config = AppConfig {
        qr_foreground: or(values.value("qr_foreground"), &d.qr_foreground),
        qr_background: or(values.value("qr_background"), &d.qr_background),
        qr_size: number("qr_size", d.qr_size, view),
        qr_quiet_zone: number("qr_quiet_zone", d.qr_quiet_zone, view),
        qr_mode: if values.value("qr_mode") == "wxacode" {
            QrMode::Wxacode
        } else {
            QrMode::Qrcode
        },
        ..AppConfig::default()
    };
    let typed = values.value("logo").trim().to_owned();
    config.logo = match upload {
        Some(file) => match logo_data_uri(file) {
            Ok(uri) => Some(uri),
            Err(message) => {
                view.add("logo_file", lang.pick(message.0, message.1));
                None
            }
        },
        None => match stored_digest(&typed) {
            Some(digest) => crate::store::logos::get(&state.db, digest)
                .await
                .ok()
                .flatten()
                .map(|png| format!("data:image/png;base64,{}", STANDARD.encode(png))),
            None if typed.starts_with("data:") => Some(typed.clone()),
            None if typed.starts_with("http://") || typed.starts_with("https://") => {
                notes.push(
                    lang.pick(
                        "网址形式的徽标由小程序显示，不会画进二维码。",
                        "A logo given as a URL is shown by the Mini Program but not drawn into QR images.",
                    )
                    .to_owned(),
                );
                None
            }
            None => None,
        },
    };
    let with_logo = config.logo.is_some();
    let checked = tokio::task::spawn_blocking({
        let config = config.clone();
        move || Branding::from_app(&config)
    })
    .await;
    let branding = match checked {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let key = if e.key == "logo" && upload.is_some() {
                "logo_file"
            } else {
                e.key.split('.').next().unwrap_or(e.key)
            };
            view.add(key, e.message.clone());
            warn = true;
            notes.push(format!(
                "{} {}",
                lang.pick("无法按这些设置绘制：", "These settings cannot be drawn:"),
                e.message
            ));
            Branding::default()
        }
        Err(_) => Branding::default(),
    };
    let data = format!(
        "{}{SAMPLE_PATH}",
        state.config.public_url.as_str().trim_end_matches('/')
    );
    if with_logo && branding.logo.is_some() {
        if let Ok(matrix) = crate::qr::encode::encode(data.as_bytes()) {
            let width = matrix.width() as f64;
            let plate = (width * f64::from(crate::qr::render::PLATE_SHARE)).floor();
            let share = (plate * plate) / (width * width) * 100.0;
            // Level H restores 30 % of each block's codewords; a plate hiding more than half
            // of that leaves too little for print and camera noise.
            if share > 15.0 {
                warn = true;
                notes.push(format!(
                    "{} {share:.0} %",
                    lang.pick(
                        "徽标太大，超出了纠错等级 H 的安全范围：遮住了",
                        "The logo is too large for error correction H: it hides",
                    )
                ));
            } else {
                notes.push(format!(
                    "{} {share:.0} % {}",
                    lang.pick("徽标遮住约", "The logo hides about"),
                    lang.pick(
                        "的模块；纠错等级 H 可恢复 30 %，可以正常扫描。",
                        "of the modules; error correction H restores up to 30 %, so the code scans.",
                    )
                ));
            }
        }
    }
    if branding.mode == QrMode::Wxacode {
        notes.push(
            lang.pick(
                "小程序码由微信绘制，徽标以同样方式盖在中央；此处以普通二维码示意。",
                "In Mini Program code mode WeChat draws the code and the logo is laid over its centre the same way; an ordinary QR code stands in for it here.",
            )
            .to_owned(),
        );
    }
    let fingerprint = format!("{:016x}", branding.fingerprint);
    let size = branding.size.clamp(crate::qr::MIN_SIZE, 400);
    let image =
        tokio::task::spawn_blocking(move || crate::qr::render(&data, &branding, size, Format::Svg))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|svg| format!("data:image/svg+xml;base64,{}", STANDARD.encode(svg)))
            .unwrap_or_default();
    if notes.is_empty() {
        notes.push(
            lang.pick(
                "预览不会保存；颜色、尺寸和模式只在配置文件（[[apps]] 的 qr_*）中生效。",
                "Nothing is saved by previewing; colours, size and mode take effect from the config file ([[apps]] qr_*).",
            )
            .to_owned(),
        );
    }
    Preview {
        image,
        note: notes.join(" "),
        warn,
        fingerprint,
    }
}

fn or(value: &str, default: &str) -> String {
    let v = value.trim();
    if v.is_empty() { default } else { v }.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_in_an_svg_are_found() {
        for svg in [
            r#"<svg><script>alert(1)</script></svg>"#,
            r#"<svg onload="alert(1)"></svg>"#,
            r#"<svg><a href="javascript:alert(1)"/></svg>"#,
            "<svg\nonclick = 'x'></svg>",
        ] {
            assert!(has_script(svg.as_bytes()), "{svg}");
        }
        assert!(!has_script(br#"<svg width="10"><rect fill="red" /></svg>"#));
        assert!(!has_script(br#"<svg><text>only once</text></svg>"#));
    }

    #[test]
    fn images_are_told_apart_by_their_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff(b"<?xml version='1.0'?><svg/>"), Some("image/svg+xml"));
        assert_eq!(sniff(b"GIF89a"), None);
    }
}
