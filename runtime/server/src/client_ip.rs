//! Who a request comes from: the peer's address, or, when the peer is a
//! trusted proxy, the client its `X-Forwarded-For` names. Per-client caps
//! and rate limits, and the audit log, key on it.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// Proxies whose `X-Forwarded-For` is believed: addresses and CIDR ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    ranges: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Parses `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`; the error names
    /// the entry.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        let ranges = entries
            .iter()
            .map(|entry| {
                let bad = || format!("trusted_proxies: {entry:?} is not an address or CIDR range");
                let (address, bits) = match entry.split_once('/') {
                    Some((address, bits)) => (address, Some(bits)),
                    None => (entry.as_str(), None),
                };
                let address: IpAddr = address.trim().parse().map_err(|_| bad())?;
                let most = if address.is_ipv4() { 32 } else { 128 };
                let bits = match bits {
                    Some(bits) => bits.trim().parse::<u8>().map_err(|_| bad())?,
                    None => most,
                };
                if bits > most {
                    return Err(bad());
                }
                Ok((address, bits))
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { ranges })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.ranges
            .iter()
            .any(|(range, bits)| match (canonical(*range), ip) {
                (IpAddr::V4(range), IpAddr::V4(ip)) => {
                    prefix_matches(&range.octets(), &ip.octets(), *bits)
                }
                (IpAddr::V6(range), IpAddr::V6(ip)) => {
                    prefix_matches(&range.octets(), &ip.octets(), *bits)
                }
                _ => false,
            })
    }

    /// The client behind `peer`: `peer` itself unless it is trusted; then
    /// the rightmost address of `X-Forwarded-For` that is not a trusted
    /// proxy (addresses further left were written by the client and prove
    /// nothing).
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer.ip());
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = canonical(ip);
            if !self.contains(client) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_matches(range: &[u8], ip: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    if range[..whole] != ip[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        range[whole] & mask == ip[whole] & mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(forwarded: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", forwarded.parse().expect("header"));
        headers
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).expect("parses");
        let proxy: SocketAddr = "10.1.2.3:5000".parse().expect("address");
        let stranger: SocketAddr = "203.0.113.9:5000".parse().expect("address");
        let ip = |text: &str| text.parse::<IpAddr>().expect("ip");
        assert_eq!(
            trusted.client(proxy, &headers("198.51.100.7")),
            ip("198.51.100.7")
        );
        // What the client wrote before the proxy's entry proves nothing.
        assert_eq!(
            trusted.client(proxy, &headers("1.1.1.1, 198.51.100.7, 10.0.0.2")),
            ip("198.51.100.7")
        );
        assert_eq!(
            trusted.client(stranger, &headers("1.1.1.1")),
            ip("203.0.113.9")
        );
        assert_eq!(trusted.client(proxy, &HeaderMap::new()), ip("10.1.2.3"));
        assert_eq!(trusted.client(proxy, &headers("garbage")), ip("10.1.2.3"));
        let mapped: SocketAddr = "[::ffff:10.0.0.5]:1".parse().expect("address");
        assert!(trusted.contains(mapped.ip()));
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local".into()]).is_err());
    }
}
