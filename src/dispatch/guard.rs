//! The SSRF guard: webhooks may not reach loopback, private, link-local, unique-local,
//! multicast or cloud-metadata addresses unless `delivery.allowed_networks` allows them.
//! The check runs on every resolved address, and only checked addresses are connected to.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, LazyLock},
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

    /// What saving `url` should warn of: a literal address (or `localhost`) that deliveries
    /// would be refused, in words naming the setting that allows it. A host name is judged
    /// only when a delivery resolves it (its addresses may change): `None` then. A warning,
    /// not a refusal: the policy may change.
    pub fn warning_at_save(&self, url: &str) -> Option<String> {
        let parsed = url::Url::parse(url).ok()?;
        let address = match parsed.host()? {
            url::Host::Ipv4(v4) => IpAddr::V4(v4),
            url::Host::Ipv6(v6) => IpAddr::V6(v6),
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                } else {
                    return None;
                }
            }
        };
        self.check(address).err().map(|blocked| {
            format!(
                "deliveries to {} will be refused: it is a {} address; add a network containing it to delivery.allowed_networks to allow it",
                blocked.address, blocked.kind
            )
        })
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
        IpAddr::V4(v4) => first_match(&V4_RULES, IpAddr::V4(v4)),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return restricted_kind(IpAddr::V4(v4));
            }
            // IPv4 carried inside IPv6 reaches that IPv4 address: judge it by that one.
            if let Some(v4) = embedded_v4(v6) {
                return restricted_kind(IpAddr::V4(v4));
            }
            first_match(&V6_RULES, IpAddr::V6(v6))
        }
    }
}

