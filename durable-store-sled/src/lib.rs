//! The embedded sled store for durable-core.
