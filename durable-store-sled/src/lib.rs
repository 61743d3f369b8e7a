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
//! By default a commit survives the machine losing power ([`Durability::PowerLoss`]);
//! [`SledStore::open_with`] and [`Durability::ProcessCrash`] trade that for one
//! `fdatasync` less per group of commits.
//!
//! # Memory
//!
//! sled keeps a page cache of [`Options::DEFAULT_CACHE_CAPACITY`] (32 MiB, where sled's
//! own default is 1 GiB); [`Options::cache_capacity`] changes it. Beyond the cache,
//! memory grows slowly with the number of executions stored (sled's page table), and a
//! suspended execution costs nothing else: it is two keys on disk.
//!
//! # Features
//!
//! None: the crate has one configuration.
#![deny(missing_docs)]

mod blobs;
mod digest;
mod error;
mod integrity;
mod keys;
mod lock;
mod mark;
mod options;
mod repair;
mod store;
mod writer;

pub use options::{Durability, Options};
pub use store::SledStore;
