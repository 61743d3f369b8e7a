//! Callback ids: 128 bits from the operating system's random source, as URL-safe text.
//!
//! An id is the only authority needed to complete its callback, so it must be
//! unguessable: it never comes from a seeded generator (`fastrand`), only from the OS
//! (`getrandom`). Ids are written `cb_` followed by the 16 bytes in unpadded base64url
//! (RFC 4648 §5): 25 characters of `[A-Za-z0-9_-]`, safe in a URL path segment without
//! escaping. The prefix makes them recognisable to people and to secret scanners.

/// How many random bytes an id holds.
const BYTES: usize = 16;

/// What every id starts with.
const PREFIX: &str = "cb_";

/// Length of an id in characters: the prefix and ⌈16 × 8 / 6⌉ base64 digits.
pub(crate) const ID_LEN: usize = PREFIX.len() + (BYTES * 8).div_ceil(6);

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A new callback id.
pub(crate) fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(encode(&bytes))
}

/// Whether `id` has the shape of an id this module generates; anything else is unknown
/// without a store lookup.
pub(crate) fn is_well_formed(id: &str) -> bool {
    id.len() == ID_LEN
        && id.starts_with(PREFIX)
        && id.as_bytes()[PREFIX.len()..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(ID_LEN);
    out.push_str(PREFIX);
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
        // A chunk of k bytes carries k + 1 base64 digits (no padding).
        for i in 0..=chunk.len() {
            let digit = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[digit as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_rfc_4648_base64url_without_padding() {
        // RFC 4648 §10 test vectors, in the URL-safe alphabet.
        assert_eq!(encode(b"foobar"), "cb_Zm9vYmFy");
        assert_eq!(encode(b"fooba"), "cb_Zm9vYmE");
        assert_eq!(encode(b"f"), "cb_Zg");
        assert_eq!(encode(&[0xfb, 0xff, 0xbf]), "cb_-_-_");
    }

    #[test]
    fn generated_ids_are_well_formed_and_distinct() {
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| generate().unwrap()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), ID_LEN);
            assert!(is_well_formed(id), "{id}");
        }
    }

    #[test]
    fn malformed_ids_are_recognised() {
        let id = generate().unwrap();
        assert!(!is_well_formed(&id[1..]));
        assert!(!is_well_formed(&format!("{id}x")));
        assert!(!is_well_formed(&id.replacen("cb_", "xx_", 1)));
        assert!(!is_well_formed(&format!("{}/", &id[..ID_LEN - 1])));
        assert!(!is_well_formed(""));
    }
}
