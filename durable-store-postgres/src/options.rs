//! [`Options`]: where the database is, which schema holds the store, and how many
//! connections and writers it uses.

use durable_core::StoreError;

/// How [`PostgresStore::open`](crate::PostgresStore::open) connects.
///
/// ```
/// use durable_store_postgres::Options;
///
/// let options = Options::new("postgres://postgres@127.0.0.1:5432/postgres")?
///     .schema("orders")
///     .pool_size(8);
/// # Ok::<(), durable_core::StoreError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) schema: String,
    pub(crate) pool_size: usize,
    pub(crate) writers: usize,
    pub(crate) max_batch: usize,
}

impl Options {
    /// The schema used when none is set.
    pub const DEFAULT_SCHEMA: &'static str = "durable";

    /// Options for the database at `url`, a connection string in either of
    /// PostgreSQL's forms (`postgres://user@host:port/db` or
    /// `host=... user=... dbname=...`), with default settings.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Invalid {
                message: format!("cannot parse the PostgreSQL connection string: {e}"),
            })?;
        Ok(Self::from_config(config))
    }

    /// Options for a connection already described as a `tokio_postgres::Config`.
    pub fn from_config(config: tokio_postgres::Config) -> Self {
        Options {
            config,
            schema: Self::DEFAULT_SCHEMA.to_owned(),
            pool_size: 16,
            writers: 2,
            max_batch: 256,
        }
    }

    /// The PostgreSQL schema (namespace) that holds the store's tables (default
    /// `durable`): lower-case ASCII letters, digits and `_`, not starting with a digit,
    /// at most 48 bytes. Engines that share work open the same schema; one database can
    /// hold several independent stores in different schemas.
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// How many connections the store keeps for its reads and writes (default 16), plus
    /// one that listens for other engines' notifications and a few for leases. The
    /// store opens them all when it opens (each costs the server a process and a few
    /// milliseconds to start), and opens them again as they are lost.
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections.max(2);
        self
    }

    /// How many commits, or groups of commits, may be in flight at once (default 2). A
    /// commit made while fewer are goes to the database at once; commits made while all
    /// are busy wait and go together in the next group (one statement, one transaction),
    /// so fewer writers make larger groups (fewer WAL flushes) at the cost of some latency.
    pub fn writers(mut self, writers: usize) -> Self {
        self.writers = writers.max(1);
        self
    }

    /// The most commits one transaction groups (default 256).
    pub fn max_batch(mut self, commits: usize) -> Self {
        self.max_batch = commits.max(1);
        self
    }

    /// Checks the schema name, which is written into SQL text.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let name = &self.schema;
        let valid = !name.is_empty()
            && name.len() <= 48
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            Ok(())
        } else {
            Err(StoreError::Invalid {
                message: format!(
                    "invalid schema name {name:?}: use 1 to 48 lower-case ASCII letters, digits and `_`, not starting with a digit"
                ),
            })
        }
    }
}
