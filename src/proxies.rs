//! Which peers may speak for the client: the `trusted_proxies` networks.
//!
//! A load balancer on the same host reaches ScanGate from a loopback address, and its
//! `X-Forwarded-For` is believed by default. One on another host (a container network, a
//! Kubernetes ingress) is believed only when its network is listed here; an empty list keeps
//! the default. The rule itself — the nearest hop that is not a proxy is the client — lives in
//! `extract::client_ip`.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One network in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let base: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR network"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0..={max}"))?,
        };
        Ok(Network { base, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address on a dual-stack listener.
        match (self.base, ip.to_canonical()) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// The configured networks; cheap to clone, since every request that needs the client's
/// address takes a copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[Network]>);

impl TrustedProxies {
    pub fn new(networks: Vec<Network>) -> Self {
        Self(networks.into())
    }

    /// Whether `ip` is a proxy whose `X-Forwarded-For` is believed: loopback, or listed. An
    /// IPv4 peer of a dual-stack listener (`::ffff:127.0.0.1`) is judged as the IPv4 address.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        ip.to_canonical().is_loopback() || self.0.iter().any(|n| n.contains(ip))
    }

    pub fn networks(&self) -> &[Network] {
        &self.0
    }
}

/// A list of networks, or (from the environment) one string of them separated by commas.
impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<String>),
            Text(String),
        }
        let items = match Form::deserialize(d)? {
            Form::List(items) => items,
            Form::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        items
            .iter()
            .map(|s| Network::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies::new)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for TrustedProxies {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_network_contains_its_addresses_only() {
        let n = Network::parse("172.16.0.0/12").unwrap();
        assert!(n.contains(ip("172.18.0.5")));
        assert!(!n.contains(ip("172.32.0.1")));
        assert!(n.contains(ip("::ffff:172.20.1.1")));
        let n = Network::parse("fd00::/8").unwrap();
        assert!(n.contains(ip("fd12::1")));
        assert!(!n.contains(ip("fe80::1")));
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Network::parse("10.1.2.3").unwrap().contains(ip("10.1.2.3")));
        assert!(!Network::parse("10.1.2.3").unwrap().contains(ip("10.1.2.4")));
    }

    #[test]
    fn a_malformed_network_is_refused_with_its_text() {
        assert!(Network::parse("10.0.0.0/33")
            .unwrap_err()
            .contains("10.0.0.0/33"));
        assert!(Network::parse("proxy.local")
            .unwrap_err()
            .contains("proxy.local"));
    }

    #[test]
    fn a_list_or_a_comma_separated_string_is_read() {
        let from_list: TrustedProxies =
            serde_json::from_str(r#"["10.0.0.0/8", "192.0.2.1"]"#).unwrap();
        let from_text: TrustedProxies = serde_json::from_str(r#""10.0.0.0/8, 192.0.2.1""#).unwrap();
        assert_eq!(from_list, from_text);
        assert_eq!(
            serde_json::to_string(&from_list).unwrap(),
            r#"["10.0.0.0/8","192.0.2.1/32"]"#
        );
    }
}
