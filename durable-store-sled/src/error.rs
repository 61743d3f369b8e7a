//! How the store reports what went wrong below it: I/O, sled's errors, sled's panics.

use std::any::Any;
use std::path::Path;

use durable_core::{CodecError, StoreError};

/// An I/O error, saying what the store was doing and to which path.
pub(crate) fn io_error(error: std::io::Error, doing: &str, path: &Path) -> StoreError {
    StoreError::backend(std::io::Error::new(
        error.kind(),
        format!("{doing} {}: {error}", path.display()),
    ))
}

/// A store-level corruption: `what` is the file or record, `message` what was found.
pub(crate) fn corrupt(what: impl Into<String>, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: what.into(),
        source: CodecError::Decode {
            message: message.into(),
        },
    }
}

/// One of sled's errors: a checksum failure in its files is [`StoreError::Corrupt`],
/// anything else [`StoreError::Backend`].
pub(crate) fn sled_error(error: sled::Error) -> StoreError {
    match error {
        sled::Error::Corruption { .. } => corrupt(
            "sled/db",
            format!("sled found damaged data in its files ({error})"),
        ),
        other => StoreError::backend(other),
    }
}

/// sled panicked while the store was `doing` something: sled 0.34 asserts on some
/// damaged data instead of returning an error, and a panic must not reach the caller.
pub(crate) fn sled_panicked(payload: Box<dyn Any + Send>, doing: &str) -> StoreError {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    corrupt(
        "sled/db",
        format!("sled panicked while {doing}, which damaged data can cause: {message}"),
    )
}
