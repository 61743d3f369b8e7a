//! How a store is opened: [`Durability`] and [`Options`].

/// What a commit survives once it has returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// The process dying and the machine losing power (the default): every group of
    /// commits ends with sled's flush, an `fdatasync` of its log file and an `fsync` of
    /// every file sled wrote to `sled/blobs/` for it (values that do not fit in the log).
    #[default]
    PowerLoss,
    /// The process dying, not the machine losing power: every group of commits ends with
    /// sled's own flush only, which on Linux does not persist the log file's size
    /// (sled issue #1452). Faster by the cost of one `fdatasync` per group.
    ProcessCrash,
}

/// How [`SledStore::open_with`](crate::SledStore::open_with) opens a store; a
/// [`Durability`] converts into the default options with that durability.
///
/// ```
/// use durable_store_sled::{Durability, Options};
///
/// let options = Options::default()
///     .durability(Durability::PowerLoss)
///     .cache_capacity(32 * 1024 * 1024)
///     .accept_rollback(false);
/// # let _ = options;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Options {
    /// What a commit survives once it has returned (default [`Durability::PowerLoss`]).
    pub durability: Durability,
    /// Bytes of sled's page cache (default [`Options::DEFAULT_CACHE_CAPACITY`]).
    pub cache_capacity: u64,
    /// Whether to open a store whose data is not what it acknowledged (default `false`:
    /// such a store is refused; see [`Options::accept_rollback`]).
    pub accept_rollback: bool,
}

impl Options {
    /// The default size of sled's page cache: 32 MiB (sled's own default is 1 GiB).
    ///
    /// sled counts a page by its size in the log; in memory it takes more, so the
    /// process holds about 1.3 to 2 times this much for the cache once the data outgrows
    /// it. Pages outside the cache are read from the disk (usually the OS page cache) when
    /// needed, so a smaller cache costs speed, never correctness. With a million sleeping
    /// executions, 32 MiB suspended and woke them as fast as 64 MiB did (benchmark
    /// `sleepers`), in 55 MB less memory.
    pub const DEFAULT_CACHE_CAPACITY: u64 = 32 * 1024 * 1024;

    /// Sets what a commit survives once it has returned.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the size of sled's page cache in bytes (at least 1 MiB is used).
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }

    /// Sets whether the store opens when its data is not what it acknowledged.
    ///
    /// When sled's log has been damaged, cut short or replaced by an older copy, sled
    /// drops what it cannot read and the store would come back older than it was:
    /// finished executions running again, at-most-once steps repeated, timers gone. The
    /// store notices (see the crate docs: the digest of its contents and the high-water
    /// mark in `durable.mark`), and by default `open` refuses it with
    /// [`StoreError::Corrupt`](durable_core::StoreError::Corrupt), which says what it
    /// found. Restore a backup of the directory, or, to go on from what is left, open it
    /// once with `accept_rollback(true)`: the lost writes stay lost, and the store records
    /// what it found as its new state, so later opens need the option no more. It cannot
    /// open a store that sled itself cannot read.
    pub fn accept_rollback(mut self, accept: bool) -> Self {
        self.accept_rollback = accept;
        self
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::default(),
            cache_capacity: Options::DEFAULT_CACHE_CAPACITY,
            accept_rollback: false,
        }
    }
}

impl From<Durability> for Options {
    fn from(durability: Durability) -> Self {
        Options::default().durability(durability)
    }
}
