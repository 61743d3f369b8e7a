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
    pub(super) out: Ident,
    pub(super) entered: Ident,
    pub(super) recorded: Ident,
    pub(super) run: Ident,
    pub(super) writer: Ident,
    pub(super) reader: Ident,
    pub(super) frame: Ident,
    pub(super) input: Ident,
    pub(super) other: Ident,
    pub(super) inspect: Ident,
    /// The outcome of a point block's operation.
    pub(super) value: Ident,
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
            out: mixed("__durable_out"),
            entered: mixed("__durable_entered"),
            recorded: mixed("__durable_b"),
            run: mixed("__durable_r"),
            writer: mixed("__durable_w"),
            reader: mixed("__durable_fr"),
            frame: mixed("__durable_frame"),
            input: mixed("__durable_input"),
            other: mixed("__durable_other"),
            inspect: mixed("__durable_inspect"),
            value: mixed("__durable_v"),
            label: Lifetime::new("'__durable_machine", Span::mixed_site()),
        }
    }
}

impl Expander<'_> {
    // Input: the CFG.
    // Output: `machine(async move { items; slots; entry; 'machine: loop { match .. } })`.
    pub(super) fn machine(&self) -> TokenStream {
        let Expander { p, cfg, .. } = self;
        let krate = self.rt.krate();
        let Names {
            entry,
            block,
            bytes,
            out,
            label,
            inspect,
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
                Code::PointValue(pid) => nest.push(self.point_value(*pid)),
                Code::Discard(pid) => {
                    // Dropped through a call spanned at the `.await`, so an unused
                    // `#[must_use]` outcome is reported there, as it would be without the
                    // macro.
                    let v = &self.n.value;
                    let span = self.cfg.points[*pid].await_span;
                    nest.push(quote_spanned!(span=> ::core::convert::identity(#v);));
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
    // Output: its tokens, with each piece spelled out: `?` through `Try`/`FromResidual`
    // out of the machine, `return` as a break out of the machine, jumps, slot reads and
    // the point's outcome.
    fn frag(&self, f: &Frag) -> TokenStream {
        let p = &self.p;
        let label = &self.n.label;
        let mut out = TokenStream::new();
        for piece in &f.0 {
            match piece {
                Piece::Tokens(t) => out.extend(t.clone()),
                Piece::Group(delimiter, span, inner) => {
                    let mut g = Group::new(*delimiter, self.frag(inner));
                    g.set_span(*span);
                    out.extend([TokenTree::Group(g)]);
                }
                Piece::Try { expr, question } => {
                    let inner = self.frag(expr);
                    let (v, r) = (mixed("__durable_x"), mixed("__durable_e"));
                    out.extend(quote_spanned! {*question=>
                        (match #p::Try::branch(#inner) {
                            ::core::ops::ControlFlow::Continue(#v) => #v,
                            ::core::ops::ControlFlow::Break(#r) => break #label #p::FromResidual::from_residual(#r),
                        })
                    });
                }
                Piece::Return { value, keyword } => {
                    let value = match value {
                        Some(v) => self.frag(v),
                        None => quote!(()),
                    };
                    out.extend(quote_spanned!(*keyword=> (break #label #value)));
                }
                Piece::Jump(g) => out.extend(self.goto(*g)),
                Piece::Take(b) => {
                    let s = slot_ident(*b);
                    out.extend(quote!(#s.take()));
                }
                Piece::Outcome => {
                    let v = &self.n.value;
                    out.extend(quote!(#v));
                }
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
        let Names { bytes, input, .. } = &self.n;
        let pats: Vec<_> = self.wf.params.iter().map(|p| &p.pat).collect();
        let pat = match pats.len() {
            1 => quote::ToTokens::to_token_stream(pats[0]),
            _ => quote!((#(#pats,)*)),
        };
        let b = mixed("__durable_b");
        // At the input's type, like its check, so that an input that cannot be stored
        // is reported once.
        let span = self.input_span();
        let path = respanned(quote!(#p::decode_workflow_input::<Self>), span);
        let mut args = Group::new(Delimiter::Parenthesis, quote!(&#input));
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

    // Input: a point.
    // Output: its outcome: recorded, or obtained by running the operation.
    fn point_value(&self, pid: usize) -> TokenStream {
        let p = &self.p;
        let Names {
            entered,
            recorded,
            run,
            value,
            ..
        } = &self.n;
        let point = &self.cfg.points[pid];
        let op = self.frag(&point.op);
        let awaited = quote_spanned!(point.await_span=> .await);
        quote! {
            let #value = match #entered {
                #p::Entered::Recorded(#recorded) => #p::recorded(&#recorded)?,
                #p::Entered::Run(#run) => #p::run(#op, #run) #awaited ?,
            };
        }
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
