//! Comparing secrets.

/// Whether `presented` equals `expected`, in time that depends only on the
/// presented length (which its sender knows): every byte is compared, and
/// a length difference is folded into the result rather than returned early.
pub fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let mut difference = expected.len() ^ presented.len();
    for (i, byte) in presented.iter().enumerate() {
        let against = if expected.is_empty() {
            0
        } else {
            expected[i % expected.len()]
        };
        difference |= usize::from(against ^ byte);
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_equal_whatever_the_lengths() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(constant_time_eq(b"", b""));
        for presented in [&b"s3cre"[..], b"s3cret!", b"", b"S3cret", b"s3crets3cret"] {
            assert!(!constant_time_eq(b"s3cret", presented), "{presented:?}");
        }
        assert!(!constant_time_eq(b"", b"x"));
    }
}
