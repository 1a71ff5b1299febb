//! The SSRF guard: webhooks may not reach loopback, private, link-local, unique-local,
//! multicast or cloud-metadata addresses unless `delivery.allowed_networks` allows them.
//! The check runs on every resolved address, and only checked addresses are connected to.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    allowed: Vec<IpNet>,
}

/// A refused address. Deliveries that hit it fail at once: retrying cannot help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("refused to connect to {address} ({kind} address): add a network containing it to delivery.allowed_networks to allow it")]
pub struct Blocked {
    pub address: IpAddr,
    pub kind: &'static str,
}

impl NetworkPolicy {
    /// Parses the configured CIDRs; the error names the bad entry.
    pub fn new(allowed: &[String]) -> Result<Self, String> {
        let allowed = allowed
            .iter()
            .map(|text| {
                text.trim()
                    .parse::<IpNet>()
                    .or_else(|_| text.trim().parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "delivery.allowed_networks: \"{text}\" is not a CIDR like 10.0.0.0/8"
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    pub fn check(&self, address: IpAddr) -> Result<(), Blocked> {
        match restricted_kind(address) {
            Some(kind) if !self.allowed.iter().any(|net| net.contains(&address)) => {
                Err(Blocked { address, kind })
            }
            _ => Ok(()),
        }
    }
}

/// Why an address is not public, or `None` when it is.
fn restricted_kind(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_kind(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xfe00 == 0xfc00 {
                Some("unique-local")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("cloud metadata")
            } else {
                None
            }
        }
    }
}

fn v4_kind(v4: Ipv4Addr) -> Option<&'static str> {
    let o = v4.octets();
    if v4.is_loopback() {
        Some("loopback")
    } else if v4 == Ipv4Addr::new(169, 254, 169, 254) || v4 == Ipv4Addr::new(100, 100, 100, 200) {
        Some("cloud metadata")
    } else if v4.is_link_local() {
        Some("link-local")
    } else if v4.is_private() {
        Some("private")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared (carrier-grade NAT)")
    } else if v4.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if v4.is_multicast() {
        Some("multicast")
    } else if v4.is_broadcast() || o[0] >= 240 {
        Some("reserved")
    } else {
        None
    }
}

/// A resolver that hands reqwest only addresses the policy allows.
pub struct GuardedResolver {
    pub policy: Arc<NetworkPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> {
                    format!("cannot resolve {host}: {e}").into()
                })?
                .collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(blocked) => {
                        refused.get_or_insert(blocked);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(match refused {
                    Some(blocked) => Box::new(blocked) as Box<dyn std::error::Error + Send + Sync>,
                    None => format!("{host} has no addresses").into(),
                });
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn restricted_addresses_are_refused_by_default() {
        let policy = NetworkPolicy::default();
        for (address, kind) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd12::1", "unique-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
        ] {
            let err = policy.check(ip(address)).unwrap_err();
            assert_eq!(err.kind, kind, "{address}");
            assert!(err.to_string().contains("delivery.allowed_networks"));
        }
        assert!(policy.check(ip("93.184.216.34")).is_ok());
        assert!(policy.check(ip("2606:4700::1111")).is_ok());
    }

    #[test]
    fn allowed_networks_open_exactly_their_range() {
        let policy = NetworkPolicy::new(&["127.0.0.0/8".into(), "10.0.0.5".into()]).unwrap();
        assert!(policy.check(ip("127.0.0.1")).is_ok());
        assert!(policy.check(ip("10.0.0.5")).is_ok());
        assert!(policy.check(ip("10.0.0.6")).is_err());
        assert!(policy.check(ip("::1")).is_err());
        let err = NetworkPolicy::new(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
    }
}
