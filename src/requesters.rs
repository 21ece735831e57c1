//! Who is asking: what the phone shows of the browser that asked for a login, so that the
//! person can tell their own PC from somebody else's (QRLJacking: an attacker opens a login on
//! their own machine and lures a victim into scanning it).
//!
//! The user agent is read by `woothee` (compiled-in rules, no data file to ship, microseconds
//! per string), with a few newer brands it predates (Chromium Edge's `Edg/`, Opera's `OPR/`,
//! Yandex, Vivaldi, WeChat's desktop browser) looked for first. The place comes from an
//! optional MaxMind-format database (`geoip_database`): GeoLite2/GeoIP2 City or Country records
//! give the city, region and country; a record that says `traits.is_hosting_provider`,
//! `traits.is_anonymous_proxy`, `traits.is_anonymous_vpn`, or the top-level
//! `is_hosting_provider` of the GeoIP2 Anonymous IP database, marks a datacenter. Without a
//! database there is no location and no warning.
//!
//! The warning (`mismatch`) compares the requester with the phone's own network address (the
//! Mini Program's request, through `trusted_proxies`): a requester in a datacenter, or in
//! another country than the phone.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Reads places from the configured database, if any.
pub struct Requesters {
    geoip: Option<maxminddb::Reader<Vec<u8>>>,
}

/// A browser's user agent as a person would say it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Agent {
    /// `"Chrome"`, `"Firefox"`, `"Edge"` …; `None` when unknown.
    pub browser: Option<String>,
    /// `"Windows"`, `"macOS"`, `"Linux"`, `"iOS"` …; `None` when unknown.
    pub os: Option<String>,
    /// `"desktop"`, `"phone"`, `"tablet"` or `"unknown"`.
    pub device: &'static str,
    /// `"Chrome on Windows"`: what the confirm screen says.
    pub description: String,
}

/// A coarse place of an address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Place {
    pub city: Option<String>,
    pub region: Option<String>,
    pub country: Option<String>,
    /// ISO 3166-1 alpha-2, e.g. `"CN"`.
    pub country_code: Option<String>,
    /// The address belongs to a hosting provider, VPN or anonymous proxy.
    #[serde(skip)]
    pub datacenter: bool,
}

/// Why the phone warns before the person confirms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Mismatch {
    /// `"country"` or `"datacenter"`.
    #[schema(value_type = String)]
    pub reason: &'static str,
    pub message: String,
    pub requester_country: Option<String>,
    pub scanner_country: Option<String>,
}

/// The parts of a MaxMind record we read; every field optional, so City, Country, Anonymous
/// IP and home-made databases all decode.
#[derive(Deserialize, Default)]
struct Record {
    #[serde(default)]
    city: Option<Named>,
    #[serde(default)]
    subdivisions: Option<Vec<Named>>,
    #[serde(default)]
    country: Option<Country>,
    #[serde(default)]
    traits: Option<Traits>,
    #[serde(default)]
    is_hosting_provider: Option<bool>,
    #[serde(default)]
    is_anonymous: Option<bool>,
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    names: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Country {
    #[serde(default)]
    iso_code: Option<String>,
    #[serde(default)]
    names: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct Traits {
    #[serde(default)]
    is_hosting_provider: Option<bool>,
    #[serde(default)]
    is_anonymous_proxy: Option<bool>,
    #[serde(default)]
    is_anonymous_vpn: Option<bool>,
}

fn english(names: &BTreeMap<String, String>) -> Option<String> {
    names
        .get("en")
        .or_else(|| names.values().next())
        .filter(|n| !n.is_empty())
        .cloned()
}

impl Requesters {
    /// No database: no places.
    pub fn without_places() -> Self {
        Self { geoip: None }
    }

    /// Opens the database at `path` (read whole into memory), or none.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::without_places());
        };
        let reader = maxminddb::Reader::open_readfile(path)
            .with_context(|| format!("geoip_database {} is not a MaxMind DB", path.display()))?;
        Ok(Self {
            geoip: Some(reader),
        })
    }

    /// The place of `ip`, when the database knows it.
    pub fn place(&self, ip: &str) -> Option<Place> {
        let reader = self.geoip.as_ref()?;
        let ip: IpAddr = ip.parse().ok()?;
        let record: Record = lookup(reader, ip)?;
        let traits = record.traits.unwrap_or_default();
        let datacenter = traits.is_hosting_provider == Some(true)
            || traits.is_anonymous_proxy == Some(true)
            || traits.is_anonymous_vpn == Some(true)
            || record.is_hosting_provider == Some(true)
            || record.is_anonymous == Some(true);
        let place = Place {
            city: record.city.as_ref().and_then(|c| english(&c.names)),
            region: record
                .subdivisions
                .as_ref()
                .and_then(|s| s.first())
                .and_then(|s| english(&s.names)),
            country: record.country.as_ref().and_then(|c| english(&c.names)),
            country_code: record.country.and_then(|c| c.iso_code),
            datacenter,
        };
        let empty = place.city.is_none() && place.country_code.is_none() && !place.datacenter;
        (!empty).then_some(place)
    }
}

fn lookup(reader: &maxminddb::Reader<Vec<u8>>, ip: IpAddr) -> Option<Record> {
    match reader.lookup(ip).and_then(|found| found.decode::<Record>()) {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(error = %e, "geoip lookup failed");
            None
        }
    }
}

