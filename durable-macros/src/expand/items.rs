//! The items a workflow expands to: the module holding its type, the function item that
//! stands for it, and a `const _` block with the contract import, the check traits and
//! the `Workflow` impl.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, ToTokens};

use super::diagnostics::respanned;
use super::{Expander, Mode};
use crate::args::CodecArg;

impl Expander<'_> {
    pub(super) fn expand(&self) -> TokenStream {
        let Expander { wf, p, .. } = self;
        let krate = self.rt.krate();
        let ident = &wf.ident;
        let vis = &wf.vis;
        let docs = wf.doc_attrs();
        let cfgs: Vec<_> = wf
            .item
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg") || a.path().is_ident("cfg_attr"))
            .collect();
        let lints = wf.item.attrs.iter().filter(|a| {
            ["allow", "warn", "deny", "forbid", "expect"]
                .iter()
                .any(|k| a.path().is_ident(k))
        });
        let (stored_items, input, output) = self.stored_checks();
        // Located at the types, like their checks: rustc checks the `Workflow` bounds
        // of each associated type where it is declared.
        let (type_kw, semi) = (quote!(type Input =), quote!(;));
        let (head, end) = (
            respanned(type_kw, self.input_span()),
            respanned(semi.clone(), self.input_span()),
        );
        let input_item = quote!(#head #input #end);
        let (head, end) = (self.at_output(quote!(type Output =)), self.at_output(semi));
        let output_item = quote!(#head #output #end);
        let name = match &self.args.name {
            Some(lit) => lit.to_token_stream(),
            None => {
                let s = ident.to_string();
                let s = s.strip_prefix("r#").unwrap_or(&s);
                Literal::string(s).to_token_stream()
            }
        };
        let codec = match self.args.codec {
            CodecArg::Bincode => quote!(#krate::Codec::Bincode),
            CodecArg::Json => quote!(#krate::Codec::Json),
        };
        let lowering = Literal::u32_suffixed(super::fingerprint::LOWERING_FORMAT);
        let (fingerprint, points, called, machine) = match self.mode {
            Mode::Machine => (
                Literal::u64_suffixed(self.fingerprint()),
                self.points_info(),
                self.called(),
                self.machine(),
            ),
            Mode::Fallback => (
                Literal::u64_suffixed(0),
                Vec::new(),
                Vec::new(),
                self.neutralised(),
            ),
        };
        // Only when the body names workflows: the trait's default is empty. A path is
        // probed (a plain fn given to `ctx.map` is a step body, not a workflow).
        let calls_item = (!called.is_empty()).then(|| {
            quote! {
                fn __calls() -> ::std::vec::Vec<#p::Called> {
                    #[allow(unused_imports)]
                    use #p::{ProbeOther as _, ProbeWorkflow as _};
                    [#(#called),*].into_iter().flatten().collect()
                }
            }
        });
        // The whole `__machine` item is located at the output type: rustc checks its
        // signature against the trait's, which normalizes `Self::Output`, at the item's
        // span, so an output that cannot be stored is reported there once, not also at
        // `#[durable]`.
        let ctx = &self.n.ctx;
        let entry = &self.n.entry;
        let output_span = syn::spanned::Spanned::span(&self.wf.output);
        let group = |delimiter, tokens| {
            let mut g = proc_macro2::Group::new(delimiter, tokens);
            g.set_span(output_span);
            g
        };
        let machine_fn = self.at_output(quote!(fn __machine));
        let machine_params = group(
            proc_macro2::Delimiter::Parenthesis,
            quote!(#ctx: #krate::Ctx, #entry: #p::Entry,),
        );
        let machine_output =
            self.at_output(quote!(#p::Machine<<Self as #krate::Workflow>::Output>));
        // The user's own spelling of the context type: it must name `Ctx` (and its
        // import is used).
        let ctx_check = self.wf.ctx.as_ref().map(|c| {
            let ty = &c.ty;
            quote!(let #ctx: #ty = #ctx;)
        });
        let machine_body = group(proc_macro2::Delimiter::Brace, quote!(#ctx_check #machine));
        // The workflow is named by a function item, not a unit struct: a local or
        // parameter may then share the workflow's name (a `let` cannot shadow a unit
        // struct). Its type lives in a module of the same name (modules and functions
        // are in different namespaces).
        let type_doc = format!(
            " The workflow type of [`{}`](fn@super::{}), as named in `Handle<{}::Workflow>`.",
            ident, ident, ident
        );
        let fn_doc = format!(
            " The `#[durable]` workflow `{}`: pass it to `EngineBuilder::register` and `Engine::start`.",
            ident
        );
        let type_vis = inner_vis(vis);
        let private = self.rt.private_path();
        let import = self.rt.import();
        quote! {
            #(#cfgs)*
            #[doc(hidden)]
            #[allow(non_snake_case)]
            #vis mod #ident {
                #[doc = #type_doc]
                #[derive(
                    ::core::clone::Clone,
                    ::core::marker::Copy,
                    ::core::fmt::Debug,
                    ::core::default::Default
                )]
                #type_vis struct Workflow;
            }

            #(#docs)*
            #[doc = #fn_doc]
            #(#cfgs)*
            #[allow(dead_code)] // only ever passed as a value, never called
            #vis fn #ident(_: #private::Select) -> #ident::Workflow {
                #ident::Workflow
            }

            #(#cfgs)*
            const _: () = {
                #import
                #stored_items
                impl #krate::Workflow for #ident::Workflow {
                    #input_item
                    #output_item
                    const NAME: &'static str = #name;
                    const FINGERPRINT: u64 = #fingerprint;
                    const LOWERING_FORMAT: u32 = #lowering;
                    const CODEC: #krate::Codec = #codec;
                    const POINTS: &'static [#p::PointInfo] = &[#(#points),*];
                    #calls_item

                    #(#lints)*
                    #machine_fn #machine_params -> #machine_output #machine_body
                }
            };
        }
    }
}

// Input: the visibility of the workflow fn.
// Output: the same visibility written inside the module `mod <fn name>` (one level
// down), for the workflow type: `pub(super)` for a private fn, `pub(in super::a)` for
// `pub(in a)` relative paths, unchanged for `pub` and `pub(crate)`.
fn inner_vis(vis: &syn::Visibility) -> TokenStream {
    match vis {
        syn::Visibility::Public(_) => quote!(pub),
        syn::Visibility::Inherited => quote!(pub(super)),
        syn::Visibility::Restricted(r) => {
            let path = &r.path;
            let first = path.segments.first().map(|s| s.ident.to_string());
            match first.as_deref() {
                Some("crate") => quote!(pub(in #path)),
                Some("self") if path.segments.len() == 1 => quote!(pub(super)),
                Some("self") => {
                    let rest = path.segments.iter().skip(1);
                    quote!(pub(in super #(:: #rest)*))
                }
                _ => quote!(pub(in super::#path)),
            }
        }
    }
}
