//! Function paths, canonicalised as the Convex client and server do.

/// `"messages:send"` stays; `"messages"` is `"messages:default"`;
/// `"messages.js:send"` is `"messages:send"`. The split is at the last `:`.
pub fn canonicalize(path: &str) -> String {
    let (module, function) = match path.rsplit_once(':') {
        Some((module, function)) => (module, function),
        None => (path, "default"),
    };
    let module = module.strip_suffix(".js").unwrap_or(module);
    format!("{module}:{function}")
}

#[cfg(test)]
mod tests {
    use super::canonicalize;

    #[test]
    fn paths_are_canonicalised_like_convex() {
        assert_eq!(canonicalize("messages:send"), "messages:send");
        assert_eq!(canonicalize("messages.js:send"), "messages:send");
        assert_eq!(canonicalize("dir/messages"), "dir/messages:default");
        assert_eq!(canonicalize("a:b:c"), "a:b:c");
    }
}
