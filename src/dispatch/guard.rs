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
    /// The policy with `delivery.allowed_networks` (parsed with the settings).
    pub fn new(allowed: &[IpNet]) -> Self {
        Self {
            allowed: allowed.to_vec(),
        }
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
            // IPv4 carried inside IPv6 reaches that IPv4 address: judge it by that one.
            if let Some(v4) = embedded_v4(v6) {
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
            } else if first & 0xffc0 == 0xfec0 {
                Some("site-local")
            } else if first == 0x2001 && v6.segments()[1] == 0x0db8 {
                Some("documentation")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("cloud metadata")
            } else {
                None
            }
        }
    }
}

/// The IPv4 address inside an IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) or
/// 6to4 (`2002::/16`) address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    // IPv4-compatible (`::` and `::1` are judged as IPv6), or NAT64.
    let compatible = s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1);
    if compatible || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(low(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(low(s[1], s[2]))
    } else {
        None
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
    } else if (o[0], o[1], o[2]) == (192, 0, 2)
        || (o[0], o[1], o[2]) == (198, 51, 100)
        || (o[0], o[1], o[2]) == (203, 0, 113)
    {
        Some("documentation")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Some("benchmarking")
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
            // IPv4 inside IPv6: judged by the IPv4 address it reaches.
            ("::127.0.0.1", "loopback"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::10.0.0.1", "private"),
            ("64:ff9b::169.254.169.254", "cloud metadata"),
            ("2002:7f00:1::", "loopback"),
            ("2002:a9fe:a9fe::1", "cloud metadata"),
            ("fec0::1", "site-local"),
            ("2001:db8::1", "documentation"),
            ("192.0.2.10", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.200", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("100.127.255.254", "shared (carrier-grade NAT)"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "reserved"),
        ] {
            let err = policy.check(ip(address)).unwrap_err();
            assert_eq!(err.kind, kind, "{address}");
            assert!(err.to_string().contains("delivery.allowed_networks"));
        }
        assert!(policy.check(ip("93.184.216.34")).is_ok());
        assert!(policy.check(ip("2606:4700::1111")).is_ok());
        // The same embeddings of a public address are public.
        assert!(policy.check(ip("64:ff9b::5db8:d822")).is_ok());
        assert!(policy.check(ip("2002:5db8:d822::1")).is_ok());
        assert!(
            policy.check(ip("198.20.0.1")).is_ok(),
            "just past 198.18.0.0/15"
        );
    }

    #[test]
    fn allowed_networks_open_exactly_their_range() {
        let policy = NetworkPolicy::new(&[
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.5/32".parse().unwrap(),
        ]);
        assert!(policy.check(ip("127.0.0.1")).is_ok());
        assert!(policy.check(ip("10.0.0.5")).is_ok());
        assert!(policy.check(ip("10.0.0.6")).is_err());
        assert!(policy.check(ip("::1")).is_err());
    }
}
