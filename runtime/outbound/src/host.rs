//! Entries of `allowed_hosts` and how a URL's host is matched against them.
//!
//! Both sides are normalised the way the `url` crate normalises a host
//! (lower case, IDNA to ASCII, IP literals in canonical form) and lose a
//! trailing dot, so `Example.COM.` in a URL matches `example.com` here.

use std::net::IpAddr;

use url::{Host, Url};

use crate::error::Error;

/// One `allowed_hosts` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// Exactly this host (a name, or an IP literal without brackets).
    Exact(String),
    /// Any subdomain of this name, at any depth, but not the name itself:
    /// `*.example.com` lets in `api.example.com`, not `example.com`.
    Subdomains(String),
}

impl HostPattern {
    pub(crate) fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |why: &str| {
            Error::Config(format!(
                "`{text}` in allowed_hosts is not a host ({why}); \
                 write e.g. \"api.example.com\" or \"*.example.com\""
            ))
        };
        let trimmed = text.trim();
        if let Some(parent) = trimmed.strip_prefix("*.") {
            return match normalise(parent) {
                Some(Host::Domain(domain)) if !domain.contains('*') => {
                    Ok(HostPattern::Subdomains(domain))
                }
                Some(_) => Err(invalid("a wildcard needs a domain name after `*.`")),
                None => Err(invalid("bad name after `*.`")),
            };
        }
        if trimmed.contains('*') {
            return Err(invalid("`*` is only allowed as a leading `*.`"));
        }
        match normalise(trimmed) {
            Some(host) => Ok(HostPattern::Exact(host_key(&host))),
            None => Err(invalid("bad name")),
        }
    }

    pub(crate) fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host == name,
            HostPattern::Subdomains(parent) => host
                .strip_suffix(parent.as_str())
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
        }
    }
}

/// Parses a config entry into a host; bare IPv6 literals are accepted
/// without brackets since that is how people write them in a list.
fn normalise(text: &str) -> Option<Host<String>> {
    if text.is_empty() {
        return None;
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(match ip {
            IpAddr::V4(v4) => Host::Ipv4(v4),
            IpAddr::V6(v6) => Host::Ipv6(v6),
        });
    }
    // `Host::parse` treats its input as a special-scheme host, which is what
    // http and https URLs get: IDNA, lower case, IPv4 number forms.
    match Host::parse(text).ok()? {
        Host::Domain(domain) => {
            let domain = domain.strip_suffix('.').unwrap_or(&domain).to_owned();
            // A name with a port or path would never match; refuse it now.
            if domain.is_empty() || domain.contains([':', '/']) {
                return None;
            }
            Some(Host::Domain(domain))
        }
        other => Some(other),
    }
}

/// The string a URL's host is compared under: lower-case ASCII name without
/// a trailing dot, or the IP address without brackets.
pub(crate) fn host_key(host: &Host<impl AsRef<str>>) -> String {
    match host {
        Host::Domain(domain) => {
            let domain = domain.as_ref();
            domain
                .strip_suffix('.')
                .unwrap_or(domain)
                .to_ascii_lowercase()
        }
        Host::Ipv4(v4) => v4.to_string(),
        Host::Ipv6(v6) => v6.to_string(),
    }
}

/// The key of a URL's host, or `None` for a URL without one.
pub(crate) fn url_host_key(url: &Url) -> Option<String> {
    url.host().map(|host| host_key(&host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_to_normal_form() {
        let cases: &[(&str, HostPattern)] = &[
            ("example.com", HostPattern::Exact("example.com".into())),
            (
                "API.Example.COM.",
                HostPattern::Exact("api.example.com".into()),
            ),
            (
                "*.example.com",
                HostPattern::Subdomains("example.com".into()),
            ),
            (
                "*.Example.com.",
                HostPattern::Subdomains("example.com".into()),
            ),
            ("127.0.0.1", HostPattern::Exact("127.0.0.1".into())),
            ("::1", HostPattern::Exact("::1".into())),
            ("[::1]", HostPattern::Exact("::1".into())),
            (
                "bücher.example",
                HostPattern::Exact("xn--bcher-kva.example".into()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(&HostPattern::parse(text).unwrap(), expected, "{text}");
        }
        for bad in [
            "",
            "*",
            "*.",
            "*.*.example.com",
            "a*.example.com",
            "*.127.0.0.1",
            "example.com:443",
            "example.com/path",
            "exa mple.com",
        ] {
            let err = HostPattern::parse(bad).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
        }
    }

    #[test]
    fn url_hosts_match_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("example.com", "http://example.com/", true),
            ("example.com", "http://EXAMPLE.com./x", true),
            ("example.com", "http://api.example.com/", false),
            ("example.com", "http://example.com.evil.net/", false),
            ("*.example.com", "https://api.example.com/", true),
            ("*.example.com", "https://a.b.example.com/", true),
            ("*.example.com", "https://example.com/", false),
            ("*.example.com", "https://badexample.com/", false),
            ("*.example.com", "https://example.com.evil.net/", false),
            ("127.0.0.1", "http://127.0.0.1:8080/", true),
            ("127.0.0.1", "http://2130706433/", true),
            ("::1", "http://[::1]/", true),
            ("::1", "http://[0:0::1]/", true),
            ("localhost", "http://127.0.0.1/", false),
        ];
        for (pattern, url, expected) in cases {
            let pattern = HostPattern::parse(pattern).unwrap();
            let host = url_host_key(&Url::parse(url).unwrap()).unwrap();
            assert_eq!(pattern.matches(&host), *expected, "{pattern:?} vs {url}");
        }
    }
}
