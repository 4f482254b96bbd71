//! The loader host allow-list (no SSRF into the VPC): a target host must be named in the list or resolve
//! only to addresses inside its CIDRs. Configured with `LOADER_ALLOWED_HOSTS`, a comma-separated list of
//! CIDRs (`10.0.0.0/8`), host names (`db.example.com`) and suffixes (`*.mongodb.net`), plus two
//! shorthands: `loopback` (127.0.0.0/8, ::1) and `private` (10/8, 172.16/12, 192.168/16, fc00::/7).
//! The template's default is `loopback,private` (what the local stack needs); a production deployment
//! lists its own database hosts. Link-local addresses (169.254.0.0/16, fe80::/10: the instance
//! metadata service) are refused unless a CIDR names them explicitly.

use ipnet::IpNet;
use std::net::IpAddr;

pub const DEFAULT: &str = "loopback,private";

#[derive(Debug, Clone, Default)]
pub struct AllowList {
    nets: Vec<IpNet>,
    names: Vec<String>,
    suffixes: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("host {0} is not in the loader allow-list (LOADER_ALLOWED_HOSTS)")]
    NotAllowed(String),
    #[error("host {0} could not be resolved")]
    Unresolved(String),
}

impl AllowList {
    pub fn parse(spec: &str) -> Result<AllowList, String> {
        let mut a = AllowList::default();
        for raw in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match raw {
                "loopback" => a.nets.extend(
                    ["127.0.0.0/8", "::1/128"]
                        .iter()
                        .map(|n| n.parse::<IpNet>().unwrap()),
                ),
                "private" => a.nets.extend(
                    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
                        .iter()
                        .map(|n| n.parse::<IpNet>().unwrap()),
                ),
                _ if raw.contains('/') => a
                    .nets
                    .push(raw.parse().map_err(|_| format!("{raw} is not a CIDR"))?),
                _ if raw.parse::<IpAddr>().is_ok() => {
                    a.nets.push(IpNet::from(raw.parse::<IpAddr>().unwrap()))
                }
                _ if raw.starts_with("*.") => a.suffixes.push(raw[1..].to_ascii_lowercase()),
                _ if raw
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') =>
                {
                    a.names.push(raw.to_ascii_lowercase())
                }
                _ => return Err(format!("{raw} is not a CIDR, address or host name")),
            }
        }
        Ok(a)
    }

    fn name_allowed(&self, host: &str) -> bool {
        let h = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.contains(&h) || self.suffixes.iter().any(|s| h.ends_with(s.as_str()))
    }

    /// Whether every address `host` resolves to may be used.
    pub fn ips_allowed(&self, ips: &[IpAddr]) -> bool {
        !ips.is_empty()
            && ips.iter().all(|ip| {
                let link_local = match ip {
                    IpAddr::V4(v) => v.is_link_local(),
                    IpAddr::V6(v) => (v.segments()[0] & 0xffc0) == 0xfe80,
                };
                self.nets
                    .iter()
                    .any(|n| n.contains(ip) && (!link_local || is_explicit(n)))
            })
    }

    /// Checks `host` (a name or an address), resolving names through the system resolver.
    pub async fn check(&self, host: &str) -> Result<(), Refused> {
        if self.name_allowed(host) {
            return Ok(());
        }
        let ips: Vec<IpAddr> = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, 0))
                .await
                .map_err(|_| Refused::Unresolved(host.to_string()))?
                .map(|a| a.ip())
                .collect(),
        };
        if self.ips_allowed(&ips) {
            Ok(())
        } else {
            Err(Refused::NotAllowed(host.to_string()))
        }
    }
}

/// A CIDR inside the link-local ranges names them on purpose.
fn is_explicit(n: &IpNet) -> bool {
    match n {
        IpNet::V4(v) => v.network().is_link_local(),
        IpNet::V6(v) => (v.network().segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_default_allows_loopback_and_private_addresses_only() {
        let a = AllowList::parse(DEFAULT).unwrap();
        assert!(a.check("127.0.0.1").await.is_ok());
        assert!(a.check("localhost").await.is_ok());
        assert!(a.check("10.1.2.3").await.is_ok());
        assert!(a.check("192.168.0.9").await.is_ok());
        assert_eq!(
            a.check("8.8.8.8").await,
            Err(Refused::NotAllowed("8.8.8.8".into()))
        );
        assert!(a.check("169.254.169.254").await.is_err());
    }

    #[tokio::test]
    async fn names_suffixes_and_cidrs_can_be_listed() {
        let a = AllowList::parse("db.example.com, *.mongodb.net, 203.0.113.0/24").unwrap();
        assert!(a.check("DB.example.com").await.is_ok());
        assert!(a.check("cluster0.abcd.mongodb.net").await.is_ok());
        assert!(a.check("203.0.113.7").await.is_ok());
        assert!(a.check("127.0.0.1").await.is_err());
        assert!(AllowList::parse("not a host!").is_err());
    }

    #[test]
    fn link_local_needs_an_explicit_cidr() {
        let wide = AllowList::parse("0.0.0.0/0").unwrap();
        assert!(!wide.ips_allowed(&["169.254.169.254".parse().unwrap()]));
        let named = AllowList::parse("169.254.0.0/16").unwrap();
        assert!(named.ips_allowed(&["169.254.169.254".parse().unwrap()]));
    }
}
