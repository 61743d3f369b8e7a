//! Where a test's executions live, across engine restarts: a memory store, or a sled
//! directory opened again by each engine (a real restart). Shared by the tests that run
//! every case on both stores (`on_both_stores!`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use durable_core::{MemoryStore, Store};
use durable_store_sled::SledStore;

/// A fresh directory, removed when dropped (also when the test fails).
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory named after `test`, this process and a counter.
    pub fn new(test: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("durable-{test}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where a test's executions live.
pub enum Backing {
    /// One memory store, kept across engines.
    Memory(Arc<MemoryStore>),
    /// A sled directory, opened again by each engine.
    Sled(TempDir),
}

impl Backing {
    /// A new memory store.
    pub fn memory() -> Self {
        Backing::Memory(Arc::new(MemoryStore::new()))
    }

    /// A new sled directory, named after `test`.
    pub fn sled(test: &str) -> Self {
        Backing::Sled(TempDir::new(test))
    }

    /// The store, opened again for sled (the previous engine must have shut down).
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Backing::Memory(store) => store.clone(),
            Backing::Sled(dir) => Arc::new(SledStore::open(dir.path()).expect("sled opens")),
        }
    }
}

/// Runs each `async fn case(backing: Backing)` listed once on a memory store (module
/// `memory`) and once on a sled directory (module `sled`), as tokio tests.
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backing::memory()).await;
                }
            )*
        }
        mod sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Backing::sled(stringify!($test))).await;
                }
            )*
        }
    };
}
pub(crate) use on_both_stores;
