//! The on-disk layout: every key and value the store writes, in sled's default tree.
//!
//! | key | value |
//! |---|---|
//! | `e/` id | the execution value (below): record, small input, recent history |
//! | `i/` id | the execution's input, exactly the bytes the engine handed to `create`, when it is too large to live in the execution value |
//! | `h/` escaped id `00 01` number | a chunk of history entries, `number` being the last one's (below) |
//! | `t/` wake_at id | empty: the timer index |
//! | `u/` status id | empty: the index of unfinished executions outside the running lists (status `0` running, `1` suspended, `2` parked) |
//! | `r/` group | a running list (below): executions that became running in that group; group is its `u64` number, big-endian |
//! | `o/` escaped id `00 01` key | an operation (below) |
//! | `k/` token | the `o/` key of the operation the token belongs to |
//! | `l/` layout | a layout's description, the bytes the engine handed to `save_layout`; layout is the `u64` fingerprint, big-endian |
//! | `v` | the store's format, `u32` little-endian (3 since the unfinished index and operations, 4 since running lists) |
//! | `m` | the last group of writes: `b'G' 1 \| number: u64 \| digest: u64` (little-endian), its number (see `mark`) and the digest of the tree's contents after it (see `digest`) |
//!
//! - id is the execution id's UTF-8 bytes. In `e/`, `i/` and `t/` keys it runs to the end
//!   of the key, so it needs no delimiter: `e/` and `i/` keys are only looked up whole or
//!   scanned in full, and in `t/` keys it follows a fixed-width field.
//! - In `h/` and `o/` keys the id is followed by more data and one id's entries are read
//!   with a prefix scan, so the id must not be a prefix of another id's encoding: every
//!   `00` byte of the id is written as `00 ff`, and the id ends with `00 01`. No escaped
//!   id contains `00 01`, so `h/` escaped("a") `00 01` is a prefix of the keys of "a" only,
//!   never of "a\0b"'s. The escape preserves byte order. An operation key runs to the end
//!   of its `o/` key.
//! - In `u/` keys a status byte precedes the id, so that the executions with one status
//!   are one prefix scan, in id order.
//! - Running executions are indexed by lists rather than an entry each, because most of
//!   them run for moments: an entry inserted as each one starts and removed as it ends
//!   was two tree writes per short execution, 13 % of the writer's tree writes with 200
//!   executions of 10 steps. An execution that becomes running (created, woken, resumed)
//!   joins the list of the group that made it so (`r/` group), one write per group.
//!   Leaving `Running` writes nothing at once: the writer counts each list's ids still
//!   running there, removes a list whose count reaches 0 and rewrites one with more ids
//!   gone than left, so a list never holds more stale ids than running ones. Listing
//!   running executions reads every list and checks each id's record, so the lists hold
//!   at most 16,384 ids together: beyond that the oldest lists' running executions get a
//!   `u/0` entry each (see `running`), as every running execution had in format 3.
//! - number and wake_at (milliseconds since the Unix epoch) are `u64` big-endian, so byte
//!   order is numeric order: history scans run oldest first and the timer index runs
//!   earliest first, ties in id order.
//!
//! Why so few keys: sled splits a leaf at 16 entries whatever their size, and each leaf
//! costs memory (page table, cache accounting) and log space of its own. A suspended
//! execution is two keys, `e/` and `t/`; a finished one with a short history is one.
//!
//! **Execution value** (layout 3), all integers little-endian:
//! `b'E' 3 | record length: u32 | record | input | history_from: u64 | tail count: u16 |
//! count × entry`, where
//! - record is the [`ExecutionRecord`](durable_core::ExecutionRecord) in a value envelope
//!   (bincode);
//! - input is `0` when the input is under the `i/` key, or `1 | length: u32 | bytes`;
//! - history_from is the number below which history entries are pruned: `history` skips
//!   them, and a chunk is deleted once all its entries are below it;
//! - the tail is the newest history entries, not yet in a chunk; an entry is
//!   `number: u64 | length: u32 | entry`, the entry a
//!   [`HistoryEntry`](durable_core::HistoryEntry) in a value envelope (bincode).
//!
//! When the tail reaches [`HISTORY_CHUNK`] entries or [`HISTORY_TAIL_MAX_BYTES`] bytes of
//! entries, they move, in the same batch, into a
//! **history chunk**: `b'H' 2 | count: u16 | count × entry` under the `h/` key of the last
//! entry's number, so deleting the keys below a number drops only whole chunks below it.
//!
//! An **operation** is an [`OperationRecord`](durable_core::OperationRecord) in a value
//! envelope (bincode).
//!
//! Layouts written before are still read. Layout 2 is layout 3 with `b'E' 2` and a record
//! of the format before operations (no `parent`, no `awaiting`, see `RecordV1`). Layout 1
//! is an execution value that is a bare record envelope of that format (its input under
//! `i/`, no tail, nothing pruned to skip), and `h/` values that are a single entry's
//! envelope under that entry's number. The next commit of such an execution rewrites its
//! value in layout 3. A store of format 2 (no `v` key) or 3 is migrated when it opens
//! (see `format`).
//!
//! A **running list** is `b'R' 1 | count: u32 | count × (length: u32 | id)`.
//!
//! Envelopes carry their format version (see `durable_core::codec`); a value that does not
//! decode is reported as [`StoreError::Corrupt`] naming its key.

