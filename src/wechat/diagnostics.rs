//! What an operator needs to see when WeChat misbehaves for a Mini Program: the errcodes it
//! answered with (how often, when last, its message), the state of the access-token cache,
//! and what each errcode means and what to do, in English and Chinese.
//!
//! Everything is recorded in the database, so every instance adds to the same counts and the
//! console shows the same figures whichever instance serves it. Recording never fails a
//! WeChat call: a failed write is logged and forgotten. Nothing recorded is secret: errmsg is
//! scrubbed of the AppSecret, codes and tokens before it gets here, and the token itself is
//! never stored, only whether the shared cache holds one.

use std::time::Duration;

use crate::clock::{Clock, Millis};
use crate::store::{self, Db};

use super::WechatError;

/// The access-token cache of one Mini Program, as the operator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TokenState {
    /// Whether the shared cache holds a token now.
    pub cached: bool,
    /// When the cached token is dropped and fetched again (absent when none is cached).
    #[schema(value_type = Option<i64>)]
    pub expires_at: Option<Millis>,
    /// When a token was last fetched from WeChat.
    #[schema(value_type = Option<i64>)]
    pub refreshed_at: Option<Millis>,
    /// The last failed fetch: when, WeChat's errcode (absent when WeChat did not answer) and
    /// what went wrong.
    #[schema(value_type = Option<i64>)]
    pub error_at: Option<Millis>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
}

/// Records WeChat's answers for the operator.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    db: Db,
    clock: Clock,
}

impl Diagnostics {
    pub fn new(db: Db, clock: Clock) -> Self {
        Self { db, clock }
    }

    /// Counts an errcode WeChat answered `path` with for `appid`.
    pub(super) async fn error(&self, appid: &str, errcode: i64, path: &str, errmsg: &str) {
        let now = self.clock.now();
        if let Err(e) =
            store::wechat_diagnostics::record_error(&self.db, appid, errcode, path, errmsg, now)
                .await
        {
            tracing::warn!(error = %e, appid, errcode, "could not record a WeChat error");
        }
    }

    /// Notes a token fetched now and cached for `ttl`.
    pub(super) async fn refreshed(&self, appid: &str, ttl: Duration) {
        let now = self.clock.now();
        let expires_at = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        if let Err(e) =
            store::wechat_diagnostics::record_refresh(&self.db, appid, now, expires_at).await
        {
            tracing::warn!(error = %e, appid, "could not record an access token fetch");
        }
    }

    /// Notes a failed token fetch.
    pub(super) async fn refresh_failed(&self, appid: &str, error: &WechatError) {
        let (errcode, message) = match error {
            WechatError::Api { errcode, errmsg } => (Some(*errcode), errmsg.clone()),
            other => (None, other.to_string()),
        };
        let now = self.clock.now();
        if let Err(e) =
            store::wechat_diagnostics::record_refresh_error(&self.db, appid, errcode, &message, now)
                .await
        {
            tracing::warn!(error = %e, appid, "could not record a failed access token fetch");
        }
    }

    /// The last token fetches as recorded (an empty state when nothing is recorded or the
    /// database cannot answer: diagnostics must not fail for want of diagnostics).
    pub(super) async fn token_state(&self, appid: &str) -> store::wechat_diagnostics::TokenState {
        store::wechat_diagnostics::token_state(&self.db, appid)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, appid, "could not read the access token state");
                Default::default()
            })
    }
}

/// A text in both languages of the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Bilingual {
    #[schema(value_type = String)]
    pub en: &'static str,
    #[serde(rename = "zh-CN")]
    #[schema(value_type = String)]
    pub zh: &'static str,
}

impl Bilingual {
    /// The text in `lang` (`zh-CN` or anything else for English).
    pub fn get(&self, lang: &str) -> &'static str {
        if lang.starts_with("zh") {
            self.zh
        } else {
            self.en
        }
    }
}

/// What an errcode means and what the operator should do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Explanation {
    pub meaning: Bilingual,
    pub action: Bilingual,
}

const fn t(en: &'static str, zh: &'static str) -> Bilingual {
    Bilingual { en, zh }
}

const fn x(meaning: Bilingual, action: Bilingual) -> Explanation {
    Explanation { meaning, action }
}

const WRONG_SECRET: Explanation = x(
    t("The AppSecret is wrong.", "AppSecret 不正确。"),
    t(
        "Copy the AppSecret again from the Mini Program's admin console (Development → Development settings; 开发管理 → 开发设置), or reset it there, and save it on this Mini Program.",
        "请在小程序管理后台（开发管理 → 开发设置）重新复制或重置 AppSecret，并保存到此小程序。",
    ),
);

