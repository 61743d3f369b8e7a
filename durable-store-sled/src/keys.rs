//! The on-disk layout: every key and value the store writes, in sled's default tree.
//!
//! | key | value |
//! |---|---|
//! | `e/` id | the [`ExecutionRecord`](durable_core::ExecutionRecord), value envelope (bincode) |
//! | `i/` id | the execution's input, exactly the bytes the engine handed to `create` |
//! | `h/` escaped id `00 01` number | one [`HistoryEntry`](durable_core::HistoryEntry), value envelope (bincode) |
//! | `t/` wake_at id | empty: the timer index |
//!
//! - id is the execution id's UTF-8 bytes. In `e/`, `i/` and `t/` keys it runs to the end
//!   of the key, so it needs no delimiter: `e/` and `i/` keys are only looked up whole or
//!   scanned in full, and in `t/` keys it follows a fixed-width field.
//! - In `h/` keys the id is followed by more data and the history of one id is read with a
//!   prefix scan, so the id must not be a prefix of another id's encoding: every `00` byte
//!   of the id is written as `00 ff`, and the id ends with `00 01`. No escaped id contains
//!   `00 01`, so `h/` escaped("a") `00 01` is a prefix of the keys of "a" only, never of
//!   "a\0b"'s. The escape preserves byte order.
//! - number and wake_at (milliseconds since the Unix epoch) are `u64` big-endian, so byte
//!   order is numeric order: history scans run oldest first and the timer index runs
//!   earliest first, ties in id order.
//!
//! Envelopes carry their format version (see `durable_core::codec`); a value that does not
//! decode is reported as [`StoreError::Corrupt`] naming its key.

use durable_core::{decode_value, Codec, StoreError, Timestamp};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Prefix of execution records.
pub(crate) const EXECUTION: &[u8] = b"e/";
/// Prefix of execution inputs.
pub(crate) const INPUT: &[u8] = b"i/";
/// Prefix of history entries.
pub(crate) const HISTORY: &[u8] = b"h/";
/// Prefix of the timer index.
pub(crate) const TIMER: &[u8] = b"t/";

const ID_END: [u8; 2] = [0x00, 0x01];
const ESCAPED_ZERO: [u8; 2] = [0x00, 0xff];

fn prefixed(prefix: &[u8], id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + id.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The key of `id`'s record.
pub(crate) fn execution(id: &str) -> Vec<u8> {
    prefixed(EXECUTION, id)
}

/// The key of `id`'s input.
pub(crate) fn input(id: &str) -> Vec<u8> {
    prefixed(INPUT, id)
}

/// The prefix shared by every history key of `id`, and by no other id's.
pub(crate) fn history_prefix(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(HISTORY.len() + id.len() + ID_END.len() + 8);
    key.extend_from_slice(HISTORY);
    for &byte in id.as_bytes() {
        if byte == 0 {
            key.extend_from_slice(&ESCAPED_ZERO);
        } else {
            key.push(byte);
        }
    }
    key.extend_from_slice(&ID_END);
    key
}

/// The key of history entry `number` under a prefix from [`history_prefix`].
pub(crate) fn history_key(mut prefix: Vec<u8>, number: u64) -> Vec<u8> {
    prefix.extend_from_slice(&number.to_be_bytes());
    prefix
}

/// The timer index key of `id` waking at `at`.
pub(crate) fn timer(at: Timestamp, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(TIMER.len() + 8 + id.len());
    key.extend_from_slice(TIMER);
    key.extend_from_slice(&at.as_millis().to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// Reads a timer index key back.
pub(crate) fn parse_timer(key: &[u8]) -> Result<(Timestamp, String), StoreError> {
    let corrupt = |message: &str| StoreError::Corrupt {
        key: describe(key),
        source: durable_core::CodecError::Decode {
            message: message.to_owned(),
        },
    };
    let rest = key
        .strip_prefix(TIMER)
        .ok_or_else(|| corrupt("not a timer key"))?;
    if rest.len() < 8 {
        return Err(corrupt("timer key too short for its wake-up time"));
    }
    let (at, id) = rest.split_at(8);
    let mut millis = [0; 8];
    millis.copy_from_slice(at);
    let id =
        std::str::from_utf8(id).map_err(|_| corrupt("timer key holds an id that is not UTF-8"))?;
    Ok((
        Timestamp::from_millis(u64::from_be_bytes(millis)),
        id.to_owned(),
    ))
}

/// A key as it appears in error messages.
pub(crate) fn describe(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) => text.escape_debug().to_string(),
        Err(_) => key.escape_ascii().to_string(),
    }
}

/// Encodes a record for storage.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    Codec::Bincode
        .encode_value(value)
        .map_err(StoreError::backend)
}

/// Decodes the value stored under `key`.
pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    decode_value(bytes).map_err(|source| StoreError::Corrupt {
        key: describe(key),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_prefixes_of_different_ids_never_nest() {
        let ids = [
            "", "a", "a\0", "a\0b", "a\u{1}", "a/b", "a\0\u{1}", "\0", "\0\0",
        ];
        for x in ids {
            for y in ids {
                if x != y {
                    let (px, py) = (history_prefix(x), history_prefix(y));
                    assert!(!py.starts_with(&px), "{x:?} is a prefix of {y:?}");
                }
            }
        }
    }

    #[test]
    fn history_prefixes_sort_like_ids() {
        let mut ids = vec!["b", "a\0b", "a", "a\0", "a\u{1}", "", "\0", "a/"];
        let mut by_key = ids.clone();
        ids.sort();
        by_key.sort_by_key(|id| history_prefix(id));
        assert_eq!(ids, by_key);
    }

    #[test]
    fn timer_keys_round_trip_and_bad_ones_are_corrupt() {
        let key = timer(Timestamp::from_millis(42), "x/\0y");
        assert_eq!(
            parse_timer(&key).unwrap(),
            (Timestamp::from_millis(42), "x/\0y".to_owned())
        );
        assert!(matches!(
            parse_timer(b"t/123"),
            Err(StoreError::Corrupt { .. })
        ));
        let mut bad = timer(Timestamp::from_millis(1), "");
        bad.push(0xff);
        assert!(matches!(parse_timer(&bad), Err(StoreError::Corrupt { .. })));
    }
}
