//! The `Range` request header (RFC 9110 §14.2): which bytes of a file a GET
//! asks for.
//!
//! One range is served as a 206; several are answered with the whole file
//! (200), which RFC 9110 allows, rather than with `multipart/byteranges`,
//! which no browser or download manager needs. Anything malformed is
//! ignored, as RFC 9110 asks, so a bad header costs a full download, never
//! an error.

use std::cmp::Ordering;
use std::ops::Range;

use axum::http::{HeaderMap, header};

/// What to answer a GET with, given its `Range` header and the file's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeSelection {
    /// 200 with the whole file: no `Range`, or one that is ignored
    /// (malformed, another unit, several ranges).
    Whole,
    /// 206 with these bytes: never empty, always inside the file.
    Partial(Range<u64>),
    /// 416: the one range asked for has no byte in the file.
    Unsatisfiable,
}

impl RangeSelection {
    /// Reads the request's `Range` fields.
    pub fn from_headers(headers: &HeaderMap, size: u64) -> RangeSelection {
        let mut fields = headers.get_all(header::RANGE).iter();
        match (fields.next(), fields.next()) {
            (Some(field), None) => RangeSelection::parse(field.as_bytes(), size),
            // No field asks for everything; two fields are malformed
            // (`Range` is not a list that may be split across fields).
            _ => RangeSelection::Whole,
        }
    }

    /// Reads one `Range` field value against a file of `size` bytes.
    pub fn parse(value: &[u8], size: u64) -> RangeSelection {
        match single_spec(value) {
            Some(spec) => spec.select(size),
            None => RangeSelection::Whole,
        }
    }
}

/// The `Content-Range` of a 206: `bytes first-last/size`.
pub fn content_range(range: &Range<u64>, size: u64) -> String {
    format!(
        "bytes {}-{}/{size}",
        range.start,
        range.end.saturating_sub(1)
    )
}

/// The `Content-Range` of a 416: `bytes */size`.
pub fn unsatisfied_content_range(size: u64) -> String {
    format!("bytes */{size}")
}

/// One range-spec, positions saturated at `u64::MAX` (no file is that big,
/// so a larger position means the same thing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-`.
    Int { first: u64, last: Option<u64> },
    /// `-length`: the last `length` bytes.
    Suffix(u64),
}

impl Spec {
    /// RFC 9110 §14.1.2–3: an int-range is satisfiable if it starts inside
    /// the file and is clipped to its end; a suffix if it is not empty.
    fn select(self, size: u64) -> RangeSelection {
        match self {
            Spec::Int { first, .. } if first >= size => RangeSelection::Unsatisfiable,
            Spec::Int { first, last } => {
                // last >= first was checked, so the range is not empty.
                let end = last.map_or(size, |last| last.saturating_add(1).min(size));
                RangeSelection::Partial(first..end)
            }
            Spec::Suffix(0) => RangeSelection::Unsatisfiable,
            // A non-empty suffix of an empty file is satisfiable by the RFC,
            // but a 206 cannot describe zero bytes: send the (empty) whole.
            Spec::Suffix(_) if size == 0 => RangeSelection::Whole,
            Spec::Suffix(length) => RangeSelection::Partial(size - length.min(size)..size),
        }
    }
}

/// The range-spec of a `bytes=` header holding exactly one; None for
/// anything else (malformed, another unit, several ranges), all of which
/// mean the whole file.
fn single_spec(value: &[u8]) -> Option<Spec> {
    let value = std::str::from_utf8(value).ok()?.trim_matches(is_ows);
    let (unit, set) = value.split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    // A list: OWS around commas, and empty elements are allowed and ignored
    // (RFC 9110 §5.6.1.2).
    let mut specs = set
        .split(',')
        .map(|spec| spec.trim_matches(is_ows))
        .filter(|spec| !spec.is_empty());
    let spec = specs.next()?;
    if specs.next().is_some() {
        return None;
    }
    parse_spec(spec)
}

