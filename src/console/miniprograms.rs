//! Mini Programs: list, register, rename, a new AppSecret (write-only: never shown, never
//! filled in), check the credentials with WeChat, delete. Those declared in the config file
//! are shown read-only.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::{form_error, with_status, Chrome, ConfirmPage, Form, FormView, Signed};
use crate::admin::miniprograms::{Check, MiniProgramChange, NewMiniProgram};
use crate::error::AppResult;
use crate::extract::{Path, Query};
use crate::pages::{page, see_other};
use crate::state::AppState;
use crate::store::apps::ManagedBy;
use crate::store::miniprograms::MiniProgram;
use crate::store::pools::Pool;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/miniprograms",
            get(miniprograms_get).post(miniprograms_post),
        )
        .route("/admin/miniprograms/new", get(miniprogram_new_get))
        .route(
            "/admin/miniprograms/{appid}",
            get(miniprogram_get).post(miniprogram_post),
        )
        .route(
            "/admin/miniprograms/{appid}/check",
            post(miniprogram_check_post),
        )
        .route(
            "/admin/miniprograms/{appid}/delete",
            get(miniprogram_delete_get).post(miniprogram_delete_post),
        )
}

#[derive(Template)]
#[template(path = "console/miniprograms.html")]
struct MiniProgramsPage {
    c: Chrome,
    miniprograms: Vec<MiniProgram>,
    notice: Option<&'static str>,
}

impl MiniProgramsPage {
    fn in_config_file(&self, mp: &MiniProgram) -> bool {
        mp.managed_by == ManagedBy::Config
    }
}

#[derive(Template)]
#[template(path = "console/miniprogram.html")]
struct MiniProgramPage {
    c: Chrome,
    /// `None` for a new one.
    mp: Option<MiniProgram>,
    pools: Vec<Pool>,
    form: FormView,
    saved: bool,
    check: Option<Check>,
}

impl MiniProgramPage {
    fn read_only(&self) -> bool {
        !self.c.can("admin")
            || self
                .mp
                .as_ref()
                .is_some_and(|m| m.managed_by == ManagedBy::Config)
    }

    fn in_config_file(&self) -> bool {
        self.mp
            .as_ref()
            .is_some_and(|m| m.managed_by == ManagedBy::Config)
    }
}

#[derive(serde::Deserialize, Default)]
struct Done {
    done: Option<String>,
    saved: Option<String>,
}

/// `GET /admin/miniprograms`
async fn miniprograms_get(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<Done>,
) -> Response {
    match state.admin.list_miniprograms(signed.actor()).await {
        Ok(miniprograms) => page(&MiniProgramsPage {
            notice: q.done.as_deref().map(|_| {
                signed
                    .lang
                    .pick("小程序已删除。", "The Mini Program was deleted.")
            }),
            c: signed.chrome("miniprograms"),
            miniprograms,
        }),
        Err(e) => signed.error(e),
    }
}

async fn show(
    state: &AppState,
    signed: &Signed,
    mp: Option<MiniProgram>,
    form: FormView,
    saved: bool,
    check: Option<Check>,
) -> AppResult<MiniProgramPage> {
    Ok(MiniProgramPage {
        c: signed.chrome("miniprograms"),
        pools: state.admin.list_pools(signed.actor()).await?,
        mp,
        form,
        saved,
        check,
    })
}

fn respond(signed: &Signed, status: StatusCode, view: AppResult<MiniProgramPage>) -> Response {
    match view {
        Ok(v) => with_status(status, page(&v)),
        Err(e) => signed.error(e),
    }
}

/// `GET /admin/miniprograms/new`
async fn miniprogram_new_get(State(state): State<AppState>, signed: Signed) -> Response {
    let form = FormView::with(&[("pool", "default".into())]);
    let view = show(&state, &signed, None, form, false, None).await;
    respond(&signed, StatusCode::OK, view)
}