/// Whether the phone should warn: the requester in a datacenter, or in another country than
/// the phone.
pub fn mismatch(requester: Option<&Place>, scanner: Option<&Place>) -> Option<Mismatch> {
    let requester_country = requester.and_then(|p| p.country_code.clone());
    let scanner_country = scanner.and_then(|p| p.country_code.clone());
    if requester.is_some_and(|p| p.datacenter) {
        return Some(Mismatch {
            reason: "datacenter",
            message: "This sign-in was asked for from a server or VPN, not from a home or office \
                      network. If you did not just open this page on your own computer, decline."
                .into(),
            requester_country,
            scanner_country,
        });
    }
    match (&requester_country, &scanner_country) {
        (Some(r), Some(s)) if r != s => {
            let place = requester
                .and_then(|p| p.country.clone())
                .unwrap_or_else(|| r.clone());
            Some(Mismatch {
                reason: "country",
                message: format!(
                    "This sign-in was asked for from {place}, not from the country your phone \
                     is in. If you are not signing in on a computer there, decline."
                ),
                requester_country,
                scanner_country,
            })
        }
        _ => None,
    }
}

/// Brands woothee does not know, found by their own token (checked in this order: Edge and
/// Opera also carry `Chrome/`).
const BRANDS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("Edge/", "Edge"),
    ("OPR/", "Opera"),
    ("YaBrowser/", "Yandex Browser"),
    ("Vivaldi/", "Vivaldi"),
    ("WindowsWechat", "WeChat"),
    ("MacWechat", "WeChat"),
    ("MicroMessenger/", "WeChat"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("QQBrowser/", "QQ Browser"),
    ("UCBrowser/", "UC Browser"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
];

/// Reads a user agent.
pub fn agent(user_agent: &str) -> Agent {
    let parsed = woothee::parser::Parser::new().parse(user_agent);
    let known = |s: &str| (!s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN).then_some(());
    let brand = BRANDS
        .iter()
        .find(|(token, _)| user_agent.contains(token))
        .map(|(_, name)| (*name).to_owned());
    let browser = brand.or_else(|| {
        parsed.as_ref().and_then(|p| {
            known(p.name).map(|_| match p.name {
                "Internet Explorer" => "Internet Explorer".to_owned(),
                other => other.to_owned(),
            })
        })
    });
    let os = os_name(
        user_agent,
        parsed.as_ref().map(|p| p.os).unwrap_or_default(),
    );
    let device = match parsed.as_ref().map(|p| p.category) {
        _ if os.as_deref() == Some("iPadOS") => "tablet",
        _ if os.as_deref() == Some("Android") && !user_agent.contains("Mobile") => "tablet",
        Some("pc") => "desktop",
        Some("smartphone") | Some("mobilephone") => "phone",
        _ => "unknown",
    };
    let description = match (&browser, &os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.clone(),
        (None, Some(o)) => format!("A browser on {o}"),
        (None, None) => "An unknown browser".to_owned(),
    };
    Agent {
        browser,
        os,
        device,
        description,
    }
}

/// Whether a user agent is a phone's: a browser that cannot scan its own screen, where the
/// pages offer "Open in WeChat" instead.
pub fn is_phone(user_agent: &str) -> bool {
    agent(user_agent).device == "phone"
}

/// The operating system's everyday name (no version: "Windows", not "Windows 10").
fn os_name(user_agent: &str, woothee_os: &str) -> Option<String> {
    let name = match woothee_os {
        os if os.starts_with("Windows") => "Windows",
        "Mac OSX" | "Mac OS Classic" => "macOS",
        "iPhone" | "iPod" => "iOS",
        "iPad" => "iPadOS",
        "Android" => "Android",
        "ChromeOS" => "ChromeOS",
        "Linux" if user_agent.contains("CrOS") => "ChromeOS",
        "Linux" => "Linux",
        "BSD" | "FreeBSD" | "OpenBSD" | "NetBSD" => "BSD",
        _ if user_agent.contains("CrOS") => "ChromeOS",
        _ if user_agent.contains("Windows NT") => "Windows",
        _ if user_agent.contains("Macintosh") => "macOS",
        _ if user_agent.contains("X11; Linux") || user_agent.contains("X11; Ubuntu") => "Linux",
        _ => return None,
    };
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_odd_user_agent_reads_as_unknown() {
        let a = agent("");
        assert_eq!(a.browser, None);
        assert_eq!(a.device, "unknown");
        assert_eq!(a.description, "An unknown browser");
        assert_eq!(agent("curl/8.5.0").device, "unknown");
    }

    #[test]
    fn phones_are_told_from_tablets_and_desktops() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
        let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like \
                       Gecko) Chrome/124.0.0.0 Mobile Safari/537.36";
        let ipad = "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, \
                    like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
        let desktop = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like \
                       Gecko) Chrome/124.0.0.0 Safari/537.36";
        assert!(is_phone(iphone));
        assert!(is_phone(android));
        assert!(!is_phone(ipad));
        assert!(!is_phone(desktop));
        assert!(!is_phone(""));
    }

    #[test]
    fn a_datacenter_requester_warns_before_a_country_difference() {
        let dc = Place {
            country_code: Some("US".into()),
            datacenter: true,
            ..Place::default()
        };
        let cn = Place {
            country_code: Some("CN".into()),
            ..Place::default()
        };
        assert_eq!(mismatch(Some(&dc), Some(&cn)).unwrap().reason, "datacenter");
        let us = Place {
            datacenter: false,
            ..dc.clone()
        };
        assert_eq!(mismatch(Some(&us), Some(&cn)).unwrap().reason, "country");
        assert_eq!(mismatch(Some(&cn), Some(&cn)), None);
        assert_eq!(mismatch(None, Some(&cn)), None);
        assert_eq!(mismatch(Some(&us), None), None);
    }
}