use std::sync::Arc;

use durable_core::{
    decode_value, Codec, ExecutionRecord, HistoryEntry, OperationRecord, Position, Status,
    StoreError, Timestamp,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Prefix of execution records.
pub(crate) const EXECUTION: &[u8] = b"e/";
/// Prefix of execution inputs.
pub(crate) const INPUT: &[u8] = b"i/";
/// Prefix of history entries.
pub(crate) const HISTORY: &[u8] = b"h/";
/// Prefix of the timer index.
pub(crate) const TIMER: &[u8] = b"t/";
/// Prefix of the unfinished index.
pub(crate) const UNFINISHED: &[u8] = b"u/";
/// Prefix of the running lists, the index of running executions.
pub(crate) const RUNNING: &[u8] = b"r/";
/// Prefix of operations.
pub(crate) const OPERATION: &[u8] = b"o/";
/// Prefix of the token index.
pub(crate) const TOKEN: &[u8] = b"k/";
/// Prefix of layout descriptions.
pub(crate) const LAYOUT: &[u8] = b"l/";
/// The key of the store's format.
pub(crate) const FORMAT: &[u8] = b"v";
/// The format this build writes.
pub(crate) const FORMAT_VERSION: u32 = 4;
/// The key of the last group's number; no prefix above is a prefix of it.
pub(crate) const GROUP: &[u8] = b"m";

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

/// [`execution`] as sled's buffer, built on the stack: sled keeps a short key inline,
/// so the writer's key of each commit costs no allocation (two per commit were a tenth
/// of the writer's allocations).
pub(crate) fn execution_ivec(id: &str) -> sled::IVec {
    const ON_STACK: usize = 64;
    let len = EXECUTION.len() + id.len();
    if len > ON_STACK {
        return execution(id).into();
    }
    let mut key = [0; ON_STACK];
    key[..EXECUTION.len()].copy_from_slice(EXECUTION);
    key[EXECUTION.len()..len].copy_from_slice(id.as_bytes());
    sled::IVec::from(&key[..len])
}

/// The key of layout `layout`'s description.
pub(crate) fn layout(layout: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(LAYOUT.len() + 8);
    key.extend_from_slice(LAYOUT);
    key.extend_from_slice(&layout.to_be_bytes());
    key
}

/// The key of `id`'s input.
pub(crate) fn input(id: &str) -> Vec<u8> {
    prefixed(INPUT, id)
}

/// The prefix shared by every history key of `id`, and by no other id's.
pub(crate) fn history_prefix(id: &str) -> Vec<u8> {
    escaped(HISTORY, id)
}

/// The prefix shared by every operation key of `id`, and by no other id's.
pub(crate) fn operation_prefix(id: &str) -> Vec<u8> {
    escaped(OPERATION, id)
}

/// The key of operation `key` of execution `id`.
pub(crate) fn operation(id: &str, key: &str) -> Vec<u8> {
    let mut out = operation_prefix(id);
    out.extend_from_slice(key.as_bytes());
    out
}

/// The operation key within an `o/` key under `prefix` (from [`operation_prefix`]).
pub(crate) fn parse_operation_key(prefix: &[u8], key: &[u8]) -> Result<String, StoreError> {
    let rest = key
        .strip_prefix(prefix)
        .ok_or_else(|| corrupt_key(key, "not an operation key of this execution"))?;
    String::from_utf8(rest.to_vec())
        .map_err(|_| corrupt_key(key, "operation key that is not UTF-8"))
}

/// The token index key of `token`.
pub(crate) fn token(token: &str) -> Vec<u8> {
    prefixed(TOKEN, token)
}

/// The unfinished index key of `id` with `status`, `None` for a finished status and for
/// `Running` (indexed by lists or by [`running_entry`], see `running`).
pub(crate) fn unfinished(status: Status, id: &str) -> Option<Vec<u8>> {
    let mut key = unfinished_prefix(status)?;
    key.extend_from_slice(id.as_bytes());
    Some(key)
}

/// The prefix of the unfinished index entries with `status`, `None` for a finished one
/// and for `Running`.
pub(crate) fn unfinished_prefix(status: Status) -> Option<Vec<u8>> {
    let rank = match status {
        Status::Suspended => b'1',
        Status::Parked => b'2',
        _ => return None,
    };
    let mut key = UNFINISHED.to_vec();
    key.push(rank);
    Some(key)
}

/// The id in an unfinished index key under `prefix`.
pub(crate) fn parse_unfinished(prefix: &[u8], key: &[u8]) -> Result<String, StoreError> {
    let rest = key
        .strip_prefix(prefix)
        .ok_or_else(|| corrupt_key(key, "not an unfinished index key"))?;
    String::from_utf8(rest.to_vec())
        .map_err(|_| corrupt_key(key, "unfinished index key with an id that is not UTF-8"))
}

/// The prefix of the entries of running executions that have one (see `running`).
pub(crate) const RUNNING_ENTRY: &[u8] = b"u/0";

/// The entry of running execution `id`, for one that has one (see `running`).
pub(crate) fn running_entry(id: &str) -> Vec<u8> {
    prefixed(RUNNING_ENTRY, id)
}

/// Which running list a key is: the number of the group that wrote it.
pub(crate) type ListKey = u64;

/// The key of running list `list`.
pub(crate) fn running_list(list: ListKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(RUNNING.len() + 8);
    key.extend_from_slice(RUNNING);
    key.extend_from_slice(&list.to_be_bytes());
    key
}

/// The list a running list key names.
pub(crate) fn parse_running_list(key: &[u8]) -> Result<ListKey, StoreError> {
    key.strip_prefix(RUNNING)
        .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| corrupt_key(key, "not a running list key"))
}

