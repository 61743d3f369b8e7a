//! Expansion: the lowered workflow → tokens, after serde_derive's layout: this driver
//! (and the fallback on error) over one module per job:
//! - [`items`]: the workflow module, function item, `const _` block and `Workflow` impl;
//! - [`calls`]: the workflows the body calls as children, registered with it;
//! - [`diagnostics`]: the check traits that report unsaveable values on the user's tokens;
//! - [`machine`]: the state machine, block by block;
//! - [`frames`]: encoding and decoding frames, and what the engine shows of each point;
//! - [`fingerprint`]: the workflow's fingerprint;
//! - [`runtime`]: where the runtime is (the only module that names `__private_v1`).
//!
//! `__machine` is one `match` over block numbers inside a labeled loop:
//!
//! ```text
//! let __durable_out: Output = '__durable_machine: loop {
//!     match __durable_block {
//!         0 => { /* decode the input, bind the parameters, run to the first jump */ }
//!         1 => { /* point 0: enter (encode the frame), take locals, run or read the outcome */ }
//!         ...
//!         u32::MAX => { /* resume: decode the frame into the slots, jump to its point */ }
//!     }
//! };
//! ```

mod calls;
mod diagnostics;
mod fingerprint;
mod frames;
mod items;
mod machine;
mod runtime;

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};

use crate::args::{self, Args};
use crate::ast::Workflow;
use crate::check;
use crate::ctxt::Ctxt;
use crate::lower::{self, Cfg};
use machine::Names;
use runtime::Runtime;

// Input: the attribute's arguments and the item it is on.
// Output: the workflow struct and impl; on any error, the `compile_error!`s and the
// item with its durable `.await`s neutralised (so IDEs keep working and errors do not
// cascade).
pub fn durable(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = args::parse(&cx, args);
    let item_fn = match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            cx.error_at(
                Span::call_site(),
                "`#[durable]` can only be applied to an `async fn`",
            );
            return fallback(cx.check(), item);
        }
    };
    let mut wf = Workflow::from_item(item_fn);
    calls::wrap_map_bodies(&mut wf, &Runtime::new(&args).p());
    let before = cx.count();
    check::check_signature(&cx, &wf);
    let signature_ok = cx.count() == before;
    check::check_body(&cx, &wf);
    let cfg = lower::lower(&cx, &wf);
    match cx.check() {
        Ok(()) => Expander::new(&wf, &args, &cfg, Mode::Machine).expand(),
        // The workflow type still exists and the body still type-checks (with its
        // durable `.await`s neutralised), so the mistake is reported once, not again
        // at every use of the workflow.
        Err(err) if signature_ok => {
            let errors = err.to_compile_error();
            let fallback = Expander::new(&wf, &args, &cfg, Mode::Fallback).expand();
            quote!(#errors #fallback)
        }
        Err(err) => {
            let mut item = wf.item.clone();
            let private = Runtime::new(&args).private_path();
            neutralise(&wf, &quote!(#private::neutralised), &mut item.block);
            fallback(Err(err), item.into_token_stream())
        }
    }
}

// Input: a workflow's body.
// Output: every durable point `op.await` replaced by `helper(op)`, a value of the
// operation's output type, so the body type-checks as a plain fn.
fn neutralise(wf: &Workflow, helper: &TokenStream, block: &mut syn::Block) {
    struct Neutralise<'a> {
        points: crate::ast::Points<'a>,
        helper: &'a TokenStream,
    }
    impl syn::visit_mut::VisitMut for Neutralise<'_> {
        fn visit_expr_mut(&mut self, e: &mut syn::Expr) {
            syn::visit_mut::visit_expr_mut(self, e);
            if let Some(aw) = self.points.point(e) {
                let op = &aw.base;
                let helper = self.helper;
                *e = syn::parse_quote!(#helper(#op));
            }
        }
        fn visit_macro_mut(&mut self, m: &mut syn::Macro) {
            if let Some(mut args) = check::macro_args(&m.tokens) {
                for arg in args.iter_mut() {
                    self.visit_expr_mut(arg);
                }
                m.tokens = args.into_token_stream();
            }
        }
        fn visit_item_mut(&mut self, _: &mut syn::Item) {}
    }
    syn::visit_mut::VisitMut::visit_block_mut(
        &mut Neutralise {
            points: wf.points(),
            helper,
        },
        block,
    );
}

/// What `__machine` does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The lowered state machine.
    Machine,
    /// After an error in the body: nothing (`unimplemented!`), beside the user's fn with
    /// its durable `.await`s replaced by values of the right type, for IDEs and so the
    /// error does not cascade.
    Fallback,
}

fn fallback(result: syn::Result<()>, item: TokenStream) -> TokenStream {
    let errors = result.err().map(|e| e.to_compile_error());
    quote!(#errors #item)
}

/// One workflow being expanded.
struct Expander<'a> {
    mode: Mode,
    wf: &'a Workflow,
    args: &'a Args,
    cfg: &'a Cfg,
    rt: Runtime,
    /// The private module, as named inside the `const _` block.
    p: TokenStream,
    n: Names,
}

impl<'a> Expander<'a> {
    fn new(wf: &'a Workflow, args: &'a Args, cfg: &'a Cfg, mode: Mode) -> Self {
        let rt = Runtime::new(args);
        Expander {
            mode,
            wf,
            args,
            cfg,
            p: rt.p(),
            rt,
            n: Names::new(),
        }
    }

    // Input: the user's fn, after an error.
    // Output: the fn nested in `__machine`, its durable points neutralised, and
    // `unimplemented!()`.
    fn neutralised(&self) -> TokenStream {
        let p = &self.p;
        let mut item = self.wf.item.clone();
        item.attrs.retain(|a| !a.path().is_ident("doc"));
        neutralise(self.wf, &quote!(#p::neutralised), &mut item.block);
        quote! {
            #[allow(dead_code, unused, clippy::all)]
            #item
            ::core::unimplemented!("`#[durable]` failed to expand")
        }
    }
}
