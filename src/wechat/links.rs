//! "Open in WeChat": a link that opens the Mini Program's confirm page at one QR code, for a
//! browser on the phone WeChat runs on, which cannot scan its own screen.
//!
//! WeChat makes the link — a URL Link, or a URL Scheme (`[wechat.open_link] kind`; a URL Link
//! refused with an errcode that says the account may not have one falls back to the scheme) —
//! and it expires with the code, never later: its `expire_time` is the code's expiry rounded
//! down to the second. WeChat wants more than a minute of life, so a code with less left gets
//! no link.
//!
//! Each code's link is asked of WeChat once for every instance: the outcome, the link or
//! WeChat's refusal, is kept in the shared ticket store for the code's life, and a store lock
//! keeps other instances waiting for it instead of calling WeChat as well. A refusal that will
//! hold for a while (a spent quota, an unpublished Mini Program, no permission) also pauses
//! links for the whole Mini Program, so that every new code does not spend a call to hear it
//! again. Busy replies and transport failures are not kept: the next ask tries again.
//!
//! The link opens the Mini Program on whichever phone opens it, so it is handed only to the
//! browser its code is bound to (the caller's check, as for the exchange ticket); the login's
//! result still goes only to that browser.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{LinkRequest, MiniPrograms, WechatClient, WechatError};
use crate::clock::Millis;
use crate::config::{LinkKind, OpenLinkConfig};
use crate::error::AppError;
use crate::metrics::{LinkOutcome, Metrics};
use crate::tickets::{StoreError, TicketStore};

/// WeChat refuses a link that expires within a minute (85401); five seconds more allow for the
/// two clocks and the call itself.
pub const MIN_LINK_LIFE: Duration = Duration::from_secs(65);
/// URL Link errcodes after which the URL Scheme is tried: the API is not open to the account
/// (48001 "api unauthorized", 40066 "invalid url").
const TRY_SCHEME: [i64; 2] = [48001, 40066];
/// How long links pause for a Mini Program once WeChat says a quota is spent: daily (45009,
/// 500,000 links and schemes a day together), per minute (45011) or per second (44990).
const QUOTA_PAUSE: Duration = Duration::from_secs(60);
/// How long links pause for a Mini Program that may not have them: not published (85079), no
/// permission (40002: personal accounts), permission banned (40013), API not authorised
/// (48001), credentials refused (40125, 40164, 40243).
const REFUSAL_PAUSE: Duration = Duration::from_secs(600);
/// How often an instance waiting for another instance's link looks at the store.
const POLL: Duration = Duration::from_millis(50);

/// A link that opens the Mini Program at one code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenLink {
    /// Which of WeChat's links it is.
    pub kind: LinkKind,
    /// `https://wxaurl.cn/…` or `weixin://dl/business/?t=…`, as WeChat made it.
    pub url: String,
}

/// What is kept per code.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Link(OpenLink),
    /// WeChat's errcode.
    Refused(i64),
}

/// Why a code has no link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("Open in WeChat is turned off on this server")]
    Disabled,
    #[error(
        "too little time is left on this QR code for a link (WeChat wants more than a minute)"
    )]
    TooLate,
    /// WeChat refused this code's link; kept for the code's life.
    #[error("WeChat did not make a link for this QR code (errcode {0})")]
    Refused(i64),
    /// WeChat refused a recent link of the same Mini Program in a way that holds for a while.
    #[error("WeChat is not making links for this Mini Program at the moment (errcode {0})")]
    Paused(i64),
    /// WeChat was busy, unreachable or answered oddly; asking again may work.
    #[error("WeChat could not be asked for a link")]
    Wechat(#[source] WechatError),
    /// The Mini Program's credentials or the ticket store failed.
    #[error(transparent)]
    Lookup(AppError),
}

impl From<StoreError> for LinkError {
    fn from(e: StoreError) -> Self {
        LinkError::Lookup(e.into())
    }
}

impl From<LinkError> for AppError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Disabled => AppError::NotFound(e.to_string()),
            LinkError::TooLate => AppError::Expired(e.to_string()),
            LinkError::Refused(_) | LinkError::Paused(_) => AppError::Wechat(e.to_string()),
            LinkError::Wechat(w) => w.into(),
            LinkError::Lookup(a) => a,
        }
    }
}

