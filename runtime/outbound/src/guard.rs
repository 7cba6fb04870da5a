//! The SSRF guard: the one place that decides whether a URL or an address
//! may be reached.
//!
//! It is consulted at three points, which together cover every way a
//! connection gets made:
//! - by `Outbound::send` on the first URL (scheme, `allowed_hosts`, and the
//!   address of an IP-literal host, which never reaches a resolver);
//! - by the redirect policy on every next URL, with the same checks;
//! - by the resolver on every address a name resolves to. reqwest connects
//!   only to the addresses the resolver returns, so a name cannot be checked
//!   against one answer and then connect to another (DNS rebinding).

use std::net::IpAddr;

use url::{Host, Url};

use crate::address::{self, Network};
use crate::config::OutboundConfig;
use crate::error::{Error, Result};
use crate::host::{self, HostPattern};

#[derive(Debug)]
pub(crate) struct Guard {
    allowed_networks: Vec<Network>,
    allowed_hosts: Option<Vec<HostPattern>>,
}

impl Guard {
    pub(crate) fn new(config: &OutboundConfig) -> Result<Self> {
        let allowed_networks = config
            .allowed_networks
            .iter()
            .map(|text| text.parse())
            .collect::<Result<_>>()?;
        let allowed_hosts = config
            .allowed_hosts
            .as_ref()
            .map(|hosts| hosts.iter().map(|h| HostPattern::parse(h)).collect())
            .transpose()?;
        Ok(Self {
            allowed_networks,
            allowed_hosts,
        })
    }

    /// Whether a connection to `ip` is allowed: it is public, or inside an
    /// allowed network. An IPv6 form of an IPv4 address is also allowed when
    /// its IPv4 address is, so allowing 127.0.0.0/8 allows ::ffff:127.0.0.1
    /// (the same socket) but not ::1.
    pub(crate) fn permits(&self, ip: IpAddr) -> bool {
        let listed = |ip: IpAddr| self.allowed_networks.iter().any(|n| n.contains(ip));
        if listed(ip) {
            return true;
        }
        if let IpAddr::V6(v6) = ip
            && let Some(v4) = address::embedded_ipv4(v6)
            && listed(IpAddr::V4(v4))
        {
            return true;
        }
        address::special_range(ip).is_none()
    }

    /// Refuses `ip` for `host` unless [`permits`](Self::permits) it.
    pub(crate) fn check_address(&self, host: &str, ip: IpAddr) -> Result<()> {
        if self.permits(ip) {
            return Ok(());
        }
        tracing::debug!(
            host,
            address = %ip,
            range = address::special_range(ip),
            "outbound request refused: address not public"
        );
        Err(Error::PrivateAddress {
            host: host.to_owned(),
            address: ip,
        })
    }

    /// Checks everything about a URL that can be known without DNS: scheme,
    /// `allowed_hosts`, and the address of an IP-literal host.
    pub(crate) fn check_url(&self, url: &Url) -> Result<()> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(Error::SchemeNotAllowed(other.to_owned())),
        }
        let (Some(host), Some(key)) = (url.host(), host::url_host_key(url)) else {
            return Err(Error::InvalidRequest("the URL has no host".to_owned()));
        };
        if let Some(patterns) = &self.allowed_hosts
            && !patterns.iter().any(|p| p.matches(&key))
        {
            tracing::debug!(host = %key, "outbound request refused: host not allowed");
            return Err(Error::HostNotAllowed { host: key });
        }
        let literal = match host {
            Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            // The url crate turns every IPv4 spelling of an http(s) host into
            // `Ipv4`; this only guards against that ever changing, since
            // the connector would take such a name as a literal too.
            Host::Domain(name) => name.parse().ok(),
        };
        match literal {
            Some(ip) => self.check_address(&key, ip),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(networks: &[&str], hosts: Option<&[&str]>) -> Guard {
        Guard::new(&OutboundConfig {
            allowed_networks: networks.iter().map(|s| s.to_string()).collect(),
            allowed_hosts: hosts.map(|h| h.iter().map(|s| s.to_string()).collect()),
            ..OutboundConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn allowed_networks_open_only_their_addresses() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&[], "8.8.8.8", true),
            (&[], "127.0.0.1", false),
            (&["127.0.0.0/8"], "127.0.0.1", true),
            (&["127.0.0.0/8"], "127.9.9.9", true),
            (&["127.0.0.0/8"], "::ffff:127.0.0.1", true),
            (&["127.0.0.0/8"], "::1", false),
            (&["127.0.0.1/32"], "127.0.0.2", false),
            (&["::1/128"], "::1", true),
            (&["::1/128"], "127.0.0.1", false),
            (&["10.1.0.0/16"], "10.1.2.3", true),
            (&["10.1.0.0/16"], "10.2.0.1", false),
            (&["10.1.0.0/16"], "64:ff9b::a01:203", true),
            (&["10.1.0.0/16"], "2002:a01:203::1", true),
            (&["10.1.0.0/16"], "169.254.169.254", false),
            (&["fd00::/8"], "fd12::1", true),
            (&["fd00::/8"], "fe80::1", false),
        ];
        for (networks, addr, expected) in cases {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(
                guard(networks, None).permits(ip),
                *expected,
                "{networks:?} {addr}"
            );
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_host_and_literal_address() {
        let open = guard(&[], None);
        let cases: &[(&str, &str)] = &[
            ("ftp://example.com/", "scheme"),
            ("file:///etc/passwd", "scheme"),
            ("http://127.0.0.1/", "private"),
            ("http://2130706433/", "private"),
            ("http://0177.0.0.1/", "private"),
            ("http://0x7f.1/", "private"),
            ("http://127.1/", "private"),
            ("http://[::1]/", "private"),
            ("http://[::ffff:7f00:1]/", "private"),
            ("http://0.0.0.0/", "private"),
            ("http://169.254.169.254/latest/meta-data/", "private"),
            ("http://[fe80::1]/", "private"),
            ("http://example.com/", "ok"),
            ("https://8.8.8.8/", "ok"),
            ("http://localhost/", "ok"), // a name: the resolver judges it
        ];
        for (url, expected) in cases {
            let result = open.check_url(&Url::parse(url).unwrap());
            let got = match result {
                Ok(()) => "ok",
                Err(Error::SchemeNotAllowed(_)) => "scheme",
                Err(Error::PrivateAddress { .. }) => "private",
                Err(other) => panic!("{url}: unexpected {other:?}"),
            };
            assert_eq!(got, *expected, "{url}");
        }

        let listed = guard(&[], Some(&["*.example.com", "8.8.8.8"]));
        assert!(
            listed
                .check_url(&Url::parse("https://api.example.com/").unwrap())
                .is_ok()
        );
        assert!(
            listed
                .check_url(&Url::parse("https://8.8.8.8/").unwrap())
                .is_ok()
        );
        match listed.check_url(&Url::parse("https://Example.com./").unwrap()) {
            Err(Error::HostNotAllowed { host }) => assert_eq!(host, "example.com"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
