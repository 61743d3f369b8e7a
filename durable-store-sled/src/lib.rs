//! The embedded [`Store`](durable_core::Store) for durable-core: executions, their history
//! and their timers in one local directory, on sled, with every transition one atomic,
//! fsynced write that concurrent executions share (group commit).
//!
//! # Example
//!
//! ```
//! use durable_core::{ListFilter, Store};
//! use durable_store_sled::SledStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), durable_core::StoreError> {
//! // `SledStore::open("data/durable")` in a real program.
//! let store = SledStore::temporary()?;
//! assert!(store.load("order-17").await?.is_none());
//! assert!(store.list(&ListFilter::default()).await?.is_empty());
//! store.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Durability
//!
//! By default a commit survives the machine losing power ([`Durability::PowerLoss`]):
//! before a group of commits is acknowledged, sled's log is flushed and `fdatasync`ed,
//! and so is every file sled wrote to `sled/blobs/` for a value too large for its log
//! (over about 128 KiB), with its directory. [`SledStore::open_with`] and
//! [`Durability::ProcessCrash`] trade that for fewer syncs: a commit then survives the
//! process dying, not the power going.
//!
//! # Damage and crashes
//!
//! - A process killed at any instant, also while the store opens or closes, leaves a store
//!   that opens with every acknowledged commit (sled's own leftovers of such a kill, a
//!   snapshot cut short, are removed before sled opens).
//! - Damage to sled's log (a flipped byte, a cut-off tail, an older copy put back) is
//!   never silent: sled drops what it cannot read, and the store notices when what is
//!   left is not what it acknowledged. Every group of writes stores its number and a
//!   digest of the whole tree's contents beside its writes, and the number of the last
//!   acknowledged group is kept outside sled, in `durable.mark`. An open reads the whole
//!   tree (unless the store was closed cleanly and sled's files are unchanged since, which
//!   a checksum taken at the close tells), and refuses a store whose contents do not
//!   match their digest or whose last group is behind the mark, with
//!   [`StoreError::Corrupt`](durable_core::StoreError::Corrupt) saying what it found; [`Options::accept_rollback`] opens it anyway, from what is
//!   left. Damage that sled notices itself (or that makes it panic, as sled 0.34 does on
//!   some) is an error too, never a panic.
//! - The mark costs one 16-byte write per group and no fsync in the group's path: it is
//!   fsynced on close and, with power-loss durability, at most 100 ms after it changes.
//!   So a power cut can leave it up to 100 ms behind the log (never ahead), and damage
//!   to exactly those last groups on top of a power cut would go unnoticed. The digest
//!   costs a read of each written key's old value per group; the check, a read of the
//!   whole tree at an open after a crash, and a read of sled's log at a clean close and
//!   the open after it.
//!
//! # Async runtimes
//!
//! No method blocks a tokio runtime's threads: reads run on tokio's blocking threads
//! (inline when there is no tokio runtime), but for executions and operations written
//! recently, which the store answers from memory; writes run on the store's writer
//! thread, and a
//! store dropped inside a runtime finishes closing on a blocking thread. Opening blocks
//! (it reads sled's log and the tree): call it before the runtime starts, or inside
//! `spawn_blocking`.
//!
//! # Memory
//!
//! sled keeps a page cache of [`Options::DEFAULT_CACHE_CAPACITY`] (32 MiB, where sled's
//! own default is 1 GiB); [`Options::cache_capacity`] changes it. Beyond the cache,
//! memory grows slowly with the number of executions stored (sled's page table), and a
//! suspended execution costs nothing else: it is a few keys on disk. The store also keeps
//! the last 4,096 executions and operations it wrote, decoded (at most 16 MiB of stored
//! values of each), so that the commits and reads of running executions need not read
//! them back from sled.
//!
//! # Features
//!
//! None: the crate has one configuration.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod blobs;
mod digest;
mod error;
mod format;
mod integrity;
mod keys;
mod lock;
mod mark;
mod options;
mod recent;
mod repair;
mod running;
mod seal;
mod store;
mod sync;
mod writer;

pub use options::{Durability, Options};
pub use store::SledStore;
