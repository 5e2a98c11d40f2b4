//! Where a webhook may point: `http`/`https` only, and — unless
//! `webhooks.allow_private_targets` — never at loopback, private (RFC
//! 1918), CGNAT, link-local (the cloud metadata address among them),
//! unique-local, multicast or unspecified addresses. Checked when a webhook
//! is saved and again at every connection, on the addresses the name
//! resolves to then (DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

use crate::error::{AppError, AppResult};
use crate::webhooks::model::MAX_URL;

/// Whether an address is one a webhook may never reach by default.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => private_v4(v4),
            None => private_v6(v6),
        },
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // CGNAT, 100.64.0.0/10
        || (a == 100 && (64..128).contains(&b))
        // Benchmarking, 198.18.0.0/15
        || (a == 198 && (18..20).contains(&b))
        // Reserved, 240.0.0.0/4
        || a >= 240
}

fn private_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    let first = seg[0];
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // unique-local fc00::/7
        || (first & 0xfe00) == 0xfc00
        // link-local fe80::/10 and the old site-local fec0::/10
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        // IPv4-compatible (deprecated) forms carry an IPv4 inside
        || ip.to_ipv4().is_some_and(private_v4)
        // NAT64 64:ff9b::/96 carries one in its last 32 bits
        || (seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && private_v4(embedded(seg[6], seg[7])))
        // 6to4 2002::/16 carries one in bits 16..48
        || (first == 0x2002 && private_v4(embedded(seg[1], seg[2])))
}

/// A webhook URL, checked for its shape.
pub fn parse_url(raw: &str) -> AppResult<Url> {
    if raw.len() > MAX_URL {
        return Err(AppError::validation(format!(
            "url must have at most {MAX_URL} characters"
        )));
    }
    let url = Url::parse(raw).map_err(|_| AppError::validation("url is not a valid URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AppError::validation("url must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(AppError::validation("url needs a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AppError::validation("url must not carry credentials"));
    }
    Ok(url)
}

/// The addresses a URL's host resolves to now.
pub async fn resolve(url: &Url) -> std::io::Result<Vec<SocketAddr>> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    Ok(tokio::net::lookup_host((host, port)).await?.collect())
}

/// Refuses a URL whose host resolves to any address a webhook may not reach.
pub async fn check_reachable(url: &Url, allow_private: bool) -> AppResult<()> {
    let addrs = resolve(url)
        .await
        .map_err(|_| AppError::validation("url's host does not resolve"))?;
    if addrs.is_empty() {
        return Err(AppError::validation("url's host does not resolve"));
    }
    if !allow_private && addrs.iter().any(|a| is_private(a.ip())) {
        return Err(AppError::validation(
            "url points at a loopback, private or link-local address",
        ));
    }
    Ok(())
}

/// reqwest's resolver for deliveries: the same rule at every connection.
#[derive(Clone)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if !allow_private && addrs.iter().any(|a| is_private(a.ip())) {
                return Err("the webhook's host resolves to a private address".into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_refused_and_public_ones_pass() {
        let refused = [
            "127.0.0.1",
            "127.9.9.9",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "fec0::1",
            "198.18.0.1",
            "198.19.255.255",
        ];
        for ip in refused {
            assert!(is_private(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip} is public");
        }
    }

    /// At connection time too: a name that resolves to loopback (as a
    /// rebinding attacker's would) is refused by the resolver itself.
    #[tokio::test]
    async fn the_delivery_resolver_refuses_private_answers() {
        use reqwest::dns::Resolve;
        let name = || "localhost".parse::<reqwest::dns::Name>().unwrap();
        let guarded = GuardedResolver {
            allow_private: false,
        };
        assert!(guarded.resolve(name()).await.is_err());
        let open = GuardedResolver {
            allow_private: true,
        };
        assert!(open.resolve(name()).await.is_ok());
    }

    #[test]
    fn only_http_urls_with_a_host_and_no_credentials() {
        assert!(parse_url("https://hooks.example.com/x").is_ok());
        for bad in [
            "ftp://example.com",
            "file:///etc/passwd",
            "gopher://x",
            "not a url",
            "https://user:pw@example.com/",
            "http://",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url(&format!("https://e.com/{}", "a".repeat(MAX_URL))).is_err());
    }
}
