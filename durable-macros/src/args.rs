//! `#[durable(name = "...", codec = json, crate = path)]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::Parser;
use syn::{LitStr, Path};

use crate::ctxt::Ctxt;

/// The frame codec named by `codec = ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CodecArg {
    /// `codec = bincode`, the default.
    #[default]
    Bincode,
    /// `codec = json`.
    Json,
}

/// The parsed attribute arguments.
#[derive(Default)]
pub struct Args {
    /// `name = "..."`: the registered workflow name.
    pub name: Option<LitStr>,
    /// `codec = ...`.
    pub codec: CodecArg,
    /// `crate = path`: where `durable_core` is, for crates that rename it.
    pub krate: Option<Path>,
}

impl Args {
    /// The runtime crate path, `::durable_core` unless overridden.
    pub fn krate(&self) -> TokenStream {
        match &self.krate {
            Some(path) => quote!(#path),
            None => quote!(::durable_core),
        }
    }
}

// Input: the tokens inside `#[durable(...)]`.
// Output: `Args`; every unknown, duplicate or malformed key is reported to `cx`.
pub fn parse(cx: &Ctxt, tokens: TokenStream) -> Args {
    let mut args = Args::default();
    let mut seen_codec = false;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            if lit.value().is_empty() {
                cx.error_spanned_by(&lit, "a workflow name cannot be empty");
            }
            if args.name.is_some() {
                cx.error_spanned_by(&meta.path, "duplicate `#[durable]` argument `name`");
            }
            args.name = Some(lit);
        } else if meta.path.is_ident("codec") {
            let value = meta.value()?;
            let (text, span) = if value.peek(LitStr) {
                let lit: LitStr = value.parse()?;
                (lit.value(), lit.span())
            } else {
                let ident: syn::Ident = value.parse()?;
                (ident.to_string(), ident.span())
            };
            match text.as_str() {
                "bincode" => args.codec = CodecArg::Bincode,
                "json" => args.codec = CodecArg::Json,
                other => cx.error_at(
                    span,
                    format!("unknown codec `{other}`; expected `bincode` or `json`"),
                ),
            }
            if seen_codec {
                cx.error_spanned_by(&meta.path, "duplicate `#[durable]` argument `codec`");
            }
            seen_codec = true;
        } else if meta.path.is_ident("crate") {
            let value = meta.value()?;
            let path: Path = if value.peek(LitStr) {
                value.parse::<LitStr>()?.parse()?
            } else {
                value.parse()?
            };
            if args.krate.is_some() {
                cx.error_spanned_by(&meta.path, "duplicate `#[durable]` argument `crate`");
            }
            args.krate = Some(path);
        } else {
            let path = &meta.path;
            let key = quote!(#path).to_string().replace(' ', "");
            cx.error_spanned_by(
                &meta.path,
                format!(
                    "unknown `#[durable]` argument `{key}`; expected `name`, `codec` or `crate`"
                ),
            );
            // Skip the value so the remaining arguments are still checked.
            if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<syn::Expr>()?;
            }
        }
        Ok(())
    });
    if let Err(err) = parser.parse2(tokens) {
        cx.syn_error(err);
    }
    args
}