const IP_WHITELIST: Explanation = x(
    t(
        "This server's IP address is not on the Mini Program's API IP whitelist.",
        "本服务器的 IP 地址不在小程序的接口 IP 白名单中。",
    ),
    t(
        "Add the server's outgoing IP address (WeChat's message names it) to the IP whitelist under Development → Development settings (开发管理 → 开发设置 → IP白名单).",
        "请在小程序管理后台“开发管理 → 开发设置 → IP白名单”中加入本服务器的出口 IP（错误信息中给出了该 IP）。",
    ),
);

const STALE_TOKEN: Explanation = x(
    t(
        "The access token was not valid, expired or not the latest.",
        "access_token 无效、已过期或不是最新的。",
    ),
    t(
        "ScanGate drops the token and fetches a new one by itself. If this keeps growing, another system is fetching tokens for the same AppID with /cgi-bin/token or force_refresh: let it use the stable token too.",
        "ScanGate 会自动丢弃并重新获取 access_token。若次数持续增长，说明有其他系统用 /cgi-bin/token 或 force_refresh 为同一 AppID 获取令牌，请让其也使用稳定版令牌。",
    ),
);

const MISSING: Explanation = x(
    t(
        "WeChat did not receive a required parameter (token, AppID or AppSecret).",
        "微信未收到必需的参数（access_token、AppID 或 AppSecret）。",
    ),
    t(
        "Check that the Mini Program's AppID and AppSecret are both saved; if they are, report this as a bug.",
        "请确认此小程序的 AppID 和 AppSecret 都已保存；若已保存，请报告此问题。",
    ),
);

const INVALID_CODE: Explanation = x(
    t(
        "The wx.login code was invalid, already used, expired, or from another Mini Program.",
        "wx.login 的 code 无效、已使用、已过期或来自其他小程序。",
    ),
    t(
        "A few are normal (a user retrying). Many mean the Mini Program calls ScanGate with the wrong AppID, or sends a code twice: check its configuration.",
        "偶尔出现属正常（用户重试）。大量出现说明小程序使用了错误的 AppID 调用 ScanGate，或重复提交 code，请检查小程序配置。",
    ),
);

const QUOTA: Explanation = x(
    t(
        "A WeChat quota is used up (daily, or per minute for Mini Program codes).",
        "微信接口调用额度已用完（每日额度，或小程序码的每分钟额度）。",
    ),
    t(
        "Wait for the quota to reset; look for another system calling the same API for this AppID. Mini Program codes allow 5,000 a minute.",
        "请等待额度重置，并检查是否有其他系统为同一 AppID 调用该接口。小程序码接口每分钟上限 5000 次。",
    ),
);

const RATE: Explanation = x(
    t(
        "A user called too often (about 100 logins a minute per user).",
        "用户调用过于频繁（每个用户每分钟约 100 次）。",
    ),
    t(
        "Usually a Mini Program retrying in a loop: check its retry logic.",
        "通常是小程序在循环重试，请检查其重试逻辑。",
    ),
);

const BUSY: Explanation = x(
    t("WeChat was busy.", "微信系统繁忙。"),
    t(
        "ScanGate retries by itself. Only a steady stream is worth reporting to WeChat.",
        "ScanGate 会自动重试。只有持续出现时才需要向微信反馈。",
    ),
);

const UNPUBLISHED_PAGE: Explanation = x(
    t(
        "The page of the Mini Program code does not exist in the released version (or the Mini Program is not released).",
        "小程序码指向的页面在已发布版本中不存在（或小程序尚未发布）。",
    ),
    t(
        "Publish a version containing the page, or, while testing, set the app's environment to trial or develop so that the page is not checked.",
        "请发布包含该页面的版本；测试期间可将应用的环境设为体验版（trial）或开发版（develop），此时不校验页面。",
    ),
);

const USER_REFUSED: Explanation = x(
    t(
        "WeChat refused this user (risk control, or a frozen or deregistered account).",
        "微信拒绝了该用户（风控拦截，或账号被冻结、已注销）。",
    ),
    t(
        "Nothing to fix on the server: the user should contact WeChat.",
        "服务器端无需处理：请该用户联系微信。",
    ),
);

const BAD_REQUEST: Explanation = x(
    t(
        "WeChat found the request malformed (scene, page, width or JSON).",
        "微信认为请求格式不正确（scene、page、宽度或 JSON）。",
    ),
    t(
        "Check the app's Mini Program code settings (page, width, environment); if they look right, report this as a bug.",
        "请检查应用的小程序码设置（页面、宽度、环境）；如设置无误，请报告此问题。",
    ),
);

