//! Which IP addresses are public, and CIDR networks that make exceptions.
//!
//! The classifier is deliberately a deny-list for IPv4 (the public space is
//! "everything else") and an allow-list for IPv6 (only global unicast,
//! 2000::/3, minus its special blocks). IPv6 forms that carry an IPv4 address
//! the packet ends up at (mapped, compatible, NAT64, 6to4) are judged by that
//! IPv4 address, so `::ffff:127.0.0.1` is loopback.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::Error;

/// IPv4 blocks that are not public, most specific first so the reason given
/// is the precise one (broadcast before the reserved 240/4 holding it).
const SPECIAL_V4: &[(Ipv4Addr, u8, &str)] = &[
    (
        Ipv4Addr::new(0, 0, 0, 0),
        8,
        "unspecified (\"this network\")",
    ),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared address space (CGNAT)",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "link-local (cloud metadata)",
    ),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay anycast"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

/// Blocks inside IPv6 global unicast (2000::/3) that are not public, plus
/// the few outside it worth naming; anything else outside 2000::/3 is
/// refused as "not global unicast".
const SPECIAL_V6: &[(Ipv6Addr, u8, &str)] = &[
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "local-use NAT64",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    // Holds Teredo (2001::/32), whose client address is obfuscated and so
    // cannot be judged; nobody legitimately calls an API there.
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignments",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0),
        16,
        "SRv6 segment identifiers",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique local (private)",
    ),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

/// Names the special-purpose block `ip` is in, or `None` if it is public.
pub(crate) fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_range_v4(v4),
        IpAddr::V6(v6) => special_range_v6(v6),
    }
}

fn special_range_v4(ip: Ipv4Addr) -> Option<&'static str> {
    SPECIAL_V4
        .iter()
        .find(|(net, prefix, _)| v4_in(ip, *net, *prefix))
        .map(|(_, _, reason)| *reason)
}

fn special_range_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_ipv4(ip) {
        return special_range_v4(v4);
    }
    if let Some((_, _, reason)) = SPECIAL_V6
        .iter()
        .find(|(net, prefix, _)| v6_in(ip, *net, *prefix))
    {
        return Some(reason);
    }
    if !v6_in(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        return Some("not global unicast");
    }
    None
}

/// The IPv4 address an IPv6 address stands for, where the packet really
/// goes there (or to a gateway that forwards it there).
pub(crate) fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible; covers :: and ::1,
    // which come out as 0.0.0.0 and 0.0.0.1, both "this network").
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return Some(low);
    }
    // 64:ff9b::/96, the well-known NAT64 prefix.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    // 2002::/16, 6to4: the IPv4 address follows the prefix.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

