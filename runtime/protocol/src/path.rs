//! Function paths, canonicalised the way Convex clients and servers agree
//! on (`specs/sync-protocol.md` §4.3).

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The path of a function in canonical form, `module:function`, the
/// module being a `/`-separated path. Made only by [`FunctionPath::parse`],
/// so a path that crosses a boundary is canonical:
///
/// - `"messages:send"` stays as it is;
/// - `"messages"` (a default export, as clients send it) is
///   `"messages:default"`;
/// - `"messages.js:send"` is `"messages:send"`;
/// - the split is at the last `:` (`"a:b:c"` is module `a:b`).
///
/// Equality, order and hashing are those of the text, so maps keyed by
/// paths are looked up with a `&str` too.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionPath(String);

impl FunctionPath {
    /// Canonicalises `raw`. Every text is some path: one that names no
    /// function is found missing where it is looked up.
    pub fn parse(raw: &str) -> FunctionPath {
        match raw.rsplit_once(':') {
            Some((module, function)) => match module.strip_suffix(".js") {
                Some(module) => FunctionPath(format!("{module}:{function}")),
                None => FunctionPath(raw.to_owned()),
            },
            None => FunctionPath(format!(
                "{}:default",
                raw.strip_suffix(".js").unwrap_or(raw)
            )),
        }
    }

    /// Whether `raw` is already canonical, as the paths a component
    /// declares for its own functions must be.
    pub fn is_canonical(raw: &str) -> bool {
        FunctionPath::parse(raw).0 == raw
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the last `:`.
    pub fn module(&self) -> &str {
        self.split().0
    }

    /// The part after the last `:`.
    pub fn function(&self) -> &str {
        self.split().1
    }

    fn split(&self) -> (&str, &str) {
        // Canonical paths always hold a `:`.
        self.0.rsplit_once(':').unwrap_or((&self.0, ""))
    }
}

impl fmt::Display for FunctionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FunctionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Borrow<str> for FunctionPath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for FunctionPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for FunctionPath {
    fn from(raw: &str) -> Self {
        FunctionPath::parse(raw)
    }
}

/// Keeps the text when it is canonical already.
impl From<String> for FunctionPath {
    fn from(raw: String) -> Self {
        match raw.rsplit_once(':') {
            Some((module, _)) if !module.ends_with(".js") => FunctionPath(raw),
            _ => FunctionPath::parse(&raw),
        }
    }
}

impl std::str::FromStr for FunctionPath {
    type Err = std::convert::Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(FunctionPath::parse(raw))
    }
}

impl PartialEq<str> for FunctionPath {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for FunctionPath {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl Serialize for FunctionPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Canonicalises what it reads.
impl<'de> Deserialize<'de> for FunctionPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Ok(FunctionPath::from(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_canonicalised_like_convex() {
        for (raw, canonical) in [
            ("messages:send", "messages:send"),
            ("messages.js:send", "messages:send"),
            ("dir/messages", "dir/messages:default"),
            ("dir/messages.js", "dir/messages:default"),
            ("a:b:c", "a:b:c"),
            ("a.js:b:c", "a.js:b:c"),
            ("", ":default"),
        ] {
            let path = FunctionPath::parse(raw);
            assert_eq!(path.as_str(), canonical, "{raw}");
            assert!(FunctionPath::is_canonical(canonical), "{canonical}");
            // Canonical paths parse to themselves.
            assert_eq!(FunctionPath::parse(canonical), path);
        }
        assert!(!FunctionPath::is_canonical("messages"));
        assert!(!FunctionPath::is_canonical("messages.js:send"));
        let path = FunctionPath::parse("dir/mod:fn");
        assert_eq!((path.module(), path.function()), ("dir/mod", "fn"));
    }

    #[test]
    fn paths_canonicalise_when_read_and_are_plain_strings_on_the_wire() {
        let path: FunctionPath = serde_json::from_str(r#""counter.js""#).expect("parses");
        assert_eq!(path, "counter:default");
        assert_eq!(
            serde_json::to_string(&path).expect("serialises"),
            r#""counter:default""#
        );
        let escaped: FunctionPath = serde_json::from_str(r#""a\u003ab""#).expect("parses");
        assert_eq!(escaped, "a:b");
        let map: std::collections::BTreeMap<FunctionPath, u8> = [(path, 1)].into();
        assert_eq!(map.get("counter:default"), Some(&1));
    }
}
