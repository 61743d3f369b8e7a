//! The state machine: `__machine`'s body, one `match` arm per block, with the user's
//! code (held as `Frag`s) spelled out around the slots, jumps and point outcomes.

use std::collections::BTreeSet;

use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::{Ident, Lifetime};

use super::diagnostics::respanned;
use super::Expander;
use crate::lower::{BindingId, BlockId, BlockKind, Code, Frag, GotoId, Piece, RegionId, Tail};

/// Identifiers the machine declares; `Span::mixed_site()` so user code cannot see them.
fn mixed(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// The slot of binding `b`.
pub(super) fn slot_ident(b: BindingId) -> Ident {
    format_ident!("__durable_s{}", b, span = Span::mixed_site())
}

/// The codec of binding `b`'s slot.
pub(super) fn codec_ident(b: BindingId) -> Ident {
    format_ident!("__durable_c{}", b, span = Span::mixed_site())
}

/// The identifiers of the generated machine.
pub(super) struct Names {
    pub(super) ctx: Ident,
    pub(super) entry: Ident,
    pub(super) block: Ident,
    pub(super) bytes: Ident,
    pub(super) entered: Ident,
    pub(super) run: Ident,
    pub(super) writer: Ident,
    pub(super) reader: Ident,
    pub(super) inspect: Ident,
    /// Where the machine leaves the interrupt that stops it.
    pub(super) stop: Ident,
    /// The machine loop's label.
    pub(super) label: Lifetime,
}

impl Names {
    pub(super) fn new() -> Self {
        Names {
            ctx: mixed("__durable_ctx"),
            entry: mixed("__durable_entry"),
            block: mixed("__durable_block"),
            bytes: mixed("__durable_bytes"),
            entered: mixed("__durable_entered"),
            run: mixed("__durable_r"),
            writer: mixed("__durable_w"),
            reader: mixed("__durable_fr"),
            inspect: mixed("__durable_inspect"),
            stop: mixed("__durable_stop"),
            label: Lifetime::new("'__durable_machine", Span::mixed_site()),
        }
    }
}

impl Expander<'_> {
    // Input: the CFG.
    // Output: `machine(|stop| async move { items; slots; entry; output('machine: loop {
    // match .. }) })`: the body returns the workflow's output (so the user's `?` and
    // `return` are Rust's own) and stops through `stop`.
    pub(super) fn machine(&self) -> TokenStream {
        let Expander { p, cfg, .. } = self;
        let krate = self.rt.krate();
        let Names {
            entry,
            block,
            bytes,
            label,
            inspect,
            stop,
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
        let output = self.at_output(quote!(<Self as #krate::Workflow>::Output));
        // The user's `?` in an `async` block that returns the wrong type is reported as
        // "this function returns ..." at the block: the user's `async fn`.
        // The user's `?` in an `async` block that returns another type is reported as
        // "this function returns ..." at the block: located at the user's `async`.
        let at = self
            .wf
            .item
            .sig
            .asyncness
            .map_or_else(Span::call_site, |a| a.span);
        let body = quote! {
            #(#items)*
            #(#slots)*
            #(#checks)*
            let (mut #block, mut #bytes, #inspect) = #p::start(#entry);
            #p::output::<#output>(#label: loop {
                match #block {
                    #(#arms)*
                    #resume
                    _ => ::core::unreachable!("durable: internal error: unknown block"),
                }
            })
        };
        let mut body = Group::new(Delimiter::Brace, body);
        body.set_span(at);
        let async_move = quote_spanned!(at=> async move);
        quote!(#p::machine(move |#stop| #async_move #body))
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
        let p = &self.p;
        let region = &self.cfg.regions[r];
        for code in &region.code {
            match code {
                Code::Open => nest.open(),
                Code::Close => nest.close(),
                Code::Stmt(s) => nest.push(self.frag(s)),
                Code::Put(t, v) => {
                    let s = slot_ident(*t);
                    let v = self.frag(v);
                    nest.push(quote!(#s.put(#v);));
                }
                Code::Input => nest.push(self.input()),
                Code::Discard(pid) => {
                    // The outcome spans the user's `ctx.op(..).await`, so an unused
                    // `#[must_use]` outcome is reported there, with rustc's suggestion.
                    let outcome = self.outcome(*pid);
                    nest.push(quote!(#outcome;));
                }
                Code::LoopIter { iter, iterable } => {
                    let it = &self.cfg.bindings[*iter].ident;
                    let iterable = self.frag(iterable);
                    nest.push(quote! {
                        let #it = {
                            use #p::{ViaRange as _, ViaCollect as _};
                            (&#p::ForSource::new(#iterable)).durable_iter()
                        };
                    });
                }
                Code::Unreachable => nest.push(quote!(::core::unreachable!();)),
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
                let cond = self.frag(cond);
                let then_b = self.sub(*then_r);
                let else_b = self.sub(*else_r);
                nest.push(quote!(if #cond { #then_b } else { #else_b }));
            }
            Some(Tail::Match { scrut, arms }) => {
                let scrut = self.frag(scrut);
                let arms = arms.iter().map(|(pat, r)| {
                    let pat = self.frag(pat);
                    let body = self.sub(*r);
                    quote!(#pat => { #body })
                });
                nest.push(quote!(match #scrut { #(#arms)* }));
            }
            Some(Tail::Next {
                iter,
                pat,
                some,
                none,
            }) => {
                let it = &self.cfg.bindings[*iter].ident;
                let pat = self.frag(pat);
                let (some, none) = (self.sub(*some), self.sub(*none));
                nest.push(quote! {
                    match ::core::iter::Iterator::next(&mut #it) {
                        ::core::option::Option::Some(#pat) => { #some }
                        ::core::option::Option::None => { #none }
                    }
                });
            }
            Some(Tail::Finish(v)) => {
                let v = self.frag(v);
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

    // Input: user code as the lowering left it.
    // Output: its tokens, with each piece spelled out: jumps, slot reads and point
    // outcomes.
    fn frag(&self, f: &Frag) -> TokenStream {
        let mut out = TokenStream::new();
        for piece in &f.0 {
            match piece {
                Piece::Tokens(t) => out.extend(t.clone()),
                Piece::Group(delimiter, span, inner) => {
                    let mut g = Group::new(*delimiter, self.frag(inner));
                    g.set_span(*span);
                    out.extend([TokenTree::Group(g)]);
                }
                Piece::Jump(g) => out.extend(self.goto(*g)),
                Piece::Take(b) => {
                    let s = slot_ident(*b);
                    out.extend(quote!(#s.take()));
                }
                Piece::Outcome(pid) => out.extend(self.outcome(*pid)),
                Piece::Unreachable => out.extend(quote!(::core::unreachable!())),
            }
        }
        out
    }

    // Input: a jump.
    // Output: `{ dest.put(value); slot.put(local); ..; __durable_block = N; continue 'machine; }`
    // putting every local live at the target that this block took or declared.
    fn goto(&self, g: GotoId) -> TokenStream {
        let cfg = self.cfg;
        let goto = &cfg.gotos[g];
        let value = goto.value.as_ref().map(|v| self.frag(v));
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
        let Names { bytes, stop, .. } = &self.n;
        let pats: Vec<_> = self.wf.params.iter().map(|p| &p.pat).collect();
        let pat = match pats.len() {
            1 => quote::ToTokens::to_token_stream(pats[0]),
            _ => quote!((#(#pats,)*)),
        };
        // At the input's type, like its check, so that an input that cannot be stored
        // is reported once.
        let span = self.input_span();
        let path = respanned(quote!(#p::input::<Self>), span);
        let mut args = Group::new(Delimiter::Parenthesis, quote!(&mut #bytes));
        args.set_span(span);
        let i = mixed("__durable_i");
        quote! {
            let #pat = match #path #args {
                ::core::result::Result::Ok(#i) => #i,
                ::core::result::Result::Err(#i) => match #p::halt(&#stop, #i).await {},
            };
        }
    }

    // Input: a point.
    // Output: its outcome, where the user's expression uses it: the recorded one, or the
    // one obtained by running the operation. The expression spans the user's
    // `ctx.op(..).await` (its first token at `ctx`, its last at `.await`), so that rustc's
    // errors and lints about the value point there.
    fn outcome(&self, pid: usize) -> TokenStream {
        let p = &self.p;
        let Names {
            entered, run, stop, ..
        } = &self.n;
        let point = &self.cfg.points[pid];
        let op = self.frag(&point.op);
        // rustc spans an expression from its first to its last token only when both are
        // the user's; tokens of the macro's own in between do not matter.
        let head = respanned(quote!(#p::outcome), point.start_span);
        let mut args = Group::new(
            Delimiter::Parenthesis,
            quote!(&#stop, #entered, |#run| #p::run(#op, #run)),
        );
        args.set_span(point.await_span);
        let awaited = quote_spanned!(point.await_span=> .await);
        quote!(#head #args #awaited)
    }
}

/// Builds nested brace groups from `open`/`close` events.
pub(super) struct Nest {
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