/// Encodes a running list: `b'R' 1 | count: u32 | count × (length: u32 | id)`.
pub(crate) fn encode_running_list<'a>(
    ids: impl ExactSizeIterator<Item = &'a str>,
) -> Result<Vec<u8>, StoreError> {
    let count = u32::try_from(ids.len()).map_err(|_| too_large("a running list", ids.len()))?;
    let mut out = Vec::with_capacity(6 + 24 * ids.len());
    out.extend_from_slice(&RUNNING_TAG);
    out.extend_from_slice(&count.to_le_bytes());
    for id in ids {
        put_bytes(&mut out, id.as_bytes())?;
    }
    Ok(out)
}

/// Decodes the running list stored under `key`.
pub(crate) fn decode_running_list(key: &[u8], bytes: &[u8]) -> Result<Vec<String>, StoreError> {
    Ok(running_list_ids(key, bytes)?
        .into_iter()
        .map(str::to_owned)
        .collect())
}

/// The ids of the running list stored under `key`, borrowed from its value.
pub(crate) fn running_list_ids<'a>(
    key: &'a [u8],
    bytes: &'a [u8],
) -> Result<Vec<&'a str>, StoreError> {
    let mut reader = Reader::new(key, bytes);
    reader.tag(RUNNING_TAG, "not a running list")?;
    let mut count = [0; 4];
    count.copy_from_slice(reader.take(4)?);
    let count = u32::from_le_bytes(count);
    let mut ids = Vec::new();
    for _ in 0..count {
        let id = std::str::from_utf8(reader.bytes()?)
            .map_err(|_| reader.corrupt("an id in a running list is not UTF-8"))?;
        ids.push(id);
    }
    reader.end()?;
    Ok(ids)
}

fn corrupt_key(key: &[u8], message: &str) -> StoreError {
    StoreError::Corrupt {
        key: describe(key),
        source: durable_core::CodecError::Decode {
            message: message.to_owned(),
        },
    }
}

