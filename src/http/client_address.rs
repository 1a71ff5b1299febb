//! Who the client is: the connection's address, or — when that is a trusted reverse proxy
//! (`http.trusted_proxies`) — the address the proxies say they were forwarding for. The
//! rightmost address that is not itself a trusted proxy wins: each proxy appends the
//! address it heard from, so what lies left of the first untrusted one is the client's own
//! say and may be forged.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Each entry's address, `None` where it names none (`unknown`, an obfuscated name).
    let forwarded_for: Vec<Option<IpAddr>> = if headers.contains_key("x-forwarded-for") {
        list(headers, "x-forwarded-for")
            .iter()
            .map(|item| address(item))
            .collect()
    } else {
        list(headers, "forwarded")
            .iter()
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| address(value))
                        .flatten()
                })
            })
            .collect()
    };
    // From the right: past trusted proxies to the first address that is not one. An entry
    // that names no address ends the walk — what lies left of it is the client's own say —
    // and the peer stands for the client.
    for entry in forwarded_for.into_iter().rev() {
        match entry {
            Some(ip) if is_trusted(&ip) => continue,
            Some(ip) => return ip,
            None => return peer,
        }
    }
    peer
}

/// The comma-separated items of every `name` header, in order.
fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| item.trim().to_owned())
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, quoted or not. `unknown` and obfuscated names are no address.
fn address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    text.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_the_rightmost_untrusted_address_wins() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let forged = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")]);
        // From the proxy: the address it heard from, not what the client wrote before it.
        assert_eq!(
            client_address(ip("10.0.0.1"), &forged, &trusted),
            ip("203.0.113.7")
        );
        // From anyone else the headers are ignored.
        assert_eq!(
            client_address(ip("198.51.100.9"), &forged, &trusted),
            ip("198.51.100.9")
        );
        // Without trusted proxies, never believed.
        assert_eq!(client_address(ip("10.0.0.1"), &forged, &[]), ip("10.0.0.1"));
        // Several header lines are one list; only proxies in it: the first is the client.
        let lines = headers(&[
            ("x-forwarded-for", "198.51.100.20"),
            ("x-forwarded-for", "10.0.0.3"),
        ]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &lines, &trusted),
            ip("198.51.100.20")
        );
        let only_proxies = headers(&[("x-forwarded-for", "10.0.0.9")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &only_proxies, &trusted),
            ip("10.0.0.1")
        );
        // An entry that names no address ends the walk: what is left of it is not believed.
        let garbled = headers(&[("x-forwarded-for", "6.6.6.6, garbage, 10.0.0.9")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &garbled, &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn forwarded_is_read_when_x_forwarded_for_is_absent() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[(
            "forwarded",
            r#"for=192.0.2.43;proto=https, for="[2001:db8:cafe::17]:4711";by=10.0.0.1"#,
        )]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &h, &trusted),
            ip("2001:db8:cafe::17")
        );
        let ported = headers(&[("forwarded", "for=198.51.100.1:8080")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &ported, &trusted),
            ip("198.51.100.1")
        );
        let unknown = headers(&[("forwarded", "for=198.51.100.1, for=unknown")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &unknown, &trusted),
            ip("10.0.0.1")
        );
    }
}
