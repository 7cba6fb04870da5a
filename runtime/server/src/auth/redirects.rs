//! Where sign-in sends a browser back to: the app's own site (`SITE_URL`,
//! a deployment environment variable, as with Convex Auth) or an origin in
//! the config's `redirectOrigins`; never anywhere else (no open redirect).

use super::{AuthError, Flow};

/// The site: `SITE_URL` without a trailing `/`.
pub fn site_url(flow: &Flow<'_>) -> Result<String, AuthError> {
    flow.environment
        .get("SITE_URL")
        .map(|site| site.trim_end_matches('/').to_owned())
        .filter(|site| !site.is_empty())
        .ok_or_else(|| {
            AuthError::internal(
                "SITE_URL is not set: set it to the app's address (`capstan env set SITE_URL https://app.example.com`)",
            )
        })
}

/// Where to send the browser for `redirect_to`: a path or query on the
/// site, a URL on the site or an allowed origin; the site when absent.
pub fn destination(flow: &Flow<'_>, redirect_to: Option<&str>) -> Result<String, AuthError> {
    let site = site_url(flow)?;
    let Some(target) = redirect_to.filter(|t| !t.is_empty()) else {
        return Ok(site);
    };
    if (target.starts_with('/') && !target.starts_with("//") && !target.starts_with("/\\"))
        || target.starts_with('?')
    {
        return Ok(format!("{site}{target}"));
    }
    let allowed = std::iter::once(site.as_str())
        .chain(
            flow.config
                .redirect_origins
                .iter()
                .map(|o| o.trim_end_matches('/')),
        )
        .any(|origin| under(target, origin));
    if allowed {
        Ok(target.to_owned())
    } else {
        Err(AuthError::refused(
            "InvalidRedirect",
            format!(
                "Invalid `redirectTo` {target:?}: it must be on SITE_URL or an origin in redirectOrigins"
            ),
        ))
    }
}

/// Whether `target` is `origin` itself or a path or query under it.
fn under(target: &str, origin: &str) -> bool {
    match target.strip_prefix(origin) {
        Some(rest) => {
            rest.is_empty()
                || origin.ends_with("://")
                || rest.starts_with('/') && !rest.starts_with("//")
                || rest.starts_with('?')
                || rest.starts_with('#')
        }
        None => false,
    }
}

/// `url` with `code=<code>` added to its query (before any fragment); works
/// for custom schemes such as `myapp://` too.
pub fn with_code(url: &str, code: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let separator = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{separator}code={code}");
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_site_and_allowed_origins_are_destinations() {
        assert!(under(
            "https://app.example.com/x",
            "https://app.example.com"
        ));
        assert!(under("https://app.example.com", "https://app.example.com"));
        assert!(!under(
            "https://app.example.com.evil.com/",
            "https://app.example.com"
        ));
        assert!(!under(
            "https://app.example.com@evil.com",
            "https://app.example.com"
        ));
        assert!(under("myapp://callback", "myapp://"));
        assert_eq!(
            with_code("https://a.b/x?y=1#f", "123"),
            "https://a.b/x?y=1&code=123#f"
        );
        assert_eq!(with_code("myapp://", "9"), "myapp://?code=9");
    }
}
