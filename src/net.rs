//! Client addresses: who a request comes from when proxies stand in front
//! of the appliance, and the key an address is rate limited by.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An address block, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a
/// block of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32)
                    == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(net.into(), self.prefix, 128) == masked(ip.into(), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `width`-bit number.
fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    match width - prefix {
        0 => bits,
        shift if shift >= 128 => 0,
        shift => bits >> shift,
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("{s:?} is not an address or an address/prefix block");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| bad())?.to_canonical();
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(bad)?,
            None => width,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which header the trusted proxies put the client's address in.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    XForwardedFor,
    /// RFC 7239: `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// The client's address: the peer, unless the peer is a trusted proxy; then
/// the right-most address of the forwarding chain that is not a trusted
/// proxy itself (addresses to its left are whatever the client claimed).
/// Only the header the proxies are said to set is read: a client can send
/// the other one through them unchanged.
pub fn client_ip(
    peer: IpAddr,
    trusted: &[Cidr],
    header: ForwardedHeader,
    headers: &axum::http::HeaderMap,
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let chain: Vec<&str> = match header {
        ForwardedHeader::XForwardedFor => headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect(),
        ForwardedHeader::Forwarded => headers
            .get_all(axum::http::header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(forwarded_for)
            .collect(),
    };
    let mut client = peer;
    for hop in chain.iter().rev() {
        // A hop that is not an address (`unknown`, an obfuscated name, a
        // typo) hides whoever is behind it: the last known hop is the client.
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// The `for=` value of one `Forwarded` element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> &str {
    element
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
        .map_or("", |(_, v)| v.trim())
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]:5678`, any of them quoted.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The key an address is rate limited by: an IPv4 address as it is, an
/// IPv6 address by its /64 (one subscriber's network gets a whole /64 and
/// can pick any address in it).
pub fn limit_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn blocks_parse_and_contain() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(
            net.contains(ip("::ffff:10.1.0.9")),
            "IPv4-mapped counts as IPv4"
        );
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")) && !all.contains(ip("::1")));
        for bad in ["10.0.0.0/33", "::/129", "nonsense", "10.0.0.0/", "1.2.3/8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_peers() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let xff = headers("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.0.0.2");
        let header = ForwardedHeader::XForwardedFor;
        // Untrusted peer: the header is the client's own claim.
        assert_eq!(
            client_ip(ip("198.51.100.1"), &trusted, header, &xff),
            ip("198.51.100.1")
        );
        // Trusted peer: right-most untrusted hop; the forged left part is ignored.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &trusted, header, &xff),
            ip("203.0.113.5")
        );
        // Nothing trusted: the peer.
        assert_eq!(client_ip(ip("10.0.0.1"), &[], header, &xff), ip("10.0.0.1"));
        // Only proxies in the chain: the left-most of them.
        let inner = headers("x-forwarded-for", "10.9.9.9, 10.0.0.2");
        assert_eq!(
            client_ip(ip("10.0.0.1"), &trusted, header, &inner),
            ip("10.9.9.9")
        );
        // A hop that is no address hides what is behind it.
        let hidden = headers("x-forwarded-for", "203.0.113.5, unknown");
        assert_eq!(
            client_ip(ip("10.0.0.1"), &trusted, header, &hidden),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_forwarded_header_is_read_when_configured() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let fwd = headers(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.3:80",
        );
        let h = ForwardedHeader::Forwarded;
        assert_eq!(
            client_ip(ip("10.0.0.1"), &trusted, h, &fwd),
            ip("2001:db8:cafe::17")
        );
        // The other header is not read: a client could send it past the proxy.
        let xff = headers("x-forwarded-for", "203.0.113.5");
        assert_eq!(client_ip(ip("10.0.0.1"), &trusted, h, &xff), ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1")),
            limit_key(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(limit_key(ip("192.0.2.1")), "192.0.2.1");
        assert_eq!(limit_key(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_ne!(limit_key(ip("192.0.2.1")), limit_key(ip("192.0.2.2")));
    }
}