fn v4_mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn v6_mask(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

fn v4_in(ip: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = v4_mask(prefix);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn v6_in(ip: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    let mask = v6_mask(prefix);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// A CIDR network from `allowed_networks`, e.g. `10.1.0.0/16` or `::1/128`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is inside this network. Families never mix: an IPv6
    /// form of an IPv4 address is matched through its embedded address by
    /// the guard, not here.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => v4_in(ip, net, self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => v6_in(ip, net, self.prefix),
            _ => false,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Network {
    type Err = Error;

    /// Parses `addr/prefix`, or a bare address meaning that one address.
    /// Host bits set past the prefix are refused rather than silently
    /// cleared: `10.1.2.3/16` is more likely a typo than a wish.
    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |why: &str| {
            Error::Config(format!(
                "`{text}` in allowed_networks is not a network ({why}); \
                 write e.g. \"10.1.0.0/16\" or \"::1/128\""
            ))
        };
        let trimmed = text.trim();
        let (addr, prefix) = match trimmed.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (trimmed, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid("bad address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // `u8::from_str` accepts "+8" and "08", which no CIDR is written as;
            // comparing with the canonical form refuses them.
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && n.to_string() == p => n,
                _ => return Err(invalid(&format!("prefix must be 0 to {max}"))),
            },
        };
        let network = Network { addr, prefix };
        let canonical = match addr {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & v4_mask(prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & v6_mask(prefix))),
        };
        if canonical != addr {
            return Err(invalid(&format!(
                "bits set past the /{prefix} prefix; did you mean {canonical}/{prefix}?"
            )));
        }
        Ok(network)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifier_table() {
        // (address, expected special range or None for public)
        let cases: &[(&str, Option<&str>)] = &[
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("93.184.216.34", None),
            ("0.0.0.0", Some("unspecified (\"this network\")")),
            ("0.1.2.3", Some("unspecified (\"this network\")")),
            ("10.0.0.1", Some("private")),
            ("10.255.255.255", Some("private")),
            ("11.0.0.0", None),
            ("100.63.255.255", None),
            ("100.64.0.1", Some("shared address space (CGNAT)")),
            ("100.127.255.255", Some("shared address space (CGNAT)")),
            ("100.128.0.0", None),
            ("127.0.0.1", Some("loopback")),
            ("127.255.255.254", Some("loopback")),
            ("169.254.169.254", Some("link-local (cloud metadata)")),
            ("172.15.255.255", None),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("172.32.0.0", None),
            ("192.0.0.8", Some("IETF protocol assignments")),
            ("192.0.2.1", Some("documentation")),
            ("192.88.99.1", Some("6to4 relay anycast")),
            ("192.168.1.1", Some("private")),
            ("198.17.255.255", None),
            ("198.18.0.1", Some("benchmarking")),
            ("198.19.255.255", Some("benchmarking")),
            ("198.20.0.0", None),
            ("198.51.100.7", Some("documentation")),
            ("203.0.113.7", Some("documentation")),
            ("224.0.0.1", Some("multicast")),
            ("239.255.255.250", Some("multicast")),
            ("240.0.0.1", Some("reserved")),
            ("255.255.255.255", Some("broadcast")),
            // IPv6
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001:81b::200e", None),
            ("::", Some("unspecified (\"this network\")")),
            ("::1", Some("unspecified (\"this network\")")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:10.0.0.1", Some("private")),
            (
                "::ffff:169.254.169.254",
                Some("link-local (cloud metadata)"),
            ),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some("loopback")),
            ("::8.8.8.8", None),
            ("64:ff9b::127.0.0.1", Some("loopback")),
            ("64:ff9b::a9fe:a9fe", Some("link-local (cloud metadata)")),
            ("64:ff9b::8.8.8.8", None),
            ("64:ff9b:1::1", Some("local-use NAT64")),
            ("2002:7f00:1::1", Some("loopback")),
            ("2002:c0a8:101::", Some("private")),
            ("2002:808:808::1", None),
            ("100::1", Some("discard-only")),
            ("2001::1", Some("IETF protocol assignments")),
            ("2001:db8::1", Some("documentation")),
            ("3fff::1", Some("documentation")),
            ("5f00::1", Some("SRv6 segment identifiers")),
            ("fc00::1", Some("unique local (private)")),
            ("fd12:3456::1", Some("unique local (private)")),
            ("fe80::1", Some("link-local")),
            ("febf::1", Some("link-local")),
            ("fec0::1", Some("site-local")),
            ("ff02::1", Some("multicast")),
            ("1::1", Some("not global unicast")),
            ("4000::1", Some("not global unicast")),
            ("::ffff:0:7f00:1", Some("not global unicast")),
        ];
        for (addr, expected) in cases {
            assert_eq!(special_range(ip(addr)), *expected, "{addr}");
        }
    }

    #[test]
    fn cidr_parser_table() {
        let good: &[(&str, &str)] = &[
            ("127.0.0.0/8", "127.0.0.0/8"),
            ("10.1.0.0/16", "10.1.0.0/16"),
            (" 192.168.0.0/24 ", "192.168.0.0/24"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("127.0.0.1", "127.0.0.1/32"),
            ("::1/128", "::1/128"),
            ("::1", "::1/128"),
            ("fd00::/8", "fd00::/8"),
            ("::/0", "::/0"),
        ];
        for (text, display) in good {
            let network: Network = text.parse().unwrap();
            assert_eq!(network.to_string(), *display, "{text}");
        }
        let bad = [
            "",
            "/8",
            "127.0.0.0/",
            "127.0.0.0/33",
            "::/129",
            "127.0.0.0/-1",
            "127.0.0.0/+8",
            "127.0.0.0/08",
            "10.1.2.3/16",
            "fd00::1/8",
            "localhost/8",
            "[::1]/128",
            "127.0.0.0/8/8",
            "127.1/8",
        ];
        for text in bad {
            let err = text.parse::<Network>().unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{text}: {err:?}");
        }
        let err = "10.1.2.3/16".parse::<Network>().unwrap_err();
        assert!(err.to_string().contains("10.1.0.0/16"), "{err}");
    }

    #[test]
    fn network_contains_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("127.0.0.0/8", "127.0.0.1", true),
            ("127.0.0.0/8", "127.255.0.9", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("127.0.0.1/32", "127.0.0.2", false),
            ("10.1.0.0/16", "10.1.200.3", true),
            ("10.1.0.0/16", "10.2.0.1", false),
            ("0.0.0.0/0", "10.2.0.1", true),
            ("0.0.0.0/0", "::1", false),
            ("::1/128", "::1", true),
            ("::1/128", "::2", false),
            ("fd00::/8", "fd12::1", true),
            ("::/0", "127.0.0.1", false),
            // Families never mix here; the guard handles embedded IPv4.
            ("127.0.0.0/8", "::ffff:127.0.0.1", false),
        ];
        for (net, addr, expected) in cases {
            let network: Network = net.parse().unwrap();
            assert_eq!(network.contains(ip(addr)), *expected, "{net} ∋ {addr}");
        }
    }
}