/// `prefix`, then `id` escaped so that no id's encoding is a prefix of another's.
fn escaped(prefix: &[u8], id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + id.len() + ID_END.len() + 8);
    key.extend_from_slice(prefix);
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

/// Inputs up to this many bytes live in the execution value; larger ones under `i/`, so
/// that a commit does not rewrite them.
pub(crate) const INLINE_INPUT_MAX: usize = 256;
/// How many history entries the tail of an execution value holds before they move into a
/// chunk of their own.
pub(crate) const HISTORY_CHUNK: usize = 8;
/// How many bytes of history entries the tail holds before they move into a chunk, so a
/// large entry (a long error message) is not rewritten by the commits after it.
pub(crate) const HISTORY_TAIL_MAX_BYTES: usize = 1024;

const EXECUTION_TAG: [u8; 2] = [b'E', 3];
/// Layout 2: layout 3 with a record of the format before operations.
const EXECUTION_TAG_V2: [u8; 2] = [b'E', 2];
const CHUNK_TAG: [u8; 2] = [b'H', 2];
/// The first byte of a value envelope: an execution value or history value of layout 1.
const ENVELOPE_TAG: u8 = b'v';

const GROUP_TAG: [u8; 2] = [b'G', 1];
const RUNNING_TAG: [u8; 2] = [b'R', 1];

/// Encodes the value of [`GROUP`].
pub(crate) fn encode_group(number: u64, digest: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(18);
    out.extend_from_slice(&GROUP_TAG);
    out.extend_from_slice(&number.to_le_bytes());
    out.extend_from_slice(&digest.to_le_bytes());
    out
}

/// Decodes the value of [`GROUP`]: the group's number and digest.
pub(crate) fn decode_group(bytes: &[u8]) -> Result<(u64, u64), StoreError> {
    let mut reader = Reader::new(GROUP, bytes);
    reader.tag(GROUP_TAG, "not a group's number and digest")?;
    let number = reader.u64()?;
    let digest = reader.u64()?;
    reader.end()?;
    Ok((number, digest))
}

/// An encoded history entry and its number. Shared, because every commit of an execution
/// rewrites its tail from the one before, which `recent` may hold for readers.
pub(crate) type Entry = (u64, Arc<[u8]>);

/// An execution value, decoded.
#[derive(Debug, Clone)]
pub(crate) struct Execution {
    pub record: ExecutionRecord,
    /// The input, `None` when it is under the `i/` key.
    pub input: Option<Vec<u8>>,
    pub history_from: u64,
    pub tail: Vec<Entry>,
}

/// Encodes an execution value from an encoded record.
pub(crate) fn encode_execution(
    record: &[u8],
    input: Option<&[u8]>,
    history_from: u64,
    tail: &[Entry],
) -> Result<Vec<u8>, StoreError> {
    let tail_len: usize = tail.iter().map(|(_, e)| 12 + e.len()).sum();
    let input_len = input.map_or(0, |i| 4 + i.len());
    let mut out = Vec::with_capacity(2 + 4 + record.len() + 1 + input_len + 8 + 2 + tail_len);
    out.extend_from_slice(&EXECUTION_TAG);
    put_bytes(&mut out, record)?;
    match input {
        None => out.push(0),
        Some(input) => {
            out.push(1);
            put_bytes(&mut out, input)?;
        }
    }
    out.extend_from_slice(&history_from.to_le_bytes());
    put_entries(&mut out, tail)?;
    Ok(out)
}

/// Decodes the execution value stored under `key`.
pub(crate) fn decode_execution(key: &[u8], bytes: &[u8]) -> Result<Execution, StoreError> {
    if bytes.first() == Some(&ENVELOPE_TAG) {
        return Ok(Execution {
            record: decode::<RecordV1>(key, bytes)?.into(),
            input: None,
            history_from: 0,
            tail: Vec::new(),
        });
    }
    let mut reader = Reader::new(key, bytes);
    let record = reader.record()?;
    let input = match reader.take(1)?[0] {
        0 => None,
        1 => Some(reader.bytes()?.to_vec()),
        _ => return Err(reader.corrupt("bad input marker in an execution value")),
    };
    let history_from = reader.u64()?;
    let tail = reader.entries()?;
    reader.end()?;
    Ok(Execution {
        record,
        input,
        history_from,
        tail,
    })
}

