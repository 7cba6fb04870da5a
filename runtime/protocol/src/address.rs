//! Whether an address names this machine: plain http is trusted only there
//! (token issuers, the CLI's admin key).

/// Whether `authority` (`host[:port]`, `[v6]:port`, or a URL's part after
/// `scheme://`, path and all) names this machine: `localhost` or a
/// loopback address.
pub fn is_loopback(authority: &str) -> bool {
    let authority = authority.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_is_this_machine_only() {
        for local in [
            "127.0.0.1:3210",
            "localhost",
            "LOCALHOST:1/path",
            "[::1]:9000",
            "127.9.9.9",
        ] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in [
            "capstan.example.com",
            "10.0.0.5:3210",
            "[2001:db8::1]:1",
            "",
        ] {
            assert!(!is_loopback(remote), "{remote}");
        }
    }
}