const NOT_AUTHORISED: Explanation = x(
    t(
        "The Mini Program is not allowed to use this API.",
        "该小程序没有调用此接口的权限。",
    ),
    t(
        "Check the Mini Program's account type and its interface permissions in the admin console (e.g. phone numbers need a verified account).",
        "请在小程序管理后台检查账号类型和接口权限（例如获取手机号需要已认证的账号）。",
    ),
);

const FROZEN_SECRET: Explanation = x(
    t(
        "The AppSecret has been frozen by the Mini Program's administrator.",
        "AppSecret 已被小程序管理员冻结。",
    ),
    t(
        "Unfreeze it (or reset it) in the Mini Program's admin console, then save it here.",
        "请在小程序管理后台解冻（或重置）AppSecret，并保存到此处。",
    ),
);

const INVALID_APPID: Explanation = x(
    t(
        "The AppID is not a valid Mini Program AppID.",
        "AppID 不是有效的小程序 AppID。",
    ),
    t(
        "Check the AppID in the Mini Program's admin console (Development → Development settings).",
        "请在小程序管理后台（开发管理 → 开发设置）核对 AppID。",
    ),
);

const IP_CONFIRMATION: Explanation = x(
    t(
        "WeChat wants the administrator to confirm calls from this IP address, or refused them for a while.",
        "微信要求管理员确认来自此 IP 的调用，或暂时拒绝了这些调用。",
    ),
    t(
        "Confirm the IP address in the WeChat admin notification, or add it to the IP whitelist.",
        "请在微信管理员通知中确认该 IP，或将其加入 IP 白名单。",
    ),
);

const PHONE_CODE: Explanation = x(
    t(
        "The phone-number code was invalid or expired.",
        "手机号 code 无效或已过期。",
    ),
    t(
        "A few are normal. Many mean the Mini Program sends codes late or twice.",
        "偶尔出现属正常。大量出现说明小程序延迟或重复提交了 code。",
    ),
);

/// What `errcode` means and what to do, for the errcodes ScanGate meets (reference §1, §2,
/// §4 and §10); `None` for others.
pub fn explain(errcode: i64) -> Option<&'static Explanation> {
    Some(match errcode {
        -1 => &BUSY,
        40001 | 40125 => &WRONG_SECRET,
        40013 => &INVALID_APPID,
        40014 | 42001 => &STALE_TOKEN,
        40029 | 40163 => &INVALID_CODE,
        40097 | 40129 | 40169 | 44002 | 47001 | 40002 | 43001 | 43002 => &BAD_REQUEST,
        40164 | 61004 => &IP_WHITELIST,
        40226 | 50002 => &USER_REFUSED,
        40243 => &FROZEN_SECRET,
        41001 | 41002 | 41004 | 41008 => &MISSING,
        41030 => &UNPUBLISHED_PAGE,
        45009 | 45029 => &QUOTA,
        45011 => &RATE,
        45063 | 48001 => &NOT_AUTHORISED,
        89501 | 89503 | 89506 | 89507 => &IP_CONFIRMATION,
        1 | 40003 => &PHONE_CODE,
        _ => return None,
    })
}

/// For errcodes the table does not know.
pub const UNKNOWN: Explanation = x(
    t(
        "An errcode ScanGate has no explanation for.",
        "ScanGate 暂无此错误码的说明。",
    ),
    t(
        "Look it up in WeChat's documentation for the API named beside it.",
        "请在微信官方文档中查阅旁边所列接口的该错误码。",
    ),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_errcodes_an_operator_meets_are_explained_in_both_languages() {
        for code in [
            -1, 40001, 40013, 40014, 40029, 40125, 40163, 40164, 40226, 40243, 41001, 41002, 41004,
            41030, 42001, 45009, 45011, 47001, 48001, 50002, 61004,
        ] {
            let e = explain(code).unwrap_or_else(|| panic!("{code} is explained"));
            for text in [e.meaning, e.action] {
                assert!(!text.en.is_empty() && !text.zh.is_empty(), "{code}");
                assert!(text
                    .zh
                    .chars()
                    .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)));
            }
        }
        assert_eq!(
            explain(40013).map(|e| e.meaning.get("zh-CN")),
            Some(INVALID_APPID.meaning.zh)
        );
        assert_eq!(explain(123456), None);
    }

    #[test]
    fn wrong_secret_and_whitelist_are_told_apart() {
        assert_eq!(explain(40125), explain(40001));
        assert_eq!(explain(61004), explain(40164));
        assert_ne!(explain(40125), explain(40164));
        assert!(explain(41030).is_some_and(|e| e.action.en.contains("trial")));
    }
}
