//! Expansion: the lowered workflow → the workflow struct and its `Workflow` impl, whose
//! `__machine` is one `match` over block numbers inside a labeled loop.
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

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use std::collections::BTreeSet;

use crate::args::{self, Args, CodecArg};
use crate::ast::Workflow;
use crate::check;
use crate::ctxt::Ctxt;
use crate::lower::{
    self, machine_label, mixed, slot_ident, value_ident, BindingId, BindingKind, BlockId,
    BlockKind, Cfg, Code, GotoId, PointId, RegionId, Tail,
};

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
    let wf = Workflow::from_item(item_fn);
    let before = cx.count();
    check::check_signature(&cx, &wf);
    let signature_ok = cx.count() == before;
    check::check_body(&cx, &wf);
    let krate = args.krate();
    let cfg = lower::lower(&cx, &wf, &krate);
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
            neutralise(
                &wf,
                &quote!(#krate::__private::neutralised),
                &mut item.block,
            );
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

fn fallback(result: syn::Result<()>, item: TokenStream) -> TokenStream {
    let errors = result.err().map(|e| e.to_compile_error());
    quote!(#errors #item)
}

/// The identifiers of the generated machine.
struct Names {
    ctx: syn::Ident,
    entry: syn::Ident,
    block: syn::Ident,
    bytes: syn::Ident,
    out: syn::Ident,
    entered: syn::Ident,
    recorded: syn::Ident,
    run: syn::Ident,
    writer: syn::Ident,
    reader: syn::Ident,
    frame: syn::Ident,
    input: syn::Ident,
    other: syn::Ident,
    label: syn::Lifetime,
}

impl Names {
    fn new() -> Self {
        Names {
            ctx: mixed("__durable_ctx"),
            entry: mixed("__durable_entry"),
            block: mixed("__durable_block"),
            bytes: mixed("__durable_bytes"),
            out: mixed("__durable_out"),
            entered: mixed("__durable_entered"),
            recorded: mixed("__durable_b"),
            run: mixed("__durable_r"),
            writer: mixed("__durable_w"),
            reader: mixed("__durable_fr"),
            frame: mixed("__durable_frame"),
            input: mixed("__durable_input"),
            other: mixed("__durable_other"),
            label: machine_label(),
        }
    }
}

struct Expander<'a> {
    mode: Mode,
    wf: &'a Workflow,
    args: &'a Args,
    cfg: &'a Cfg,
    krate: TokenStream,
    p: TokenStream,
    n: Names,
}

impl<'a> Expander<'a> {
    fn new(wf: &'a Workflow, args: &'a Args, cfg: &'a Cfg, mode: Mode) -> Self {
        let krate = args.krate();
        Expander {
            mode,
            wf,
            args,
            cfg,
            p: quote!(#krate::__private),
            krate,
            n: Names::new(),
        }
    }

    fn expand(&self) -> TokenStream {
        let Expander { wf, krate, p, .. } = self;
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
        let (fingerprint, points, machine) = match self.mode {
            Mode::Machine => (
                Literal::u64_suffixed(self.fingerprint()),
                self.points_info(),
                self.machine(),
            ),
            Mode::Fallback => (Literal::u64_suffixed(0), Vec::new(), self.neutralised()),
        };
        // The whole `__machine` item is located at the output type: rustc checks its
        // signature against the trait's, which normalizes `Self::Output`, at the item's
        // span, so an output that cannot be stored is reported there once, not also at
        // `#[durable]`.
        let Names { ctx, entry, .. } = &self.n;
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
            #vis fn #ident(_: #p::Select) -> #ident::Workflow {
                #ident::Workflow
            }

            #(#cfgs)*
            const _: () = {
                #stored_items
                #[automatically_derived]
                impl #krate::Workflow for #ident::Workflow {
                    #input_item
                    #output_item
                    const NAME: &'static str = #name;
                    const FINGERPRINT: u64 = #fingerprint;
                    const CODEC: #krate::Codec = #codec;
                    const POINTS: &'static [#p::PointInfo] = &[#(#points),*];

                    // Why each lint is allowed in the generated machine:
                    // - unused_mut: a local taken from its slot is bound `mut` whether
                    //   or not the code after the take mutates it;
                    // - unreachable_code: a jump is emitted after code that may already
                    //   diverge (`return`, `break`, `?` on `Result<_, Infallible>`);
                    // - unused_parens, unused_braces: rewritten `?`/`return` are
                    //   parenthesised and scopes are re-opened with braces, some needed
                    //   only in some positions;
                    // - irrefutable_let_patterns, unreachable_patterns: `while let`
                    //   with an irrefutable pattern becomes an `if let` with an `else`;
                    // - clippy::never_loop, clippy::diverging_sub_expression,
                    //   clippy::let_unit_value, clippy::unnecessary_semicolon: shapes of
                    //   the generated state machine (a rewritten `x?;` is a `match`
                    //   statement), not of the user's code.
                    #[allow(
                        unused_mut,
                        unreachable_code,
                        unused_parens,
                        unused_braces,
                        irrefutable_let_patterns,
                        unreachable_patterns,
                        clippy::never_loop,
                        clippy::diverging_sub_expression,
                        clippy::let_unit_value,
                        clippy::unnecessary_semicolon
                    )]
                    #(#lints)*
                    #machine_fn #machine_params -> #machine_output #machine_body
                }
            };
        }
    }

    /// The check trait of parameter `i`: named after the parameter, numbered when that
    /// is not enough to tell it from the others (`_`, or patterns that read alike).
    fn input_check(&self, i: usize) -> String {
        let workflow = camel(&self.wf.ident.to_string());
        let names: Vec<String> = self
            .wf
            .params
            .iter()
            .map(|p| camel(&param_name(p)))
            .collect();
        let name = &names[i];
        if name.is_empty() || names.iter().filter(|n| *n == name).count() > 1 {
            format!("StorableInput{name}{i}Of{workflow}")
        } else {
            format!("StorableInput{name}Of{workflow}")
        }
    }

    /// Where errors about the workflow input point: the parameter's type, or the whole
    /// parameter list when there are several (the input is their tuple).
    fn input_span(&self) -> Span {
        match self.wf.params.as_slice() {
            [one] => syn::spanned::Spanned::span(&one.ty),
            _ => self.wf.item.sig.paren_token.span.join(),
        }
    }

    /// `tokens` located at the output type, so that an output that cannot be stored is
    /// reported once, there.
    fn at_output(&self, tokens: TokenStream) -> TokenStream {
        respanned(tokens, syn::spanned::Spanned::span(&self.wf.output))
    }

    // Input: the parameters' and output's types.
    // Output: check traits, one per parameter and one for the output, and the
    // `Workflow::Input` and `Output` types written through them
    // (`<DurableFrame as StorableInputOrderOfShip<Order>>::Stored`, which is `Order`), so that
    // a type that cannot be stored is reported once, on its tokens, with a message that
    // names the parameter, instead of by the `Workflow` trait's bounds.
    fn stored_checks(&self) -> (TokenStream, TokenStream, TokenStream) {
        let p = &self.p;
        let workflow = camel(&self.wf.ident.to_string());
        let mut items = TokenStream::new();
        let codec = mixed("__durable_codec");
        let mut stored = |ty: &syn::Type,
                          what: &str,
                          check: String,
                          message: String,
                          label: &str| {
            let span = syn::spanned::Spanned::span(ty);
            let check_at = Ident::new(&check, Span::mixed_site().located_at(span));
            let check = Ident::new(&check, Span::mixed_site());
            let notes = [
                format!("{what} must implement `Serialize + DeserializeOwned + Send + 'static`"),
                "derive `serde::Serialize` and `serde::Deserialize` for your types; pass owned data, not borrows, connections or other handles".to_owned(),
            ];
            items.extend(quote! {
                #[diagnostic::on_unimplemented(
                    message = #message,
                    label = #label,
                    #(note = #notes,)*
                )]
                // `pub`: named in the `Workflow` impl's associated types.
                pub trait #check<T> {
                    type Stored;
                    fn #codec(_: &#p::Slot<T>) -> #p::SlotCodec<T>;
                }
                #[diagnostic::do_not_recommend]
                impl<T: #p::Saveable> #check<T> for #p::DurableFrame {
                    type Stored = T;
                    fn #codec(_: &#p::Slot<T>) -> #p::SlotCodec<T> {
                        #p::SlotCodec::new()
                    }
                }
            });
            let frame = respanned(quote!(#p::DurableFrame), span);
            quote_spanned!(span=> <#frame as #check_at<#ty>>::Stored)
        };
        let params: Vec<TokenStream> = self
            .wf
            .params
            .iter()
            .enumerate()
            .map(|(i, param)| {
                let name = param_name(param);
                stored(
                    &param.ty,
                    "workflow inputs are stored with the execution, so they",
                    self.input_check(i),
                    format!(
                        "the workflow input `{}` is stored with the execution, but `{{T}}` cannot be serialized",
                        escape(&name)
                    ),
                    "stored with the execution when it starts",
                )
            })
            .collect();
        let input = match params.len() {
            1 => params.into_iter().collect(),
            _ => {
                let mut group = proc_macro2::Group::new(
                    proc_macro2::Delimiter::Parenthesis,
                    quote!(#(#params,)*),
                );
                group.set_span(self.input_span());
                group.into_token_stream()
            }
        };
        let output = stored(
            &self.wf.output,
            "the workflow output is stored with the execution, so it",
            format!("StorableOutputOf{workflow}"),
            "the workflow output is stored with the execution, but `{T}` cannot be serialized"
                .to_owned(),
            "stored with the execution when it finishes",
        );
        (items, input, output)
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

    // Input: the CFG.
    // Output: `machine(async move { items; slots; entry; 'machine: loop { match .. } })`.
    fn machine(&self) -> TokenStream {
        let Expander { p, krate, cfg, .. } = self;
        let Names {
            entry,
            block,
            bytes,
            out,
            label,
            ..
        } = &self.n;
        let items = &cfg.items;
        let slots = cfg.slots().into_iter().map(|b| {
            let s = slot_ident(b);
            quote!(let mut #s = #p::Slot::new();)
        });
        let checks = self.slot_checks();
        let arms = cfg.emission_order().into_iter().map(|b| self.block_arm(b));
        let resume = self.resume_arm();
        let (input, frame) = (mixed("__durable_in"), mixed("__durable_fr"));
        let inspect = mixed("__durable_inspect");
        let output = self.at_output(quote!(<Self as #krate::Workflow>::Output));
        quote! {
            #p::machine(async move {
                #(#items)*
                #(#slots)*
                #(#checks)*
                let (mut #block, mut #bytes, #inspect) = match #entry {
                    #p::Entry::Start { input: #input } => {
                        (0u32, ::core::option::Option::Some(#input), false)
                    }
                    #p::Entry::Resume { frame: #frame } => (
                        ::core::primitive::u32::MAX,
                        ::core::option::Option::Some(#frame),
                        false,
                    ),
                    #p::Entry::Inspect { frame: #frame } => (
                        ::core::primitive::u32::MAX,
                        ::core::option::Option::Some(#frame),
                        true,
                    ),
                };
                let #out: #output = #label: loop {
                    match #block {
                        #(#arms)*
                        #resume
                        _ => ::core::unreachable!("durable: internal error: unknown block"),
                    }
                };
                ::core::result::Result::Ok(#out)
            })
        }
    }

    fn block_arm(&self, b: BlockId) -> TokenStream {
        let cfg = self.cfg;
        let block = &cfg.blocks[b];
        let num = Literal::u32_unsuffixed(cfg.number(b));
        let mut nest = Nest::new();
        if let BlockKind::Point(pid) = block.kind {
            nest.push(self.enter(pid));
        }
        if block.mentions_ctx {
            if let Some(ctx) = &self.wf.ctx {
                if let Some(ident) = &ctx.ident {
                    let m = ctx.mutability;
                    let inner = &self.n.ctx;
                    nest.push(quote!(let #m #ident = ::core::clone::Clone::clone(&#inner);));
                }
            }
        }
        // Takes, each in the scope its binding was declared in, so that shadowed
        // locals come back in the right order.
        let taken: BTreeSet<_> = cfg.taken(b).collect();
        for (i, level) in block.start.iter().enumerate() {
            if i > 0 {
                nest.open();
            }
            for &x in level.iter().filter(|x| taken.contains(x)) {
                let id = &cfg.bindings[x].ident;
                let s = slot_ident(x);
                nest.push(quote!(let mut #id = #s.take();));
            }
        }
        self.region(block.root, &mut nest);
        let body = nest.finish();
        quote!(#num => { #body })
    }

    fn region(&self, r: RegionId, nest: &mut Nest) {
        let region = &self.cfg.regions[r];
        for code in &region.code {
            match code {
                Code::Open => nest.open(),
                Code::Close => nest.close(),
                Code::Stmt(s) => nest.push(self.markers(s)),
                Code::Put(t, v) => {
                    let s = slot_ident(*t);
                    let v = self.markers(v);
                    nest.push(quote!(#s.put(#v);));
                }
                Code::Input => nest.push(self.input()),
                Code::PointValue(pid) => nest.push(self.point_value(*pid)),
            }
        }
        let label = &self.n.label;
        match &region.tail {
            Some(Tail::Goto(g)) => nest.push(self.goto(*g)),
            Some(Tail::If {
                cond,
                then_r,
                else_r,
            }) => {
                let cond = self.markers(cond);
                let then_b = self.sub(*then_r);
                let else_b = self.sub(*else_r);
                nest.push(quote!(if #cond { #then_b } else { #else_b }));
            }
            Some(Tail::Match { scrut, arms }) => {
                let scrut = self.markers(scrut);
                let arms = arms.iter().map(|(pat, r)| {
                    let pat = self.markers(pat);
                    let body = self.sub(*r);
                    quote!(#pat => { #body })
                });
                nest.push(quote!(match #scrut { #(#arms)* }));
            }
            Some(Tail::Finish(v)) => {
                let v = self.markers(v);
                nest.push(quote!(break #label #v;));
            }
            Some(Tail::Diverged) => nest.push(quote!(::core::unreachable!())),
            None => {}
        }
    }

    fn sub(&self, r: RegionId) -> TokenStream {
        let mut nest = Nest::new();
        self.region(r, &mut nest);
        nest.finish()
    }

    fn markers(&self, t: &impl ToTokens) -> TokenStream {
        self.cfg
            .expand_markers(t.to_token_stream(), &|g| self.goto(g))
    }

    // Input: a jump.
    // Output: `{ dest.put(value); slot.put(local); ..; __durable_block = N; continue 'machine; }`
    // putting every local live at the target that this block took or declared.
    fn goto(&self, g: GotoId) -> TokenStream {
        let cfg = self.cfg;
        let goto = &cfg.gotos[g];
        let value = goto.value.as_ref().map(|v| self.markers(v));
        let dest_put = match (goto.dest, value) {
            (Some(t), Some(v)) => {
                let s = slot_ident(t);
                quote!(#s.put(#v);)
            }
            (Some(t), None) => {
                let s = slot_ident(t);
                quote!(#s.put(());)
            }
            (None, Some(v)) => quote!(let _ = #v;),
            (None, None) => quote!(),
        };
        let puts = cfg.puts(g).into_iter().map(|b| {
            let s = slot_ident(b);
            let id = &cfg.bindings[b].ident;
            quote!(#s.put(#id);)
        });
        let target = Literal::u32_unsuffixed(cfg.number(goto.target));
        let Names { block, label, .. } = &self.n;
        quote!({ #dest_put #(#puts)* #block = #target; continue #label; })
    }

    // Input: the parameters' patterns.
    // Output: block 0's decoding of `Self::Input` bound to them.
    fn input(&self) -> TokenStream {
        let p = &self.p;
        let Names { bytes, input, .. } = &self.n;
        let pats: Vec<_> = self.wf.params.iter().map(|p| &p.pat).collect();
        let pat = match pats.len() {
            1 => pats[0].to_token_stream(),
            _ => quote!((#(#pats,)*)),
        };
        let b = mixed("__durable_b");
        // At the input's type, like its check, so that an input that cannot be stored
        // is reported once.
        let span = self.input_span();
        let path = respanned(quote!(#p::decode_workflow_input::<Self>), span);
        let mut args =
            proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, quote!(&#input));
        args.set_span(span);
        let question = respanned(quote!(?), span);
        let decode = quote!(#path #args #question);
        quote! {
            let #input = match ::core::option::Option::take(&mut #bytes) {
                ::core::option::Option::Some(#b) => #b,
                ::core::option::Option::None => ::core::unreachable!("durable: internal error: no input"),
            };
            let #pat = #decode;
        }
    }

    // Input: every local saved in some frame, with the first durable point it crosses.
    // Output: per local, `let __durable_cN = ..;`: the local's codec, obtained through a
    // check trait whose `on_unimplemented` message names the local, the point and its
    // line, spanned on the local. The check's blanket impl is `do_not_recommend`, so a
    // type that fails any of the bounds is reported once, as "`conn` is held across the
    // durable point `ctx.sleep(..)` at line 14, but `PgConnection` cannot be
    // serialized", and the frame code that uses the codec requires nothing more.
    fn slot_checks(&self) -> Vec<TokenStream> {
        let cfg = self.cfg;
        let mut first: Vec<(BindingId, PointId)> = Vec::new();
        for pid in 0..cfg.points.len() {
            for b in cfg.frame(pid) {
                if !first.iter().any(|&(x, _)| x == b) {
                    first.push((b, pid));
                }
            }
        }
        first.sort_unstable();
        // Unique in the crate, so that rustc names the trait without a path.
        let workflow = camel(&self.wf.ident.to_string());
        let names: Vec<String> = first
            .iter()
            .map(|&(b, _)| {
                let binding = &cfg.bindings[b];
                let items = if binding.kind == BindingKind::Iter {
                    "Items"
                } else {
                    ""
                };
                format!("Saveable{}{items}In{workflow}", camel(&binding.name()))
            })
            .collect();
        first
            .iter()
            .zip(&names)
            .map(|(&(b, pid), name)| match cfg.bindings[b].param {
                Some(param) => self.param_codec(b, param),
                None if names.iter().filter(|n| *n == name).count() > 1 => {
                    self.local_codec(b, pid, &format!("{name}{b}"))
                }
                None => self.local_codec(b, pid, name),
            })
            .collect()
    }

    // Input: a parameter's binding, saved in a frame.
    // Output: its codec from the input's check, at the input's location: its type is
    // the input's, so an input that cannot be saved is reported once (rustc drops the
    // identical second diagnostic).
    fn param_codec(&self, b: BindingId, param: usize) -> TokenStream {
        let p = &self.p;
        let span = self.input_span();
        let check = Ident::new(
            &self.input_check(param),
            Span::mixed_site().located_at(span),
        );
        let codec = Ident::new("__durable_codec", Span::mixed_site().located_at(span));
        let frame = respanned(quote!(#p::DurableFrame), span);
        let s = located_slot(b, span);
        let c = codec_ident(b);
        quote_spanned!(span=> let #c = <#frame as #check<_>>::#codec(&#s);)
    }

    // Input: a local binding saved in a frame, the first point it crosses, the name of
    // its check trait.
    // Output: `let __durable_cN = { trait; impl; <DurableFrame as Trait<_>>::codec(&slot) };`.
    // A loop's iterator is checked on its items (`LoopIter`), at the iterable.
    fn local_codec(&self, b: BindingId, pid: PointId, trait_name: &str) -> TokenStream {
        let Expander { p, cfg, .. } = self;
        let binding = &cfg.bindings[b];
        let point = &cfg.points[pid];
        let span = binding.at.unwrap_or_else(|| binding.ident.span());
        let at = format!(
            "the durable point `{}` at line {}",
            escape(&point.label),
            point.line
        );
        let name = escape(&binding.name());
        let codec = mixed("__durable_codec");
        let (message, label, notes, method, body) = if binding.kind == BindingKind::Iter {
            (
                format!(
                    "the `{name}` loop keeps its remaining items across {at}, but its items, `{{T}}`, cannot be serialized"
                ),
                "the items this loop has not reached yet are saved in the frame",
                &[
                    "a `for` loop with a durable point in its body saves its remaining items, so they must implement `Serialize + DeserializeOwned + Send + 'static`",
                    "a loop over borrowed items (`for x in &v`, `v.iter()`) cannot cross a durable point: loop over owned items (`for x in v.clone()`) or over indices (`for i in 0..v.len()`)",
                ][..],
                quote!(fn #codec<It: #p::LoopIter<Item = T>>(_: &#p::Slot<It>) -> #p::SlotCodec<It>),
                quote!(<It as #p::LoopIter>::codec()),
            )
        } else {
            (
                format!("`{name}` is held across {at}, but `{{T}}` cannot be serialized"),
                "used after the durable point, so it is saved in the frame",
                &[
                    "a local used after a durable point is saved in the frame, so its type must implement `Serialize + DeserializeOwned + Send + 'static`",
                    "a borrow (`&T`, a lock guard, an iterator over a borrowed collection) cannot be saved: clone or own the data before the point (`.clone()`, `.to_owned()`, `.collect::<Vec<_>>()`), or end the borrow before it",
                    "for your own types, derive `serde::Serialize` and `serde::Deserialize`; connections, files and other handles cannot be saved: open them again after the point",
                ][..],
                quote!(fn #codec(_: &#p::Slot<T>) -> #p::SlotCodec<T>),
                quote!(#p::SlotCodec::new()),
            )
        };
        let check = Ident::new(trait_name, Span::mixed_site());
        // The local's type is the trait's parameter, not its `Self`: with a borrowed
        // local as `Self`, rustc replaces the message by a suggestion to dereference it.
        let check_at = Ident::new(trait_name, Span::mixed_site().located_at(span));
        let codec_at = Ident::new("__durable_codec", Span::mixed_site().located_at(span));
        let frame = respanned(quote!(#p::DurableFrame), span);
        let s = located_slot(b, span);
        let call = quote_spanned!(span=> <#frame as #check_at<_>>::#codec_at(&#s));
        let c = codec_ident(b);
        quote! {
            let #c = {
                #[diagnostic::on_unimplemented(
                    message = #message,
                    label = #label,
                    #(note = #notes,)*
                )]
                trait #check<T> {
                    #method;
                }
                #[diagnostic::do_not_recommend]
                impl<T: #p::Saveable> #check<T> for #p::DurableFrame {
                    #method {
                        #body
                    }
                }
                #call
            };
        }
    }

    // Input: point `pid` with its frame (the locals live where its block starts).
    // Output: `enter`, encoding each local through its codec (see `slot_checks`).
    fn enter(&self, pid: PointId) -> TokenStream {
        let Expander { p, cfg, .. } = self;
        let Names {
            ctx,
            entered,
            writer,
            ..
        } = &self.n;
        let encodes = cfg.frame(pid).into_iter().map(|b| {
            let binding = &cfg.bindings[b];
            let span = binding.ident.span();
            let s = located_slot(b, span);
            let c = codec_ident(b);
            let name = binding.name();
            quote_spanned!(span=> #c.encode(#writer, &#s, #name)?;)
        });
        let id = Literal::u32_unsuffixed(pid as u32);
        quote! {
            let #entered = #p::enter(&#ctx, #id, |#writer| {
                #(#encodes)*
                ::core::result::Result::Ok(())
            })?;
        }
    }

    fn point_value(&self, pid: PointId) -> TokenStream {
        let p = &self.p;
        let Names {
            entered,
            recorded,
            run,
            ..
        } = &self.n;
        let point = &self.cfg.points[pid];
        let op = self.markers(&point.op);
        let v = value_ident();
        let await_span = point.await_span;
        let awaited = quote_spanned!(await_span=> .await);
        quote! {
            let #v = match #entered {
                #p::Entered::Recorded(#recorded) => #p::recorded(&#recorded)?,
                #p::Entered::Run(#run) => #p::run(#op, #run) #awaited ?,
            };
        }
    }

    // Output: the last arm: decode the frame into the slots of its point's live
    // locals (in frame order) and jump to the point's block; when inspecting, return
    // the decoded locals as JSON instead of jumping.
    fn resume_arm(&self) -> TokenStream {
        let Expander { p, cfg, .. } = self;
        let Names {
            block,
            bytes,
            reader,
            frame,
            other,
            ..
        } = &self.n;
        let arms = cfg.points.iter().enumerate().map(|(pid, point)| {
            let decodes = cfg.frame(pid).into_iter().map(|b| {
                let binding = &cfg.bindings[b];
                let span = binding.ident.span();
                let s = located_slot(b, span);
                let c = codec_ident(b);
                let name = binding.name();
                quote_spanned!(span=> #c.decode(&mut #reader, &mut #s, #name)?;)
            });
            let jsons = cfg.frame(pid).into_iter().map(|b| {
                let binding = &cfg.bindings[b];
                let s = located_slot(b, binding.ident.span());
                let c = codec_ident(b);
                let name = binding.name();
                quote!((#name, #c.json(&#s, #name)?))
            });
            let id = Literal::u32_unsuffixed(pid as u32);
            let num = Literal::u32_unsuffixed(cfg.number(point.block));
            let inspect = mixed("__durable_inspect");
            quote! {
                #id => {
                    #(#decodes)*
                    #p::frame_done(#reader)?;
                    if #inspect {
                        return ::core::result::Result::Err(#p::Interrupt::Inspected(
                            ::std::vec![#(#jsons),*],
                        ));
                    }
                    #block = #num;
                }
            }
        });
        let b = mixed("__durable_b");
        quote! {
            ::core::primitive::u32::MAX => {
                let #frame = match ::core::option::Option::take(&mut #bytes) {
                    ::core::option::Option::Some(#b) => #b,
                    ::core::option::Option::None => ::core::unreachable!("durable: internal error: no frame"),
                };
                let mut #reader = #p::frame_reader(&#frame)?;
                match #reader.point() {
                    #(#arms)*
                    #other => return ::core::result::Result::Err(#p::unknown_point(#other)),
                }
            }
        }
    }

    fn points_info(&self) -> Vec<TokenStream> {
        let Expander { p, cfg, .. } = self;
        cfg.points
            .iter()
            .enumerate()
            .map(|(pid, point)| {
                let id = Literal::u32_unsuffixed(pid as u32);
                let label = &point.label;
                let line = Literal::u32_unsuffixed(point.line);
                let names = cfg.frame(pid).into_iter().map(|b| cfg.bindings[b].name());
                quote!(#p::PointInfo { id: #id, label: #label, line: #line, locals: &[#(#names),*] })
            })
            .collect()
    }

    /// FNV-1a 64 over the function's tokens (normalised: identifiers, literals,
    /// punctuation and delimiters, never whitespace), then each point's id and the
    /// names of its live locals.
    fn fingerprint(&self) -> u64 {
        let mut h = Fnv::new();
        let mut tokens = TokenStream::new();
        self.wf.item.sig.to_tokens(&mut tokens);
        self.wf.item.block.to_tokens(&mut tokens);
        h.tokens(tokens);
        for pid in 0..self.cfg.points.len() {
            h.write(b"point");
            h.write(&(pid as u32).to_le_bytes());
            for b in self.cfg.frame(pid) {
                h.write(b"local");
                h.write(self.cfg.bindings[b].name().as_bytes());
                h.write(&[0]);
            }
        }
        h.0
    }
}

/// A parameter's name as the user reads it: `order`, `(a, b)`.
fn param_name(param: &crate::ast::Param) -> String {
    let name = match &param.pat {
        syn::Pat::Ident(pi) => pi.ident.to_string(),
        pat => quote!(#pat).to_string().replace(" ,", ","),
    };
    name.strip_prefix("r#").unwrap_or(&name).to_owned()
}

/// The codec of binding `b`'s slot.
fn codec_ident(b: usize) -> syn::Ident {
    format_ident!("__durable_c{}", b, span = Span::mixed_site())
}

/// `tokens` with every span set to `span`: for paths that must resolve the same from
/// anywhere (absolute, or the user's `crate = ..`) and that errors point at.
fn respanned(tokens: TokenStream, span: Span) -> TokenStream {
    use proc_macro2::{Group, TokenTree};
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) => {
                let mut ng = Group::new(g.delimiter(), respanned(g.stream(), span));
                ng.set_span(span);
                TokenTree::Group(ng)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// `holds_connection` → `HoldsConnection`, `for (a, b)` → `ForAB`.
fn camel(text: &str) -> String {
    let text = text.strip_prefix("r#").unwrap_or(text);
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// Text for a `#[diagnostic::on_unimplemented]` format string, braces escaped.
fn escape(text: &str) -> String {
    text.replace('{', "{{").replace('}', "}}")
}

fn located_slot(b: usize, span: Span) -> syn::Ident {
    format_ident!(
        "__durable_s{}",
        b,
        span = Span::mixed_site().located_at(span)
    )
}

/// Builds nested brace groups from `open`/`close` events.
struct Nest {
    stack: Vec<TokenStream>,
}

impl Nest {
    fn new() -> Self {
        Nest {
            stack: vec![TokenStream::new()],
        }
    }

    fn push(&mut self, tokens: TokenStream) {
        if let Some(top) = self.stack.last_mut() {
            top.extend(tokens);
        }
    }

    fn open(&mut self) {
        self.stack.push(TokenStream::new());
    }

    fn close(&mut self) {
        debug_assert!(self.stack.len() > 1, "unbalanced scope in a region");
        if self.stack.len() > 1 {
            let inner = self.stack.pop().unwrap_or_default();
            self.push(quote!({ #inner }));
        }
    }

    fn finish(mut self) -> TokenStream {
        while self.stack.len() > 1 {
            self.close();
        }
        self.stack.pop().unwrap_or_default()
    }
}

/// FNV-1a, 64 bits.
pub struct Fnv(pub u64);

impl Fnv {
    pub fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn tokens(&mut self, tokens: TokenStream) {
        use proc_macro2::{Delimiter, TokenTree};
        for tt in tokens {
            match tt {
                TokenTree::Group(g) => {
                    let (open, close): (&[u8], &[u8]) = match g.delimiter() {
                        Delimiter::Parenthesis => (b"(", b")"),
                        Delimiter::Brace => (b"{", b"}"),
                        Delimiter::Bracket => (b"[", b"]"),
                        Delimiter::None => (b"<g", b"g>"),
                    };
                    self.write(open);
                    self.tokens(g.stream());
                    self.write(close);
                }
                TokenTree::Ident(i) => {
                    self.write(b"i");
                    self.write(i.to_string().as_bytes());
                    self.write(&[0]);
                }
                TokenTree::Punct(p) => {
                    self.write(b"p");
                    let mut buf = [0; 4];
                    self.write(p.as_char().encode_utf8(&mut buf).as_bytes());
                }
                TokenTree::Literal(l) => {
                    self.write(b"l");
                    self.write(l.to_string().as_bytes());
                    self.write(&[0]);
                }
            }
        }
    }
}
