//! Entity tags: the `ETag` a stored file is served with, and the two
//! preconditions a download compares against it, `If-None-Match` and
//! `If-Range` (RFC 9110 §8.8.3, §13.1.2, §13.1.5).

use std::fmt;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A strong entity tag made from a file's SHA-256: the same bytes have the
/// same tag on every server and backend, so a browser's copy stays valid
/// across restarts, re-uploads of the same file and moves between backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    /// The SHA-256 as base64url without padding, without the quotes.
    opaque: String,
}

impl EntityTag {
    pub fn from_sha256(sha256: &[u8; 32]) -> EntityTag {
        EntityTag {
            opaque: URL_SAFE_NO_PAD.encode(sha256),
        }
    }

    /// The tag without its quotes.
    pub fn opaque(&self) -> &str {
        &self.opaque
    }

    /// The `ETag` field value: the tag in quotes.
    pub fn header_value(&self) -> HeaderValue {
        // base64url and two quotes are always a valid field value; the
        // fallback is never taken, and would only cost caching.
        HeaderValue::try_from(self.to_string()).unwrap_or(HeaderValue::from_static("\"\""))
    }

    /// Whether the request's `If-None-Match` matches this tag, so the answer
    /// is 304: `*`, or any tag in its lists equal under the weak comparison
    /// (`W/` ignored). A malformed field matches nothing.
    pub fn matches_if_none_match(&self, headers: &HeaderMap) -> bool {
        // A list field may be split over several lines; each is parsed alone.
        headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .any(|field| self.if_none_match_field(field.as_bytes()))
    }

    /// Whether the request's `If-Range` lets its `Range` be served: true
    /// when there is no `If-Range`, or it is this tag under the strong
    /// comparison. A weak tag or a date (files carry no `Last-Modified`)
    /// never matches, and then the whole file is sent.
    pub fn allows_range(&self, headers: &HeaderMap) -> bool {
        let mut fields = headers.get_all(header::IF_RANGE).iter();
        match (fields.next(), fields.next()) {
            (None, _) => true,
            (Some(field), None) => self.if_range_field(field.as_bytes()),
            // If-Range holds one validator; two fields are malformed.
            (Some(_), Some(_)) => false,
        }
    }

    fn if_none_match_field(&self, field: &[u8]) -> bool {
        let field = field.trim_ascii();
        if field == b"*" {
            // The server calls this only for a file it has, so `*` (any
            // current representation) matches.
            return true;
        }
        parse_tag_list(field)
            .is_some_and(|tags| tags.iter().any(|tag| tag.opaque == self.opaque.as_bytes()))
    }

    fn if_range_field(&self, field: &[u8]) -> bool {
        match parse_tag_list(field.trim_ascii()).as_deref() {
            Some([tag]) => !tag.weak && tag.opaque == self.opaque.as_bytes(),
            _ => false,
        }
    }
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.opaque)
    }
}

/// An entity-tag as sent by a client.
#[derive(Debug, PartialEq, Eq)]
struct Tag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

/// Parses `#entity-tag` (`"a", W/"b"`); None if it is malformed. It scans
/// rather than splits on commas, because a comma is allowed inside a tag.
fn parse_tag_list(field: &[u8]) -> Option<Vec<Tag<'_>>> {
    let mut tags = Vec::new();
    let mut rest = field;
    loop {
        // Empty elements and OWS before an element are allowed.
        rest = trim_start(rest, |b| matches!(b, b' ' | b'\t' | b','));
        if rest.is_empty() {
            return Some(tags);
        }
        let (weak, quoted) = match rest.strip_prefix(b"W/") {
            Some(quoted) => (true, quoted),
            None => (false, rest),
        };
        let inner = quoted.strip_prefix(b"\"")?;
        let end = inner.iter().position(|&b| b == b'"')?;
        let opaque = &inner[..end];
        if !opaque.iter().all(|&b| is_etagc(b)) {
            return None;
        }
        tags.push(Tag { weak, opaque });
        rest = trim_start(&inner[end + 1..], |b| matches!(b, b' ' | b'\t'));
        if rest.is_empty() {
            return Some(tags);
        }
        // Between two tags there must be a comma.
        rest = rest.strip_prefix(b",")?;
    }
}

/// `etagc = %x21 / %x23-7E / obs-text`.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

