//! Values parsed once at the edge. Handlers see only valid ones.

use serde::{Deserialize, Serialize};

/// The string form every newtype here shares: parsed from text through `parse` (serde goes
/// through it too), read as `&str`, compared with plain strings, printed as itself.
macro_rules! text_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// A value read back from storage, where only parsed values are written; a row that
            /// no longer parses is a decoding error, not a panic.
            pub fn stored(s: String) -> Result<Self, sqlx::Error> {
                Self::parse(&s).map_err(|e| sqlx::Error::Decode(e.into()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::parse(s)
            }
        }

        /// Unit tests write short literals (`"a"`, `"web"`) for values they only compare.
        #[cfg(test)]
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }
    };
}

/// A Mini Program AppID: `wx` followed by 16 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppId(String);

impl AppId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok =
            s.len() == 18 && s.starts_with("wx") && s[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err("must be a Mini Program AppID: `wx` and 16 hex digits".into())
        }
    }
}

text_newtype!(AppId);

/// An app's client id: 1–64 of `[A-Za-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err("must be 1 to 64 characters of A-Z a-z 0-9 . _ -".into())
        }
    }
}

text_newtype!(ClientId);

/// A user pool's slug, part of its issuer URL (`/pools/{slug}/oidc`): 1–64 of `[a-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PoolSlug(String);

impl PoolSlug {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err("must be 1 to 64 characters of a-z 0-9 _ -".into())
        }
    }

    /// The pool every installation has.
    pub fn default_pool() -> Self {
        Self("default".into())
    }
}

text_newtype!(PoolSlug);

/// The public name of a QR code: base64url, 22 to 32 characters (≥128 bits when generated).
/// Anything else names no code, so a malformed one reads as "no such QR code".
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Random(String);

impl Random {
    /// 144 random bits: 24 base64url characters, within a Mini Program `scene`'s 32.
    pub fn generate() -> Self {
        Self(crate::crypto::random_token(18))
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (22..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err("no such QR code".into())
        }
    }
}

text_newtype!(Random);

/// A device authorization's user code (RFC 8628 §6.1): eight characters of twenty consonants,
/// so no word can be spelled and no two characters look alike, shown `XXXX-XXXX`. Typed in
/// any case, with or without the dash or spaces; kept as the eight bare characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserCode(String);

impl UserCode {
    /// The characters a user code is made of (RFC 8628 §6.1's example alphabet).
    pub const ALPHABET: &'static [u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
    pub const LEN: usize = 8;

    /// A fresh code from the CSPRNG: 20^8, about 34.5 bits.
    pub fn generate() -> Self {
        use rand::Rng as _;
        let mut rng = rand::rngs::OsRng;
        Self(
            (0..Self::LEN)
                .map(|_| Self::ALPHABET[rng.gen_range(0..Self::ALPHABET.len())] as char)
                .collect(),
        )
    }

    /// A code as a person typed it: case, dashes and spaces do not matter.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bare: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | ' ' | '\t'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let ok = bare.len() == Self::LEN && bare.bytes().all(|b| Self::ALPHABET.contains(&b));
        if ok {
            Ok(Self(bare))
        } else {
            Err("a code is eight letters, shown as XXXX-XXXX".into())
        }
    }

    /// `XXXX-XXXX`, as the device shows it.
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..4], &self.0[4..])
    }
}

text_newtype!(UserCode);

/// A redirect URI as registered: absolute http(s), no fragment, no user info. Compared to
/// requests by exact string, so it is kept exactly as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn parse(s: &str) -> Result<Self, String> {
        parse_redirect_uri(s)
    }
}

text_newtype!(RedirectUri);

/// A redirect URI as registered: absolute http(s), no fragment, no user info. Compared to
/// requests by exact string, so it is kept exactly as written.
pub fn parse_redirect_uri(s: &str) -> Result<RedirectUri, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be http or https".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry user info".into());
    }
    Ok(RedirectUri(s.to_owned()))
}

/// A web origin: `scheme://host[:port]`, nothing after.
pub fn parse_origin(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not an origin: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be http or https".into());
    }
    let origin = url.origin().ascii_serialization();
    // Browsers send `Origin` without a trailing slash, so an entry with one never matches.
    if s.ends_with('/') && origin == s.trim_end_matches('/') {
        return Err(format!(
            "an origin has no trailing slash (browsers send `{origin}`, which `{s}` never matches)"
        ));
    }
    if origin != s {
        return Err(format!("must be an origin only, like {origin}"));
    }
    Ok(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appids_are_wx_and_sixteen_hex_digits() {
        assert!(AppId::parse("wx0123456789abcdef").is_ok());
        assert!(AppId::parse("wx0123456789abcdeg").is_err());
        assert!(AppId::parse("wx0123").is_err());
        assert!(AppId::parse("ab0123456789abcdef").is_err());
    }

    #[test]
    fn generated_randoms_fit_a_scene_and_parse() {
        let r = Random::generate();
        assert!(r.as_str().len() <= 32);
        assert!(Random::parse(r.as_str()).is_ok());
        assert!(Random::parse("short").is_err());
        assert!(Random::parse("has/slash/and/more/characters__").is_err());
    }

    #[test]
    fn user_codes_are_typed_loosely_and_shown_with_a_dash() {
        let c = UserCode::generate();
        assert_eq!(UserCode::parse(&c.display()).as_ref(), Ok(&c));
        assert_eq!(
            UserCode::parse("bcdf-ghjk").map(|c| c.display()),
            Ok("BCDF-GHJK".to_owned())
        );
        assert_eq!(
            UserCode::parse(" BCDF GHJK ").map(String::from),
            Ok("BCDFGHJK".to_owned())
        );
        assert!(UserCode::parse("BCDF-GHJ").is_err(), "too short");
        assert!(UserCode::parse("BCDF-GHJA").is_err(), "a vowel");
        assert!(UserCode::parse("BCDF-GHJ1").is_err(), "a digit");
    }

    #[test]
    fn redirect_uris_refuse_fragments_and_userinfo() {
        assert!(parse_redirect_uri("http://127.0.0.1:3000/callback").is_ok());
        assert!(parse_redirect_uri("http://a/cb#x").is_err());
        assert!(parse_redirect_uri("http://u:p@a/cb").is_err());
        assert!(parse_redirect_uri("javascript:alert(1)").is_err());
        assert!(parse_redirect_uri("/relative").is_err());
    }

    #[test]
    fn origins_have_no_path() {
        assert_eq!(
            parse_origin("http://127.0.0.1:3000").unwrap(),
            "http://127.0.0.1:3000"
        );
        assert!(parse_origin("http://127.0.0.1:3000/x").is_err());
    }

    #[test]
    fn an_origin_with_a_trailing_slash_is_refused_with_the_reason() {
        let err = parse_origin("http://127.0.0.1:3000/").unwrap_err();
        assert!(err.contains("no trailing slash"), "{err}");
        assert!(err.contains("`http://127.0.0.1:3000`"), "{err}");
    }

    #[test]
    fn client_ids_are_restricted() {
        assert!(ClientId::parse("demo").is_ok());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("a b").is_err());
    }
}
