//! The `#[durable]` attribute of the `durable` workspace.
//!
//! Use it through `durable_core`, which re-exports it. The phases, one module each:
//! `args` (attribute arguments) → `ast` (the workflow signature, durable points) →
//! `check` (spanned errors) → `lower` (an IR of blocks, jumps, points, live sets and where
//! each local's value is, with no runtime path in it) → `expand` (tokens: the only phase
//! that knows the runtime's private, versioned module); errors are collected in a
//! `ctxt::Ctxt`.
#![forbid(unsafe_code)]

mod args;
mod ast;
mod check;
mod ctxt;
mod expand;
mod lower;
#[cfg(test)]
mod snapshots;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Rewrites an `async fn` into a durable workflow: a type `<name>::Workflow` that
/// implements `durable_core::Workflow`, whose state machine saves the live locals at
/// every durable point (`ctx.<operation>(..).await`) and resumes from them, and a
/// function item of the fn's name that stands for it in the engine's API
/// (`engine.start(process_order, id, input)`).
///
/// Arguments: `name = "..."` (the registered name; the fn name by default),
/// `codec = json` (frames and values as JSON; `bincode` by default),
/// `crate = path` (where `durable_core` is, for crates that rename it).
#[proc_macro_attribute]
pub fn durable(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::durable(args.into(), item.into()).into()
}