fn parse_spec(spec: &str) -> Option<Spec> {
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return Some(Spec::Suffix(decimal(last)?));
    }
    let first_pos = decimal(first)?;
    if last.is_empty() {
        return Some(Spec::Int {
            first: first_pos,
            last: None,
        });
    }
    let last_pos = decimal(last)?;
    // Compared as written, not as saturated, so two positions past u64::MAX
    // are still told apart. `last < first` makes the header invalid.
    if compare_decimal(last, first) == Ordering::Less {
        return None;
    }
    Some(Spec::Int {
        first: first_pos,
        last: Some(last_pos),
    })
}

/// `1*DIGIT` as a number, saturating at `u64::MAX`. `str::parse` alone would
/// also take a leading `+`.
fn decimal(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Only digits, so the one possible failure is overflow.
    Some(digits.parse().unwrap_or(u64::MAX))
}

/// Orders two runs of digits by value, whatever their length.
fn compare_decimal(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::RangeSelection::{Partial, Unsatisfiable, Whole};
    use super::*;

    const HUGE: &str = "99999999999999999999999999";

    #[track_caller]
    fn check(cases: &[(&str, u64, RangeSelection)]) {
        for (header, size, expected) in cases {
            assert_eq!(
                RangeSelection::parse(header.as_bytes(), *size),
                *expected,
                "Range: {header:?} on {size} bytes"
            );
        }
    }

    #[test]
    fn one_range_is_served_clipped_to_the_file() {
        check(&[
            ("bytes=0-4", 10, Partial(0..5)),
            ("bytes=0-0", 10, Partial(0..1)),
            ("bytes=9-9", 10, Partial(9..10)),
            ("bytes=5-", 10, Partial(5..10)),
            ("bytes=0-", 10, Partial(0..10)),
            ("bytes=-3", 10, Partial(7..10)),
            ("bytes=-10", 10, Partial(0..10)),
            // Past the end: clipped (RFC 9110 §14.1.2), not refused.
            ("bytes=0-99", 10, Partial(0..10)),
            ("bytes=8-20", 10, Partial(8..10)),
            ("bytes=-30", 10, Partial(0..10)),
            ("bytes=0005-0009", 10, Partial(5..10)),
        ]);
    }

    #[test]
    fn a_range_with_no_byte_in_the_file_is_unsatisfiable() {
        check(&[
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=10-20", 10, Unsatisfiable),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=-000", 10, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=0-0", 0, Unsatisfiable),
            ("bytes=-0", 0, Unsatisfiable),
        ]);
    }

    #[test]
    fn a_suffix_of_an_empty_file_is_the_empty_whole() {
        check(&[("bytes=-5", 0, Whole), ("bytes=-1", 0, Whole)]);
    }

    #[test]
    fn huge_numbers_saturate_instead_of_overflowing() {
        let max = u64::MAX;
        check(&[
            (&format!("bytes=0-{HUGE}"), 10, Partial(0..10)),
            (&format!("bytes={HUGE}-"), 10, Unsatisfiable),
            (&format!("bytes={HUGE}-{HUGE}"), 10, Unsatisfiable),
            (&format!("bytes=-{HUGE}"), 10, Partial(0..10)),
            (&format!("bytes=0-{max}"), max, Partial(0..max)),
            (&format!("bytes=0-{HUGE}"), max, Partial(0..max)),
            (&format!("bytes={max}-{max}"), max, Unsatisfiable),
            (&format!("bytes=-{max}"), max, Partial(0..max)),
            (&format!("bytes=-{HUGE}"), max, Partial(0..max)),
            (&format!("bytes={}-", max - 1), max, Partial(max - 1..max)),
            // Both past u64::MAX, last < first: invalid, not equal.
            (
                "bytes=99999999999999999999999999-99999999999999999999999998",
                10,
                Whole,
            ),
            (&format!("bytes={HUGE}-5"), 10, Whole),
        ]);
    }

    #[test]
    fn an_inverted_range_is_ignored() {
        check(&[
            ("bytes=5-2", 10, Whole),
            ("bytes=1-0", 10, Whole),
            ("bytes=0010-9", 100, Whole),
            ("bytes=5-2", 0, Whole),
        ]);
    }

    #[test]
    fn whitespace_is_allowed_only_around_list_elements() {
        check(&[
            (" bytes=0-4 ", 10, Partial(0..5)),
            ("\tbytes=0-4\t", 10, Partial(0..5)),
            ("bytes= 0-4", 10, Partial(0..5)),
            ("bytes=0-4 ,", 10, Partial(0..5)),
            ("bytes=, ,0-4,,", 10, Partial(0..5)),
            ("bytes = 0-4", 10, Whole),
            ("bytes =0-4", 10, Whole),
            ("bytes=0 -4", 10, Whole),
            ("bytes=0- 4", 10, Whole),
            ("bytes=0-\t4", 10, Whole),
            ("bytes=- 3", 10, Whole),
            ("bytes=0-4\n", 10, Whole),
        ]);
    }

    #[test]
    fn other_units_and_malformed_headers_mean_the_whole_file() {
        check(&[
            ("", 10, Whole),
            ("bytes", 10, Whole),
            ("bytes=", 10, Whole),
            ("bytes=,", 10, Whole),
            ("bytes=-", 10, Whole),
            ("bytes=--5", 10, Whole),
            ("bytes=1-2-3", 10, Whole),
            ("bytes=+1-5", 10, Whole),
            ("bytes=1-+5", 10, Whole),
            ("bytes=-+5", 10, Whole),
            ("bytes=0x1-5", 10, Whole),
            ("bytes=1.5-2", 10, Whole),
            ("bytes=a-b", 10, Whole),
            ("bytes 0-4", 10, Whole),
            ("bytes:0-4", 10, Whole),
            ("=0-4", 10, Whole),
            ("items=0-4", 10, Whole),
            ("bits=0-4", 10, Whole),
            ("bytesx=0-4", 10, Whole),
            ("bytes=٣-٤", 10, Whole),
        ]);
        // The unit is a token, compared without case.
        check(&[
            ("BYTES=0-4", 10, Partial(0..5)),
            ("Bytes=-2", 10, Partial(8..10)),
        ]);
        assert_eq!(RangeSelection::parse(b"bytes=\xff0-4", 10), Whole);
    }

    #[test]
    fn several_ranges_mean_the_whole_file() {
        check(&[
            ("bytes=0-1,3-4", 10, Whole),
            ("bytes=0-1, 3-4", 10, Whole),
            ("bytes=0-4,0-4", 10, Whole),
            ("bytes=0-1,100-200", 10, Whole),
            ("bytes=100-200,300-400", 10, Whole),
            ("bytes=0-1,-2", 10, Whole),
            ("bytes=0-1,garbage", 10, Whole),
        ]);
    }

    #[test]
    fn two_range_fields_mean_the_whole_file() {
        let mut headers = HeaderMap::new();
        assert_eq!(RangeSelection::from_headers(&headers, 10), Whole);
        headers.append(header::RANGE, HeaderValue::from_static("bytes=0-1"));
        assert_eq!(RangeSelection::from_headers(&headers, 10), Partial(0..2));
        headers.append(header::RANGE, HeaderValue::from_static("bytes=3-4"));
        assert_eq!(RangeSelection::from_headers(&headers, 10), Whole);
    }

    #[test]
    fn content_ranges_name_the_last_byte_not_the_end() {
        assert_eq!(content_range(&(0..5), 10), "bytes 0-4/10");
        assert_eq!(content_range(&(9..10), 10), "bytes 9-9/10");
        assert_eq!(unsatisfied_content_range(0), "bytes */0");
    }
}
