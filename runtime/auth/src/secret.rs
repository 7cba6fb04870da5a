/// Whether two secrets are equal, in time that depends on neither where
/// they differ nor the presented length: both are hashed first, and the
/// digests compared without early exit.
pub fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let a = Sha256::digest(expected);
    let b = Sha256::digest(presented);
    let difference = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_equal_whatever_the_lengths() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret!"));
        assert!(!constant_time_eq(b"s3cret", b""));
        assert!(!constant_time_eq(b"s3cret", b"S3cret"));
        assert!(constant_time_eq(b"", b""));
    }
}
