//! A [`Store`](durable_core::Store) for durable-core in PostgreSQL, shared by any number
//! of engines: in any number of processes, on any number of hosts, they open the same
//! database and share the work, and the workflow code does not change.
//!
//! # Example
//!
//! ```no_run
//! use durable_core::{durable, Ctx, Engine};
//! use durable_store_postgres::{Options, PostgresStore};
//!
//! #[durable]
//! async fn greet(ctx: Ctx, name: String) -> String {
//!     ctx.step_infallible("compose", || async { format!("hello, {name}") }).await
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let options = Options::new("postgres://postgres@127.0.0.1:5432/postgres")?.schema("durable");
//! let engine = Engine::builder(PostgresStore::open(options).await?)
//!     .register(greet)
//!     .lease_ttl(std::time::Duration::from_secs(30))
//!     .open()
//!     .await?;
//! let greeting = engine.start(greet, "greet-ada", "ada".to_string()).await?.result().await?;
//! assert_eq!(greeting, "hello, ada");
//! engine.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # How engines share the work
//!
//! An execution runs on one engine at a time, under a lease (an owner and an expiry in
//! its row) that the engine renews while it runs it; every commit is conditional on the
//! sequence number and on the lease, so a commit from an engine whose lease was taken
//! over is refused and that engine drops the execution. Engines claim ready work (due
//! timers, new and woken executions, executions whose engine died and whose lease
//! expired) with `FOR UPDATE SKIP LOCKED`, so two engines never take the same one, and
//! hear of new work at once through `LISTEN`/`NOTIFY`, with a slow poll as the fallback
//! ([`EngineBuilder::poll_interval`](durable_core::EngineBuilder::poll_interval)).
//!
//! # Durability
//!
//! A write is acknowledged after PostgreSQL committed it, with the server's
//! `synchronous_commit` setting (on by default: after its WAL flush). A commit made while
//! the store has a writer free goes to the database at once; commits made while its
//! writers are busy wait and then go together, as one statement and one transaction, so
//! many executions cost one flush (group commit).
//! Leases are written without waiting for a flush; they need not survive a crash.
//!
//! # Why deadpool-postgres
//!
//! The client is `tokio-postgres` (the native async PostgreSQL client, which pipelines
//! the statements of one connection, and binds arrays: a group of commits is one
//! statement over arrays of their columns), pooled by `deadpool-postgres`: it is small,
//! keeps a cache of prepared statements per connection, and has no runtime of its own
//! beyond tokio.
//!
//! # Features
//!
//! None: the crate has one configuration.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod commit;
mod convert;
mod listener;
mod notifier;
mod options;
mod schema;
mod sql;
mod store;
mod writer;

pub use options::Options;
pub use store::PostgresStore;

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PostgresStore>();
    assert_send_sync::<Options>();
};