/// `POST /admin/miniprograms` (`appid`, `secret`, `pool`, `name`)
async fn miniprograms_post(State(state): State<AppState>, signed: Signed, form: Form) -> Response {
    let mut view = form.view();
    view.values.remove("secret");
    let name = form.text("name");
    let new = NewMiniProgram {
        appid: form.text("appid"),
        secret: form.text("secret"),
        pool: form.text("pool"),
        name: (!name.is_empty()).then_some(name),
    };
    match state.admin.create_miniprogram(signed.actor(), new).await {
        Ok(mp) => see_other(&format!("/admin/miniprograms/{}?saved=1", mp.appid)),
        Err(e) => match form_error(e, &mut view) {
            Ok(status) => {
                let page = show(&state, &signed, None, view, false, None).await;
                respond(&signed, status, page)
            }
            Err(e) => signed.error(e),
        },
    }
}

fn values_of(mp: &MiniProgram) -> FormView {
    FormView::with(&[
        ("name", mp.name.clone().unwrap_or_default()),
        ("version", mp.version.to_string()),
    ])
}

/// `GET /admin/miniprograms/{appid}`
async fn miniprogram_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(appid): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    let view = async {
        let mp = state.admin.miniprogram(signed.actor(), &appid).await?;
        let form = values_of(&mp);
        show(&state, &signed, Some(mp), form, q.saved.is_some(), None).await
    }
    .await;
    respond(&signed, StatusCode::OK, view)
}

/// `POST /admin/miniprograms/{appid}` (`name`, `secret` — empty keeps it —, `version`)
async fn miniprogram_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(appid): Path<String>,
    form: Form,
) -> Response {
    let mut view = form.view();
    view.values.remove("secret");
    let name = form.text("name");
    let secret = form.text("secret");
    let change = MiniProgramChange {
        name: Some((!name.is_empty()).then_some(name)),
        secret: (!secret.is_empty()).then_some(secret),
    };
    let version = form.text("version").parse().ok();
    let result = state
        .admin
        .update_miniprogram(signed.actor(), &appid, change, version)
        .await;
    match result {
        Ok(mp) => see_other(&format!("/admin/miniprograms/{}?saved=1", mp.appid)),
        Err(e) => match form_error(e, &mut view) {
            Ok(status) => {
                let page = async {
                    let mp = state.admin.miniprogram(signed.actor(), &appid).await?;
                    show(&state, &signed, Some(mp), view, false, None).await
                }
                .await;
                respond(&signed, status, page)
            }
            Err(e) => signed.error(e),
        },
    }
}

/// `POST /admin/miniprograms/{appid}/check`: asks WeChat whether the stored AppSecret works.
async fn miniprogram_check_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(appid): Path<String>,
) -> Response {
    let view = async {
        let check = state
            .admin
            .check_miniprogram(signed.actor(), &appid)
            .await?;
        let mp = state.admin.miniprogram(signed.actor(), &appid).await?;
        let form = values_of(&mp);
        show(&state, &signed, Some(mp), form, false, Some(check)).await
    }
    .await;
    respond(&signed, StatusCode::OK, view)
}

/// `GET /admin/miniprograms/{appid}/delete`: asks first.
async fn miniprogram_delete_get(
    State(state): State<AppState>,
    signed: Signed,
    Path(appid): Path<String>,
) -> Response {
    match state.admin.miniprogram(signed.actor(), &appid).await {
        Ok(mp) => page(&ConfirmPage::delete(
            signed.chrome("miniprograms"),
            format!("/admin/miniprograms/{}/delete", mp.appid),
            format!("/admin/miniprograms/{}", mp.appid),
            mp.name.clone().unwrap_or_else(|| mp.appid.clone()),
            mp.version,
        )),
        Err(e) => signed.error(e),
    }
}

/// `POST /admin/miniprograms/{appid}/delete` (`version`)
async fn miniprogram_delete_post(
    State(state): State<AppState>,
    signed: Signed,
    Path(appid): Path<String>,
    form: Form,
) -> Response {
    let version = form.text("version").parse().ok();
    match state
        .admin
        .delete_miniprogram(signed.actor(), &appid, version)
        .await
    {
        Ok(()) => see_other("/admin/miniprograms?done=deleted"),
        Err(e) => signed.error(e),
    }
}