/// The networks the guard judges, most specific first: the first that contains an address
/// decides, `None` meaning "public" (a globally reachable block inside a refused one).
/// Built from IANA's IPv4 and IPv6 Special-Purpose Address Registries (every block not
/// globally reachable is refused; the test below holds the registries entry by entry),
/// plus multicast, site-local and the cloud metadata addresses.
type Rules = LazyLock<Vec<(IpNet, Option<&'static str>)>>;

static V4_RULES: Rules = LazyLock::new(|| {
    rules(&[
        ("169.254.169.254/32", Some("cloud metadata")),
        ("100.100.100.200/32", Some("cloud metadata")),
        ("192.0.0.9/32", None),  // Port Control Protocol anycast
        ("192.0.0.10/32", None), // TURN anycast
        ("0.0.0.0/8", Some("unspecified")),
        ("10.0.0.0/8", Some("private")),
        ("100.64.0.0/10", Some("shared (carrier-grade NAT)")),
        ("127.0.0.0/8", Some("loopback")),
        ("169.254.0.0/16", Some("link-local")),
        ("172.16.0.0/12", Some("private")),
        ("192.0.0.0/24", Some("IETF protocol assignment")),
        ("192.0.2.0/24", Some("documentation")),
        ("192.88.99.0/24", Some("6to4 relay anycast")),
        ("192.168.0.0/16", Some("private")),
        ("198.18.0.0/15", Some("benchmarking")),
        ("198.51.100.0/24", Some("documentation")),
        ("203.0.113.0/24", Some("documentation")),
        ("224.0.0.0/4", Some("multicast")),
        ("240.0.0.0/4", Some("reserved")),
    ])
});

static V6_RULES: Rules = LazyLock::new(|| {
    rules(&[
        ("::/128", Some("unspecified")),
        ("::1/128", Some("loopback")),
        ("fd00:ec2::254/128", Some("cloud metadata")),
        // SIIT's IPv4-translated addresses are never routed on the internet.
        ("::ffff:0:0:0/96", Some("IPv4-translated")),
        // Local-use NAT64 reaches whatever the local translator maps it to.
        ("64:ff9b:1::/48", Some("local-use NAT64")),
        ("100::/64", Some("discard-only")),
        ("100:0:0:1::/64", Some("dummy")),
        ("2001:1::1/128", None),   // Port Control Protocol anycast
        ("2001:1::2/128", None),   // TURN anycast
        ("2001:1::3/128", None),   // DNS-SD service registration anycast
        ("2001:3::/32", None),     // AMT
        ("2001:4:112::/48", None), // AS112
        ("2001:20::/28", None),    // ORCHIDv2
        ("2001:30::/28", None),    // drone remote ID
        ("2001:2::/48", Some("benchmarking")),
        ("2001::/32", Some("Teredo")),
        ("2001::/23", Some("IETF protocol assignment")),
        ("2001:db8::/32", Some("documentation")),
        ("3fff::/20", Some("documentation")),
        ("5f00::/16", Some("segment routing")),
        ("fc00::/7", Some("unique-local")),
        ("fe80::/10", Some("link-local")),
        ("fec0::/10", Some("site-local")),
        ("ff00::/8", Some("multicast")),
    ])
});

fn rules(table: &[(&str, Option<&'static str>)]) -> Vec<(IpNet, Option<&'static str>)> {
    table
        .iter()
        .map(|(net, kind)| (net.parse().expect("a valid network"), *kind))
        .collect()
}

fn first_match(rules: &[(IpNet, Option<&'static str>)], address: IpAddr) -> Option<&'static str> {
    rules
        .iter()
        .find(|(net, _)| net.contains(&address))
        .and_then(|(_, kind)| *kind)
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
            ("192.0.0.1", "IETF protocol assignment"),
            ("::ffff:0:10.0.0.1", "IPv4-translated"),
            ("::ffff:0:8.8.8.8", "IPv4-translated"),
            ("64:ff9b:1::8.8.8.8", "local-use NAT64"),
            ("100::1", "discard-only"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
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
    fn saving_a_refused_literal_address_is_warned_of() {
        let policy = NetworkPolicy::default();
        let warned = policy
            .warning_at_save("http://127.0.0.1:8080/hook")
            .expect("loopback");
        assert!(
            warned.contains("127.0.0.1")
                && warned.contains("loopback")
                && warned.contains("delivery.allowed_networks"),
            "{warned}"
        );
        assert!(policy.warning_at_save("http://localhost/h").is_some());
        assert!(policy.warning_at_save("http://[fd00::1]/h").is_some());
        assert!(policy.warning_at_save("https://10.1.2.3/h").is_some());
        assert_eq!(
            policy.warning_at_save("https://hooks.example.com/h"),
            None,
            "a name: at delivery"
        );
        assert_eq!(policy.warning_at_save("https://93.184.216.34/h"), None);
        let open = NetworkPolicy::new(&["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(open.warning_at_save("http://127.0.0.1/h"), None, "allowed");
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

    /// IANA's IPv4 Special-Purpose Address Registry (2025) as published: block and
    /// "Globally Reachable" (`None` for N/A). Every block that is not globally reachable is
    /// refused at its first and last address; the globally reachable ones pass.
    const IANA_V4: &[(&str, Option<bool>)] = &[
        ("0.0.0.0/8", Some(false)),
        ("0.0.0.0/32", Some(false)),
        ("10.0.0.0/8", Some(false)),
        ("100.64.0.0/10", Some(false)),
        ("127.0.0.0/8", Some(false)),
        ("169.254.0.0/16", Some(false)),
        ("172.16.0.0/12", Some(false)),
        ("192.0.0.0/24", None),
        ("192.0.0.0/29", Some(false)),
        ("192.0.0.8/32", Some(false)),
        ("192.0.0.9/32", Some(true)),
        ("192.0.0.10/32", Some(true)),
        ("192.0.0.170/32", Some(false)),
        ("192.0.0.171/32", Some(false)),
        ("192.0.2.0/24", Some(false)),
        ("192.31.196.0/24", Some(true)),
        ("192.52.193.0/24", Some(true)),
        ("192.88.99.0/24", None),
        ("192.168.0.0/16", Some(false)),
        ("192.175.48.0/24", Some(true)),
        ("198.18.0.0/15", Some(false)),
        ("198.51.100.0/24", Some(false)),
        ("203.0.113.0/24", Some(false)),
        ("240.0.0.0/4", Some(false)),
        ("255.255.255.255/32", Some(false)),
    ];

    /// IANA's IPv6 Special-Purpose Address Registry (2025), the same way. `64:ff9b::/96`
    /// and `2002::/16` carry an IPv4 address and are judged by it (their first and last
    /// addresses carry 0.0.0.0 and 255.255.255.255, both refused).
    const IANA_V6: &[(&str, Option<bool>)] = &[
        ("::1/128", Some(false)),
        ("::/128", Some(false)),
        ("::ffff:0:0/96", Some(false)),
        ("64:ff9b::/96", Some(true)),
        ("64:ff9b:1::/48", Some(false)),
        ("100::/64", Some(false)),
        ("100:0:0:1::/64", Some(false)),
        ("2001::/23", None),
        ("2001::/32", None),
        ("2001:1::1/128", Some(true)),
        ("2001:1::2/128", Some(true)),
        ("2001:1::3/128", Some(true)),
        ("2001:2::/48", Some(false)),
        ("2001:3::/32", Some(true)),
        ("2001:4:112::/48", Some(true)),
        ("2001:10::/28", Some(false)),
        ("2001:20::/28", Some(true)),
        ("2001:30::/28", Some(true)),
        ("2001:db8::/32", Some(false)),
        ("2002::/16", None),
        ("2620:4f:8000::/48", Some(true)),
        ("3fff::/20", Some(false)),
        ("5f00::/16", Some(false)),
        ("fc00::/7", Some(false)),
        ("fe80::/10", Some(false)),
    ];

    #[test]
    fn the_iana_special_purpose_registries_are_judged_block_by_block() {
        let policy = NetworkPolicy::default();
        for (block, global) in IANA_V4.iter().chain(IANA_V6) {
            let net: IpNet = block.parse().unwrap();
            let reachable = *global == Some(true);
            for address in [net.network(), net.broadcast()] {
                let judged = policy.check(address);
                if reachable && !block.starts_with("64:ff9b::") {
                    assert!(judged.is_ok(), "{address} ({block}) is globally reachable");
                } else {
                    assert!(judged.is_err(), "{address} ({block}) must be refused");
                }
            }
        }
        // The well-known NAT64 prefix reaches the IPv4 internet: public inside, private not.
        assert!(policy.check(ip("64:ff9b::8.8.8.8")).is_ok());
        assert!(policy.check(ip("64:ff9b::192.0.0.1")).is_err());
        // Just outside refused blocks is public.
        for public in [
            "100.63.255.255",
            "100.128.0.0",
            "192.0.1.0",
            "198.17.255.255",
            "2001:200::1",
            "3fff:1000::1",
            "5eff::1",
        ] {
            assert!(policy.check(ip(public)).is_ok(), "{public}");
        }
    }
}
