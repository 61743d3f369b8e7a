//! What tests of stores and of workflows use (feature `test-support`): the store
//! conformance suite, and a store wrapper that counts calls, holds a commit back and fails
//! writes on demand.
//!
//! Not for production: nothing here is tuned for speed, and the wrapper fails on purpose.

// The checks are named for what they check.
#[allow(missing_docs)]
pub mod conformance;
mod instrumented;

pub use instrumented::{Counts, FailWrites, Held, InstrumentedStore};
