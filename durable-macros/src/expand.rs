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

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use std::collections::BTreeSet;

use crate::args::{self, Args, CodecArg};
use crate::ast::Workflow;
use crate::check;
use crate::ctxt::Ctxt;
use crate::lower::{
    self, machine_label, mixed, slot_ident, value_ident, BlockId, BlockKind, Cfg, Code, GotoId,
    PointId, RegionId, Tail,
};

// Input: the attribute's arguments and the item it is on.
// Output: the workflow struct and impl; on any error, the `compile_error!`s and the
// item unchanged (so IDEs keep working and errors do not cascade).
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
        Err(err) => fallback(Err(err), item),
    }
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
        let tys = wf.params.iter().map(|p| &p.ty);
        let input = match wf.params.len() {
            1 => wf.params[0].ty.to_token_stream(),
            _ => quote!((#(#tys,)*)),
        };
        let output = &wf.output;
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
        let Names { ctx, entry, .. } = &self.n;
        // The user's own spelling of the context type: it must name `Ctx` (and its
        // import is used).
        let ctx_check = self.wf.ctx.as_ref().map(|c| {
            let ty = &c.ty;
            quote!(let #ctx: #ty = #ctx;)
        });
        quote! {
            #(#docs)*
            #(#cfgs)*
            #[allow(non_camel_case_types)]
            #[derive(
                ::core::clone::Clone,
                ::core::marker::Copy,
                ::core::fmt::Debug,
                ::core::default::Default
            )]
            #vis struct #ident;

            #(#cfgs)*
            const _: () = {
                #[automatically_derived]
                impl #krate::Workflow for #ident {
                    type Input = #input;
                    type Output = #output;
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
                    fn __machine(
                        #ctx: #krate::Ctx,
                        #entry: #p::Entry,
                    ) -> #p::Machine<<Self as #krate::Workflow>::Output> {
                        #ctx_check
                        #machine
                    }
                }
            };
        }
    }

    // Input: the user's fn, after an error.
    // Output: the fn nested in `__machine`, every durable point `op.await` replaced by
    // `__durable_fallback(op)` (a value of the operation's output type), and
    // `unimplemented!()`.
    fn neutralised(&self) -> TokenStream {
        struct Neutralise<'a> {
            points: crate::ast::Points<'a>,
            helper: syn::Ident,
        }
        impl syn::visit_mut::VisitMut for Neutralise<'_> {
            fn visit_expr_mut(&mut self, e: &mut syn::Expr) {
                syn::visit_mut::visit_expr_mut(self, e);
                if let Some(aw) = self.points.point(e) {
                    let op = &aw.base;
                    let helper = &self.helper;
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
        let helper = mixed("__durable_fallback");
        let mut item = self.wf.item.clone();
        item.attrs.retain(|a| !a.path().is_ident("doc"));
        syn::visit_mut::VisitMut::visit_block_mut(
            &mut Neutralise {
                points: self.wf.points(),
                helper: helper.clone(),
            },
            &mut item.block,
        );
        let p = &self.p;
        quote! {
            fn #helper<O: #p::Operation>(_: O) -> O::Output {
                ::core::unreachable!()
            }
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
        let arms = cfg.emission_order().into_iter().map(|b| self.block_arm(b));
        let resume = self.resume_arm();
        let (input, frame) = (mixed("__durable_in"), mixed("__durable_fr"));
        let inspect = mixed("__durable_inspect");
        quote! {
            #p::machine(async move {
                #(#items)*
                #(#slots)*
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
                let #out: <Self as #krate::Workflow>::Output = #label: loop {
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
        let Expander { p, krate, .. } = self;
        let Names { bytes, input, .. } = &self.n;
        let pats: Vec<_> = self.wf.params.iter().map(|p| &p.pat).collect();
        let pat = match pats.len() {
            1 => pats[0].to_token_stream(),
            _ => quote!((#(#pats,)*)),
        };
        let b = mixed("__durable_b");
        quote! {
            let #input = match ::core::option::Option::take(&mut #bytes) {
                ::core::option::Option::Some(#b) => #b,
                ::core::option::Option::None => ::core::unreachable!("durable: internal error: no input"),
            };
            let #pat = #p::decode_input::<<Self as #krate::Workflow>::Input>(&#input)?;
        }
    }

    // Input: point `pid` with its frame (the locals live where its block starts).
    // Output: `enter`, encoding each local with the local's own span, so a local that
    // cannot be saved is the error's location.
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
            let name = binding.name();
            quote_spanned!(span=> #p::encode_slot(#writer, &#s, #name)?;)
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
                let name = binding.name();
                quote_spanned!(span=> #p::decode_slot(&mut #reader, &mut #s, #name)?;)
            });
            let jsons = cfg.frame(pid).into_iter().map(|b| {
                let binding = &cfg.bindings[b];
                let s = located_slot(b, binding.ident.span());
                let name = binding.name();
                quote!((#name, #p::slot_json(&#s, #name)?))
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
