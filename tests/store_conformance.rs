//! The store conformance suite (`durable_core::conformance`), run against every store of
//! the workspace.

durable_core::store_conformance!(memory, durable_core::MemoryStore::new());
durable_core::store_conformance!(
    sled,
    durable_store_sled::SledStore::temporary().expect("a temporary sled store opens")
);
