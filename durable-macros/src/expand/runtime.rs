//! The runtime that generated code calls: `durable_core` (or the `crate = path` the user
//! gives) and its private module. This is the only place that names that module.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Ident;

use crate::args::Args;

/// The private module's name in `durable_core`: its contract version is part of the name,
/// so a macro and a core that disagree on the contract fail to compile (the import below
/// fails once per workflow) instead of disagreeing on what a frame means. It must equal
/// the module declared in `durable-core/src/lib.rs`; bump both together.
const PRIVATE_MODULE: &str = "__private_v1";

/// Where generated code finds the runtime.
pub(super) struct Runtime {
    krate: TokenStream,
    alias: Ident,
}

impl Runtime {
    pub(super) fn new(args: &Args) -> Self {
        Runtime {
            krate: args.krate(),
            alias: Ident::new("__durable_private", Span::mixed_site()),
        }
    }

    /// The runtime crate, for its public API (`Workflow`, `Ctx`, `Codec`).
    pub(super) fn krate(&self) -> &TokenStream {
        &self.krate
    }

    /// The private module by its full path, for code outside the workflow's `const _`
    /// block.
    pub(super) fn private_path(&self) -> TokenStream {
        let krate = &self.krate;
        let module = Ident::new(PRIVATE_MODULE, Span::call_site());
        quote!(#krate::#module)
    }

    /// `use <private module> as __durable_private;`: the one import of the contract, at the
    /// top of the workflow's `const _` block, so that a core without this contract version
    /// fails there once rather than at every use.
    pub(super) fn import(&self) -> TokenStream {
        let path = self.private_path();
        let alias = &self.alias;
        quote!(use #path as #alias;)
    }

    /// The private module inside the workflow's `const _` block (see [`Runtime::import`]).
    pub(super) fn p(&self) -> TokenStream {
        let alias = &self.alias;
        quote!(#alias)
    }
}