/// How long a refusal pauses links for the whole Mini Program, if it does.
fn pause_for(errcode: i64) -> Option<Duration> {
    match errcode {
        44990 | 45009 | 45011 => Some(QUOTA_PAUSE),
        85079 | 40002 | 40013 | 48001 | 40125 | 40164 | 40243 => Some(REFUSAL_PAUSE),
        _ => None,
    }
}

fn link_key(random: &str) -> String {
    format!("open_link:{random}")
}

fn lock_key(random: &str) -> String {
    format!("open_link_lock:{random}")
}

fn pause_key(appid: &str) -> String {
    format!("open_link_pause:{appid}")
}

/// Makes and keeps the links of codes.
pub struct OpenLinks {
    config: OpenLinkConfig,
    client: Arc<WechatClient>,
    /// Where each code's outcome, the lock and the pauses are kept, for every instance.
    store: Arc<dyn TicketStore>,
    miniprograms: MiniPrograms,
    /// The longest one code's link may take to make (token, link, retries, fallback): how long
    /// the lock is held at most, and how long other instances wait for it.
    budget: Duration,
    metrics: Option<Arc<Metrics>>,
}

impl OpenLinks {
    /// `timeout` is that of one WeChat call.
    pub fn new(
        config: OpenLinkConfig,
        client: Arc<WechatClient>,
        store: Arc<dyn TicketStore>,
        miniprograms: MiniPrograms,
        timeout: Duration,
    ) -> Self {
        Self {
            config,
            client,
            store,
            miniprograms,
            // A token fetch and two link calls, each with its busy retries, and a stale-token
            // retry.
            budget: timeout * 12,
            metrics: None,
        }
    }

