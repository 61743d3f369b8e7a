//! Conversions between the engine's values and the columns that hold them, and the
//! errors of the PostgreSQL client.
//!
//! Ids, workflow names, operation keys and tokens are `bytea`: PostgreSQL's `text`
//! cannot hold NUL, and `bytea` compares by bytes, which is the order the [`Store`]
//! contract asks for. Times are `bigint` milliseconds since the Unix epoch; a wake-up
//! time beyond `i64::MAX` ms (292 million years) is refused, while bounds and lease
//! expiries that far out are clamped, which changes no answer. Records, history entries
//! and operations are stored whole as value envelopes (bincode, with the format version),
//! beside the columns the queries need.
//!
//! [`Store`]: durable_core::Store

use durable_core::{decode_value, Codec, Status, StoreError, Timestamp};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Status codes in the `status` column.
pub(crate) const RUNNING: i16 = 0;
pub(crate) const SUSPENDED: i16 = 1;
pub(crate) const COMPLETED: i16 = 2;
pub(crate) const FAILED: i16 = 3;
pub(crate) const PARKED: i16 = 4;
pub(crate) const CANCELLED: i16 = 5;

pub(crate) fn status_code(status: Status) -> Result<i16, StoreError> {
    Ok(match status {
        Status::Running => RUNNING,
        Status::Suspended => SUSPENDED,
        Status::Completed => COMPLETED,
        Status::Failed => FAILED,
        Status::Parked => PARKED,
        Status::Cancelled => CANCELLED,
        other => {
            return Err(StoreError::Invalid {
                message: format!("status {other:?} is unknown to the PostgreSQL store"),
            })
        }
    })
}

/// A time bound or lease expiry as a column value, clamped.
pub(crate) fn millis(at: Timestamp) -> i64 {
    i64::try_from(at.as_millis()).unwrap_or(i64::MAX)
}

/// A wake-up time as a column value, refused if it does not fit.
pub(crate) fn wake_at(id: &str, at: Option<Timestamp>) -> Result<Option<i64>, StoreError> {
    at.map(|at| {
        i64::try_from(at.as_millis()).map_err(|_| StoreError::Invalid {
            message: format!(
                "execution {id:?} has a wake-up time of {at}, beyond what the PostgreSQL store keeps ({} ms)",
                i64::MAX
            ),
        })
    })
    .transpose()
}

pub(crate) fn timestamp(millis: i64) -> Timestamp {
    Timestamp::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// A sequence number or count as a column value.
pub(crate) fn int(what: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Invalid {
        message: format!("{what} {value} is too large for the PostgreSQL store"),
    })
}

pub(crate) fn owner(owner: u128) -> Vec<u8> {
    owner.to_be_bytes().to_vec()
}

pub(crate) fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    Codec::Bincode
        .encode_value(value)
        .map_err(|source| StoreError::Corrupt {
            key: what.to_owned(),
            source,
        })
}

pub(crate) fn decode<T: DeserializeOwned>(
    what: impl FnOnce() -> String,
    bytes: &[u8],
) -> Result<T, StoreError> {
    decode_value(bytes).map_err(|source| StoreError::Corrupt {
        key: what(),
        source,
    })
}

/// A column that must hold UTF-8 (an id or key written from a `String`).
pub(crate) fn text(what: &str, bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|e| StoreError::Corrupt {
        key: what.to_owned(),
        source: durable_core::CodecError::Decode {
            message: format!("not UTF-8: {e}"),
        },
    })
}

/// The client's errors are backend errors, except that a closed pool means a closed
/// store.
pub(crate) fn pg(error: tokio_postgres::Error) -> StoreError {
    StoreError::backend(error)
}

pub(crate) fn pool(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        deadpool_postgres::PoolError::Backend(e) => StoreError::backend(e),
        other => StoreError::backend(other),
    }
}

/// Whether a failed transaction may simply run again: a deadlock or serialization
/// failure, which PostgreSQL resolves by aborting one of the transactions involved.
pub(crate) fn retryable(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(
        error.code(),
        Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

/// Whether an error is a unique violation (a token taken by a concurrent commit).
pub(crate) fn unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// The payload of a notification that an execution finished (ids may hold any byte, a
/// payload only text).
pub(crate) fn finished_payload(id: &str) -> String {
    let mut payload = String::with_capacity(1 + 2 * id.len());
    payload.push('f');
    for b in id.as_bytes() {
        payload.push_str(&format!("{b:02x}"));
    }
    payload
}

/// The id in a finished payload, `None` if it is not one.
pub(crate) fn parse_finished(payload: &str) -> Option<String> {
    let hex = payload.strip_prefix('f')?.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes = hex
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// The payload of a notification that executions may be ready to run.
pub(crate) const READY_PAYLOAD: &str = "r";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_payloads_carry_any_id() {
        for id in ["a", "", "a\0b", "é/\u{1}", &"x".repeat(1024)] {
            assert_eq!(parse_finished(&finished_payload(id)).as_deref(), Some(id));
        }
        assert_eq!(parse_finished("r"), None);
        assert_eq!(parse_finished("f0"), None);
        assert_eq!(parse_finished("fzz"), None);
    }

    #[test]
    fn wake_up_times_that_do_not_fit_are_refused() {
        let far = Timestamp::from_millis(u64::MAX);
        assert!(matches!(
            wake_at("x", Some(far)),
            Err(StoreError::Invalid { .. })
        ));
        assert_eq!(
            wake_at("x", Some(Timestamp::from_millis(5))).unwrap(),
            Some(5)
        );
        assert_eq!(millis(far), i64::MAX);
    }
}
