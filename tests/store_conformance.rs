//! The store conformance suite (`conformance/`), run against every store.

mod conformance;

conformance::store_conformance!(memory, durable_core::MemoryStore::new());
conformance::store_conformance!(
    sled,
    durable_store_sled::SledStore::temporary().expect("a temporary sled store opens")
);