    /// Counts the links made, reused and refused in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Whether links are offered at all.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    fn count(&self, outcome: LinkOutcome) {
        if let Some(m) = &self.metrics {
            m.open_link(outcome);
        }
    }

    /// The link that opens the Mini Program `appid` at the code `random`, which expires at
    /// `expires_at`: the one already made for it, or one WeChat makes now (once for every
    /// instance).
    pub async fn for_code(
        &self,
        appid: &str,
        random: &str,
        expires_at: Millis,
        now: Millis,
    ) -> Result<OpenLink, LinkError> {
        if !self.config.enabled {
            return Err(LinkError::Disabled);
        }
        let key = link_key(random);
        if let Some(kept) = self.kept(&key).await? {
            return kept;
        }
        if expires_at - now < MIN_LINK_LIFE.as_millis() as i64 {
            return Err(LinkError::TooLate);
        }
        if let Some(errcode) = self.paused(appid, now).await? {
            self.count(LinkOutcome::Refused);
            return Err(LinkError::Paused(errcode));
        }
        let lock_key = lock_key(random);
        let deadline = Instant::now() + self.budget;
        loop {
            if let Some(kept) = self.kept(&key).await? {
                return kept;
            }
            if let Some(lock) = self.store.lock(&lock_key, self.budget).await? {
                let made = self.make(appid, random, expires_at, now, &key).await;
                if let Err(e) = self.store.unlock(&lock_key, &lock).await {
                    tracing::warn!(error = %e, "releasing an open link lock failed");
                }
                return made;
            }
            // Another instance is asking WeChat: wait for what it keeps rather than ask too.
            // If it gives up, its lock is released (or expires) and this loop takes over.
            if Instant::now() >= deadline {
                return Err(LinkError::Wechat(WechatError::Transport(
                    "timed out waiting for another instance to make the link".into(),
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The errcode that paused links of `appid`, while the pause lasts.
    async fn paused(&self, appid: &str, now: Millis) -> Result<Option<i64>, LinkError> {
        let Some(value) = self.store.cache_get(&pause_key(appid)).await? else {
            return Ok(None);
        };
        let mut parts = value.split(' ').map(str::parse::<i64>);
        Ok(match (parts.next(), parts.next()) {
            (Some(Ok(errcode)), Some(Ok(until))) if now < until => Some(errcode),
            _ => None,
        })
    }

    /// What is kept for the code, as the answer to give.
    async fn kept(&self, key: &str) -> Result<Option<Result<OpenLink, LinkError>>, LinkError> {
        let Some(value) = self.store.cache_get(key).await? else {
            return Ok(None);
        };
        let Ok(outcome) = serde_json::from_str::<Outcome>(&value) else {
            // Kept by another version of ScanGate: ask WeChat again.
            return Ok(None);
        };
        Ok(Some(match outcome {
            Outcome::Link(link) => {
                self.count(LinkOutcome::Reused);
                Ok(link)
            }
            Outcome::Refused(errcode) => {
                self.count(LinkOutcome::Refused);
                Err(LinkError::Refused(errcode))
            }
        }))
    }

    /// Asks WeChat for the code's link, under its lock, and keeps the outcome.
    async fn make(
        &self,
        appid: &str,
        random: &str,
        expires_at: Millis,
        now: Millis,
        key: &str,
    ) -> Result<OpenLink, LinkError> {
        // Another instance may have kept one between our look and our lock.
        if let Some(kept) = self.kept(key).await? {
            return kept;
        }
        let (_, creds) = self
            .miniprograms
            .credentials(appid)
            .await
            .map_err(LinkError::Lookup)?;
        let request = LinkRequest {
            path: self.config.page.clone(),
            query: format!("random={random}"),
            env_version: self.config.env_version.clone(),
            expire_time: expires_at.div_euclid(1000),
        };
        let made = match self.config.kind {
            LinkKind::UrlLink => match self.client.url_link(&creds, &request).await {
                Err(WechatError::Api { errcode, .. }) if TRY_SCHEME.contains(&errcode) => {
                    tracing::info!(appid, errcode, "URL Link refused; trying the URL Scheme");
                    self.client
                        .url_scheme(&creds, &request)
                        .await
                        .map(|url| (LinkKind::UrlScheme, url))
                }
                other => other.map(|url| (LinkKind::UrlLink, url)),
            },
            LinkKind::UrlScheme => self
                .client
                .url_scheme(&creds, &request)
                .await
                .map(|url| (LinkKind::UrlScheme, url)),
        };
        let life = Duration::from_millis((expires_at - now).max(1) as u64);
        match made {
            Ok((kind, url)) => {
                let link = OpenLink { kind, url };
                self.keep(key, &Outcome::Link(link.clone()), life).await?;
                self.count(LinkOutcome::Issued);
                Ok(link)
            }
            Err(WechatError::Api { errcode, .. }) if errcode != -1 => {
                tracing::warn!(
                    appid,
                    errcode,
                    "WeChat refused an Open in WeChat link; the page shows the QR code alone"
                );
                self.keep(key, &Outcome::Refused(errcode), life).await?;
                if let Some(pause) = pause_for(errcode) {
                    // The end is kept in the value as well, so that it is read by the injected
                    // clock rather than by the store's own expiry.
                    let until = now + pause.as_millis() as Millis;
                    self.store
                        .cache_set(&pause_key(appid), &format!("{errcode} {until}"), pause)
                        .await?;
                }
                self.count(LinkOutcome::Refused);
                Err(LinkError::Refused(errcode))
            }
            Err(e) => {
                tracing::warn!(appid, error = %e, "no Open in WeChat link; the page shows the QR code alone");
                self.count(LinkOutcome::Failed);
                Err(LinkError::Wechat(e))
            }
        }
    }

    async fn keep(&self, key: &str, outcome: &Outcome, life: Duration) -> Result<(), LinkError> {
        let value = serde_json::to_string(outcome)
            .map_err(|e| LinkError::Lookup(AppError::Internal(e.into())))?;
        Ok(self.store.cache_set(key, &value, life).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_outcome_reads_back() {
        let link = Outcome::Link(OpenLink {
            kind: LinkKind::UrlLink,
            url: "https://wxaurl.cn/abc".into(),
        });
        let text = serde_json::to_string(&link).unwrap();
        assert_eq!(
            text,
            r#"{"link":{"kind":"url_link","url":"https://wxaurl.cn/abc"}}"#
        );
        assert!(matches!(
            serde_json::from_str::<Outcome>(r#"{"refused":45009}"#).unwrap(),
            Outcome::Refused(45009)
        ));
    }

    #[test]
    fn lasting_refusals_pause_the_mini_program_and_others_do_not() {
        assert_eq!(pause_for(45009), Some(QUOTA_PAUSE));
        assert_eq!(pause_for(85079), Some(REFUSAL_PAUSE));
        assert_eq!(pause_for(40212), None);
        assert_eq!(pause_for(85401), None);
    }
}
