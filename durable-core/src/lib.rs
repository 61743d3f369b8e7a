//! Durable execution for Rust: workflows written as plain `async fn`s that survive
//! crashes, restarts and deploys, without replay.
#![deny(missing_docs)]

mod codec;
mod error;
mod record;
mod store;
mod time;

pub use codec::{decode_value, value_to_json, Codec, FrameReader, FrameWriter, FORMAT_VERSION};
pub use error::{CodecError, Error, StepError, StoreError};
pub use record::{
    Commit, Created, Event, ExecutionRecord, HistoryEntry, ListFilter, PointState, Position, Status,
};
pub use store::{LeaseTable, MemoryStore, Store};
pub use time::{Clock, Sleep, SystemClock, TestClock, Timestamp};
