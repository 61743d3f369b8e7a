//! The `#[durable]` attribute.
use proc_macro::TokenStream;

/// Rewrites an `async fn` into a durable workflow.
#[proc_macro_attribute]
pub fn durable(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