/// Decodes only the record of the execution value stored under `key`.
pub(crate) fn decode_record(key: &[u8], bytes: &[u8]) -> Result<ExecutionRecord, StoreError> {
    if bytes.first() == Some(&ENVELOPE_TAG) {
        return Ok(decode::<RecordV1>(key, bytes)?.into());
    }
    Reader::new(key, bytes).record()
}

/// The record format of layouts 1 and 2, before operations: an [`ExecutionRecord`]
/// without `parent` and `awaiting`. bincode is not self-describing, so an old record is
/// read with its own shape and converted.
#[derive(Serialize, Deserialize)]
struct RecordV1 {
    id: String,
    workflow: String,
    fingerprint: u64,
    seq: u64,
    status: Status,
    position: Option<Position>,
    wake_at: Option<Timestamp>,
    output: Option<Vec<u8>>,
    message: Option<String>,
    history_next: u64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<RecordV1> for ExecutionRecord {
    fn from(old: RecordV1) -> Self {
        ExecutionRecord {
            seq: old.seq,
            status: old.status,
            position: old.position,
            wake_at: old.wake_at,
            output: old.output,
            message: old.message,
            history_next: old.history_next,
            updated_at: old.updated_at,
            ..ExecutionRecord::new(old.id, old.workflow, old.fingerprint, old.created_at)
        }
    }
}

/// Encodes `record` in the record format of layouts 1 and 2, as a store of format 2
/// wrote it (for tests of reading old stores); `parent` and `awaiting` are dropped.
#[cfg(test)]
pub(crate) fn encode_v1(record: &ExecutionRecord) -> Vec<u8> {
    let old = RecordV1 {
        id: record.id.clone(),
        workflow: record.workflow.clone(),
        fingerprint: record.fingerprint,
        seq: record.seq,
        status: record.status,
        position: record.position.clone(),
        wake_at: record.wake_at,
        output: record.output.clone(),
        message: record.message.clone(),
        history_next: record.history_next,
        created_at: record.created_at,
        updated_at: record.updated_at,
    };
    encode(&old).expect("a record encodes")
}

/// Encodes an operation for storage.
pub(crate) fn encode_operation(op: &OperationRecord) -> Result<Vec<u8>, StoreError> {
    encode(op)
}

/// Decodes the operation stored under `key`.
pub(crate) fn decode_operation(key: &[u8], bytes: &[u8]) -> Result<OperationRecord, StoreError> {
    decode(key, bytes)
}

/// Encodes a history chunk.
pub(crate) fn encode_chunk(entries: &[Entry]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(4 + entries.iter().map(|(_, e)| 12 + e.len()).sum::<usize>());
    out.extend_from_slice(&CHUNK_TAG);
    put_entries(&mut out, entries)?;
    Ok(out)
}

/// Decodes the history value stored under `key`: a chunk, or a single entry of layout 1.
pub(crate) fn decode_history(key: &[u8], bytes: &[u8]) -> Result<Vec<HistoryEntry>, StoreError> {
    if bytes.first() == Some(&ENVELOPE_TAG) {
        return Ok(vec![decode(key, bytes)?]);
    }
    let mut reader = Reader::new(key, bytes);
    reader.tag(CHUNK_TAG, "not a history chunk")?;
    let entries = reader.entries()?;
    reader.end()?;
    entries
        .iter()
        .map(|(_, bytes)| decode(key, bytes))
        .collect()
}

/// Decodes the entries of an execution value's tail.
pub(crate) fn decode_entries(
    key: &[u8],
    entries: &[Entry],
) -> Result<Vec<HistoryEntry>, StoreError> {
    entries
        .iter()
        .map(|(_, bytes)| decode(key, bytes))
        .collect()
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), StoreError> {
    let len = u32::try_from(bytes.len()).map_err(|_| too_large("a value", bytes.len()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn put_entries(out: &mut Vec<u8>, entries: &[Entry]) -> Result<(), StoreError> {
    let count =
        u16::try_from(entries.len()).map_err(|_| too_large("a history chunk", entries.len()))?;
    out.extend_from_slice(&count.to_le_bytes());
    for (number, entry) in entries {
        out.extend_from_slice(&number.to_le_bytes());
        put_bytes(out, entry)?;
    }
    Ok(())
}

fn too_large(what: &str, size: usize) -> StoreError {
    StoreError::Invalid {
        message: format!(
            "{what} of {size} (bytes or entries) is too large for the sled store's layout"
        ),
    }
}

/// Reads the fields of a stored value, reporting a short or malformed one as corrupt.
struct Reader<'a> {
    key: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(key: &'a [u8], bytes: &'a [u8]) -> Self {
        Reader { key, rest: bytes }
    }

    fn corrupt(&self, message: &str) -> StoreError {
        StoreError::Corrupt {
            key: describe(self.key),
            source: durable_core::CodecError::Decode {
                message: message.to_owned(),
            },
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < n {
            return Err(self.corrupt("value too short"));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    /// The tag and record of an execution value of layout 2 or 3.
    fn record(&mut self) -> Result<ExecutionRecord, StoreError> {
        let tag = self
            .take(2)
            .map_err(|_| self.corrupt("not an execution value"))?;
        if tag == EXECUTION_TAG {
            decode(self.key, self.bytes()?)
        } else if tag == EXECUTION_TAG_V2 {
            Ok(decode::<RecordV1>(self.key, self.bytes()?)?.into())
        } else {
            Err(self.corrupt("not an execution value"))
        }
    }

    fn tag(&mut self, tag: [u8; 2], message: &str) -> Result<(), StoreError> {
        if self.take(2).ok() != Some(tag.as_slice()) {
            return Err(self.corrupt(message));
        }
        Ok(())
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        let mut buf = [0; 8];
        buf.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(buf))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let mut len = [0; 4];
        len.copy_from_slice(self.take(4)?);
        let len = usize::try_from(u32::from_le_bytes(len))
            .map_err(|_| self.corrupt("length does not fit in memory"))?;
        self.take(len)
    }

    fn entries(&mut self) -> Result<Vec<Entry>, StoreError> {
        let mut count = [0; 2];
        count.copy_from_slice(self.take(2)?);
        (0..u16::from_le_bytes(count))
            .map(|_| Ok((self.u64()?, Arc::from(self.bytes()?))))
            .collect()
    }

    fn end(&self) -> Result<(), StoreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt("trailing bytes"))
        }
    }
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
    fn execution_keys_built_on_the_stack_equal_the_others() {
        for len in [0, 1, 20, 21, 61, 62, 63, 100] {
            let id = "é".repeat(len / 2) + &"x".repeat(len % 2);
            assert_eq!(&*execution_ivec(&id), execution(&id).as_slice(), "{len}");
        }
    }

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

    #[test]
    fn execution_values_round_trip_and_every_truncation_is_corrupt() {
        let record = ExecutionRecord {
            id: "x".into(),
            workflow: "w".into(),
            fingerprint: 3,
            seq: 2,
            status: durable_core::Status::Suspended,
            position: None,
            wake_at: Some(Timestamp::from_millis(9)),
            output: None,
            message: None,
            history_next: 2,
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::from_millis(1),
            parent: None,
            awaiting: Vec::new(),
        };
        let entry = HistoryEntry {
            number: 1,
            at: Timestamp::from_millis(1),
            point: Some(0),
            event: durable_core::Event::Completed,
        };
        let tail: Vec<Entry> = vec![(1, encode(&entry).unwrap().into())];
        let value = encode_execution(&encode(&record).unwrap(), Some(b"in"), 1, &tail).unwrap();
        let decoded = decode_execution(b"e/x", &value).unwrap();
        assert_eq!(decoded.record, record);
        assert_eq!(decoded.input.as_deref(), Some(b"in".as_slice()));
        assert_eq!(decoded.history_from, 1);
        assert_eq!(
            decode_entries(b"e/x", &decoded.tail).unwrap(),
            std::slice::from_ref(&entry)
        );
        assert_eq!(decode_record(b"e/x", &value).unwrap(), record);
        for len in 0..value.len() {
            assert!(
                matches!(
                    decode_execution(b"e/x", &value[..len]),
                    Err(StoreError::Corrupt { .. })
                ),
                "truncated to {len} bytes"
            );
        }
        let group = encode_group(41, 7);
        assert_eq!(decode_group(&group).unwrap(), (41, 7));
        for len in 0..group.len() {
            assert!(decode_group(&group[..len]).is_err(), "cut to {len}");
        }
        let chunk = encode_chunk(&tail).unwrap();
        assert_eq!(decode_history(b"h/x", &chunk).unwrap(), [entry]);
        for len in 0..chunk.len() {
            assert!(decode_history(b"h/x", &chunk[..len]).is_err());
        }
    }
}
