//! Callback ids: 128 bits from the operating system's random source, as URL-safe text,
//! after the time the id was made.
//!
//! An id is the only authority needed to complete its callback, so it must be
//! unguessable: its secret never comes from a seeded generator (`fastrand`), only from the
//! OS (`getrandom`). Ids are written `cb_`, then the creation time (milliseconds since the
//! Unix epoch, 48 bits) in 8 digits of an alphabet in ASCII order, then the 16 random bytes
//! in unpadded base64url (RFC 4648 §5): 33 characters of `[A-Za-z0-9_-]`, safe in a URL
//! path segment without escaping. The prefix makes them recognisable to people and to
//! secret scanners.
//!
//! Why the time: ids then sort in the order they were made, so a store's index of them
//! grows at one end, like its timer index. Random ids land all over the index, and sled
//! rewrites (and keeps in its log until it cleans it) a page per insert: about 350 bytes
//! on disk per waiting callback (`cargo bench --bench callbacks`). The time tells the
//! holder of an id only when it was made, which the holder usually knows anyway.
//!
//! Ids made before the time was added (`cb_` and the 22 random digits alone) stay valid.

/// How many random bytes an id holds.
const BYTES: usize = 16;

/// What every id starts with.
const PREFIX: &str = "cb_";

/// Digits of the creation time: 48 bits.
const TIME_DIGITS: usize = 8;

/// Digits of the random part: ⌈16 × 8 / 6⌉.
const SECRET_DIGITS: usize = (BYTES * 8).div_ceil(6);

/// Length of an id in characters.
pub(crate) const ID_LEN: usize = PREFIX.len() + TIME_DIGITS + SECRET_DIGITS;

/// Length of an id made before ids carried their creation time.
const LEGACY_ID_LEN: usize = PREFIX.len() + SECRET_DIGITS;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The same 64 characters in ASCII order, for the time: its digits sort as its value.
const ORDERED: &[u8; 64] = b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/// A new callback id.
pub(crate) fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; BYTES];
    getrandom::fill(&mut bytes)?;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    Ok(encode(millis, &bytes))
}

/// Whether `id` has the shape of an id this module generates (now or before ids carried
/// their creation time); anything else is unknown without a store lookup.
pub(crate) fn is_well_formed(id: &str) -> bool {
    (id.len() == ID_LEN || id.len() == LEGACY_ID_LEN)
        && id.starts_with(PREFIX)
        && id.as_bytes()[PREFIX.len()..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// The id made at `millis` (its low 48 bits) with secret `bytes`.
fn encode(millis: u128, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(ID_LEN);
    out.push_str(PREFIX);
    for i in (0..TIME_DIGITS).rev() {
        let digit = (millis >> (6 * i)) & 0x3f;
        out.push(char::from(ORDERED[digit as usize]));
    }
    push_base64url(&mut out, bytes);
    out
}

/// Appends `bytes` in unpadded base64url.
fn push_base64url(out: &mut String, bytes: &[u8]) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base64url(bytes: &[u8]) -> String {
        let mut out = String::new();
        push_base64url(&mut out, bytes);
        out
    }

    #[test]
    fn the_secret_is_rfc_4648_base64url_without_padding() {
        // RFC 4648 §10 test vectors, in the URL-safe alphabet.
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(b"fooba"), "Zm9vYmE");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(&[0xfb, 0xff, 0xbf]), "-_-_");
    }

    #[test]
    fn ids_sort_by_their_time() {
        assert!(ORDERED.windows(2).all(|pair| pair[0] < pair[1]));
        let secret = [0xff; BYTES];
        let times = [
            0,
            1,
            63,
            64,
            1_700_000_000_000,
            1_700_000_000_001,
            (1 << 48) - 1,
        ];
        let ids: Vec<String> = times.iter().map(|&t| encode(t, &secret)).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        assert_eq!(ids[0], format!("cb_--------{}", base64url(&secret)));
        for id in &ids {
            assert_eq!(id.len(), ID_LEN);
            assert!(is_well_formed(id), "{id}");
        }
    }

    #[test]
    fn ids_made_before_the_time_was_added_stay_well_formed() {
        let legacy = format!("cb_{}", base64url(&[7; BYTES]));
        assert_eq!(legacy.len(), LEGACY_ID_LEN);
        assert!(is_well_formed(&legacy));
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