fn trim_start(bytes: &[u8], strip: impl Fn(u8) -> bool) -> &[u8] {
    let start = bytes.iter().position(|&b| !strip(b)).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag() -> EntityTag {
        EntityTag::from_sha256(&[0xff; 32])
    }

    fn headers(name: header::HeaderName, fields: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for field in fields {
            headers.append(name.clone(), HeaderValue::from_str(field).unwrap());
        }
        headers
    }

    fn if_none_match(fields: &[&str]) -> bool {
        tag().matches_if_none_match(&headers(header::IF_NONE_MATCH, fields))
    }

    fn if_range(fields: &[&str]) -> bool {
        tag().allows_range(&headers(header::IF_RANGE, fields))
    }

    #[test]
    fn the_tag_is_the_sha256_in_base64url_without_padding_in_quotes() {
        let tag = tag();
        assert_eq!(tag.opaque().len(), 43);
        // 256 one bits: 42 groups of six, then 1111 padded with zeros.
        assert_eq!(tag.opaque(), "_".repeat(42) + "8");
        assert_eq!(tag.header_value(), format!("\"{}\"", tag.opaque()));
        assert_eq!(tag.to_string(), format!("\"{}\"", tag.opaque()));
    }

    #[test]
    fn if_none_match_matches_the_tag_weakly_in_any_list_or_star() {
        let t = tag().to_string();
        let o = tag().opaque().to_owned();
        assert!(if_none_match(&[&t]));
        assert!(if_none_match(&[&format!("W/{t}")]));
        assert!(if_none_match(&["*"]));
        assert!(if_none_match(&[" * "]));
        assert!(if_none_match(&[&format!("\"a\", W/\"b\" ,{t}")]));
        assert!(if_none_match(&[&format!(",,{t},,")]));
        assert!(if_none_match(&[&format!("\"a,b\", {t}")]));
        assert!(if_none_match(&["\"a\"", &t]));
        assert!(if_none_match(&["garbage", &t]));
        assert!(!if_none_match(&[]));
        assert!(!if_none_match(&[""]));
        assert!(!if_none_match(&["\"a\", W/\"b\""]));
        assert!(!if_none_match(&[&o]));
        assert!(!if_none_match(&[&format!("w/{t}")]));
        assert!(!if_none_match(&[&format!("\"{o}x\"")]));
        assert!(!if_none_match(&[&format!("\"{}\"", &o[1..])]));
        // Malformed fields match nothing, even if the tag is in them.
        assert!(!if_none_match(&[&format!("{t}junk")]));
        assert!(!if_none_match(&[&format!("{t} {t}")]));
        assert!(!if_none_match(&[&format!("{t}, \"open")]));
        assert!(!if_none_match(&[&format!("*, {t}")]));
        assert!(!if_none_match(&[&format!("W/ {t}")]));
    }

    #[test]
    fn if_range_allows_the_range_only_for_the_same_strong_tag() {
        let t = tag().to_string();
        assert!(if_range(&[]));
        assert!(if_range(&[&t]));
        assert!(if_range(&[&format!(" {t} ")]));
        assert!(!if_range(&[&format!("W/{t}")]));
        assert!(!if_range(&["\"other\""]));
        assert!(!if_range(&["Wed, 21 Oct 2015 07:28:00 GMT"]));
        assert!(!if_range(&["*"]));
        assert!(!if_range(&[""]));
        assert!(!if_range(&[&format!("{t}, {t}")]));
        assert!(!if_range(&[&t, &t]));
    }

    #[test]
    fn tag_lists_parse_commas_inside_quotes_and_refuse_junk() {
        assert_eq!(
            parse_tag_list(b"\"a,b\" , W/\"\""),
            Some(vec![
                Tag {
                    weak: false,
                    opaque: b"a,b"
                },
                Tag {
                    weak: true,
                    opaque: b""
                }
            ])
        );
        assert_eq!(parse_tag_list(b""), Some(vec![]));
        for junk in [
            &b"a"[..],
            b"\"a",
            b"\"a\"b",
            b"\"a\" \"b\"",
            b"W\"a\"",
            b"\"a b\"",
            b"\"a\x7f\"",
        ] {
            assert_eq!(
                parse_tag_list(junk),
                None,
                "{:?}",
                String::from_utf8_lossy(junk)
            );
        }
        assert_eq!(
            parse_tag_list(b"\"\xff\""),
            Some(vec![Tag {
                weak: false,
                opaque: b"\xff"
            }])
        );
    }
}
