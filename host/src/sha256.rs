//! sha256 as the host writes and checks it: lowercase hex, 64 digits.

use sha2::{Digest, Sha256};

/// The lowercase hex sha256 of `bytes`.
pub fn hex_of(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Whether `text` is a sha256 in hex (either case).
pub fn is_hex(text: &str) -> bool {
    text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// Whether two digests (or keyed hashes) are equal, compared without
/// stopping at the first difference, so that the time taken says nothing
/// about how much of one was right.
pub fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_64_lowercase_hex_digits() {
        let digest = hex_of(b"abc");
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_hex(&digest) && is_hex(&digest.to_uppercase()));
        assert!(!is_hex(&digest[1..]) && !is_hex(&digest.replace('b', "g")));
    }
}
