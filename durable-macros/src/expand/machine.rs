//! The state machine: `__machine`'s body, one `match` arm per block, with the user's
//! code (held as `Frag`s) spelled out around the slots, jumps and point outcomes.

use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{Ident, Lifetime};

use super::diagnostics::respanned;
use super::Expander;
use crate::lower::{
    BindingId, BindingKind, BlockId, BlockKind, Bring, Code, Enter, Frag, GotoId, Piece, RegionId,
    Tail,
};

/// Identifiers the machine declares; `Span::mixed_site()` so user code cannot see them.
fn mixed(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// The slot of binding `b`.
pub(super) fn slot_ident(b: BindingId) -> Ident {
    format_ident!("__durable_s{}", b, span = Span::mixed_site())
}

/// Whether `f` is (or is made of) the value of a construct that never completes.
fn never_completes(f: &Frag) -> bool {
    f.0.iter().any(|p| match p {
        Piece::Unreachable => true,
        Piece::Group(_, _, inner) => never_completes(inner),
        _ => false,
    })
}

/// The name a renamed pattern binding `b` binds under (see [`Piece::Bind`]).
fn renamed_ident(b: BindingId) -> Ident {
    format_ident!("__durable_p{}", b, span = Span::mixed_site())
}

/// The codec of binding `b`'s slot.
pub(super) fn codec_ident(b: BindingId) -> Ident {
    format_ident!("__durable_c{}", b, span = Span::mixed_site())
}

/// The identifier of point `pid`'s outcome type (`OutcomeType`): its `outcome` call
/// infers it, the resume block reports it when the layout is asked for.
pub(super) fn outcome_type_ident(pid: usize) -> Ident {
    format_ident!("__durable_o{}", pid, span = Span::mixed_site())
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
        let outcome_types = (0..cfg.points.len()).map(|pid| {
            let o = outcome_type_ident(pid);
            quote!(let #o = #p::OutcomeType::new();)
        });
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
            #(#outcome_types)*
            let (mut #block, mut #bytes, #inspect) = #p::start(#entry);
            #p::output::<#output>(#label: loop {
                match #block {
                    #(#arms)*
                    #resume
                    // Typed as the output rather than diverging, so that a machine whose
                    // workflow never returns (an endless loop) is no unreachable code.
                    _ => break #label #p::unknown_block(),
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
                    let inner = &self.n.ctx;
                    // The user's `mut ctx` is needed where the fn assigns it, not in every
                    // block.
                    nest.push(match ctx.mutability {
                        Some(m) => quote! {
                            #[allow(unused_mut)]
                            let #m #ident = ::core::clone::Clone::clone(&#inner);
                        },
                        None => quote!(let #ident = ::core::clone::Clone::clone(&#inner);),
                    });
                }
            }
        }
        // Each local comes back in the scope it was declared in, so that shadowed locals
        // come back in the right order.
        for (i, level) in cfg.places.start[b].iter().enumerate() {
            if i > 0 {
                nest.open();
            }
            for bring in level {
                nest.push(self.bring(*bring, b));
            }
        }
        self.region(block.root, &[], &mut nest);
        let body = nest.finish();
        quote!(#num => { #body })
    }

    // Input: a local coming into a block's Rust scope.
    // Output: `let x = slot.take();`, or `let x;` for one assigned before it is read, with
    // the user's mutability (a taken local may be mutated or not; that is the user's
    // code's business, linted at the user's declaration).
    fn bring(&self, bring: Bring, block: BlockId) -> TokenStream {
        let (x, take) = match bring {
            Bring::Take(x) => (x, true),
            Bring::Declare(x) => (x, false),
        };
        let binding = &self.cfg.bindings[x];
        let id = &binding.ident;
        let s = slot_ident(x);
        let value = take.then(|| quote!(= #s.take()));
        // A `mut` local need not be mutated in every block that takes it; a local read
        // only through a macro's tokens may not be read at all.
        let mut allow = Vec::new();
        if binding.mutable && binding.kind != BindingKind::Iter {
            allow.push(quote!(unused_mut));
        }
        if self.cfg.places.loose.contains(&(block, x)) {
            allow.push(quote!(unused_variables));
        }
        if !take {
            // Declared where the block starts, assigned in its code: the user's own
            // declaration is elsewhere.
            allow.push(quote!(clippy::needless_late_init));
        }
        let allow = (!allow.is_empty()).then(|| quote!(#[allow(#(#allow),*)]));
        let m = binding.mutable.then(|| quote!(mut));
        let ty = (!take)
            .then(|| binding.ty.as_ref().map(|t| quote!(: #t)))
            .flatten();
        quote!(#allow let #m #id #ty #value;)
    }

    // Input: a region, and the bindings its pattern declared (for a sub-region).
    // Output: its code, into `nest`.
    fn region(&self, r: RegionId, binds: &[BindingId], nest: &mut Nest) {
        let p = &self.p;
        let cfg = self.cfg;
        let region = &cfg.regions[r];
        for enter in cfg.places.enter.get(&r).into_iter().flatten() {
            nest.push(match *enter {
                Enter::Park(h) => self.park(h),
                Enter::Rebind(d) => {
                    let binding = &cfg.bindings[d];
                    let (id, fresh) = (&binding.ident, renamed_ident(d));
                    let m = binding.mutable.then(|| quote!(mut));
                    quote!(let #m #id = #fresh;)
                }
            });
        }
        nest.push(self.mut_marks(binds));
        for (i, (code, fx)) in region.code.iter().enumerate() {
            for (k, mv) in fx.moves.iter().enumerate() {
                if let Some(&pid) = cfg.places.moved.get(&(r, i, k)) {
                    nest.push(self.moved_check(mv, pid));
                }
            }
            match code {
                Code::Open => nest.open(),
                Code::Close => {
                    nest.close();
                    for bring in cfg.places.restores.get(&(r, i)).into_iter().flatten() {
                        nest.push(self.bring(*bring, region.block));
                    }
                }
                Code::Stmt(s) => nest.push(self.frag(s)),
                Code::Let { .. } if cfg.places.elided.contains(&(r, i)) => {}
                Code::Let { head, init, tail } => {
                    let (head, tail) = (self.frag(head), self.frag(tail));
                    let parks = cfg.places.parks.get(&(r, i));
                    let init = init.as_ref().map(|v| {
                        let v = self.frag(v);
                        match parks {
                            // The hidden locals are parked once the initializer (which
                            // may read them) has its value, before the pattern binds.
                            Some(parks) => {
                                let parks = parks.iter().map(|&h| self.park(h));
                                let value = mixed("__durable_init");
                                quote!({ let #value = #v; #(#parks)* #value })
                            }
                            None => v,
                        }
                    });
                    if let (None, Some(parks)) = (&init, parks) {
                        nest.push(quote!(#(#parks)*));
                    }
                    nest.push(quote!(#head #init #tail));
                    if init.is_some() {
                        nest.push(self.mut_marks(&fx.declares));
                    }
                }
                Code::Temp { binding, value } => {
                    let b = &cfg.bindings[*binding];
                    let id = &b.ident;
                    let v = self.frag(value);
                    // An operand's value, whatever its type (`()` included).
                    nest.push(if b.mutable {
                        quote!(#[allow(unused_mut, clippy::let_unit_value)] let mut #id = #v;)
                    } else {
                        quote!(#[allow(clippy::let_unit_value)] let #id = #v;)
                    });
                }
                Code::Put(t, v) => {
                    let s = slot_ident(*t);
                    let v = self.frag(v);
                    nest.push(quote!(#s.put(#v);));
                }
                Code::Input => {
                    nest.push(self.input());
                    nest.push(self.mut_marks(&fx.declares));
                }
                Code::Discard(pid) => {
                    // The outcome spans the user's `ctx.op(..).await`, so an unused
                    // `#[must_use]` outcome is reported there, with rustc's suggestion.
                    let outcome = self.outcome(*pid);
                    nest.push(quote!(#outcome;));
                }
                Code::LoopIter { iter, iterable } => {
                    let it = &cfg.bindings[*iter].ident;
                    let iterable = self.frag(iterable);
                    nest.push(quote! {
                        let #it = {
                            use #p::{ViaRange as _, ViaCollect as _};
                            (&#p::ForSource::new(#iterable)).durable_iter()
                        };
                    });
                }
                Code::Diverge(v) => {
                    // What rustc checks of a `let ... else` block: it never completes.
                    let v = self.frag(v);
                    nest.push(quote! {
                        #[allow(unreachable_code, clippy::diverging_sub_expression)]
                        let _: ::core::convert::Infallible = #v;
                    });
                }
                // Nothing jumps to it; code there would only draw rustc's
                // `unreachable_code` lint onto the expansion.
                Code::Unreachable => {}
            }
        }
        let label = &self.n.label;
        match &region.tail {
            Some(Tail::Goto(g)) => {
                // A region's jump may follow code that diverges in ways the macro cannot
                // see (a call to a `-> !` fn); that is no mistake of the user's.
                let goto = self.goto(*g);
                nest.push(quote!(#[allow(unreachable_code)] #goto));
            }
            Some(Tail::If {
                cond,
                binds,
                then_r,
                else_r,
            }) => {
                let cond = self.frag(cond);
                let then_b = self.sub(*then_r, binds);
                let else_b = self.sub(*else_r, &[]);
                nest.push(quote!(if #cond { #then_b } else { #else_b }));
            }
            Some(Tail::Match { scrut, arms }) => {
                let scrut = self.frag(scrut);
                let arms = arms.iter().map(|arm| {
                    let pat = self.frag(&arm.pat);
                    let body = self.sub(arm.region, &arm.binds);
                    quote!(#pat => { #body })
                });
                nest.push(quote!(match #scrut { #(#arms)* }));
            }
            Some(Tail::Next {
                iter,
                pat,
                binds,
                some,
                none,
            }) => {
                let it = &cfg.bindings[*iter].ident;
                let pat = self.frag(pat);
                let (some, none) = (self.sub(*some, binds), self.sub(*none, &[]));
                nest.push(quote! {
                    match ::core::iter::Iterator::next(&mut #it) {
                        ::core::option::Option::Some(#pat) => { #some }
                        ::core::option::Option::None => { #none }
                    }
                });
            }
            Some(Tail::Finish(v)) => {
                let never = never_completes(v);
                let v = self.frag(v);
                nest.push(match never {
                    // The value of a construct that never completes (an endless loop).
                    true => quote!(#[allow(unreachable_code)] { break #label #v; }),
                    false => quote!(break #label #v;),
                });
            }
            Some(Tail::Diverged) => nest.push(quote!(
                #[allow(unreachable_code)]
                {
                    ::core::unreachable!()
                }
            )),
            None => {}
        }
    }

    // Input: a local hidden while it is still needed.
    // Output: `slot.put(h);`.
    fn park(&self, h: BindingId) -> TokenStream {
        self.put_local(h, self.cfg.bindings[h].ident.span())
    }

    // Input: a local whose value leaves for its slot, and where in the user's code that
    // happens.
    // Output: `slot.put(x);`, with `x` located there (so that "value used here after
    // move" points at the point or jump that saves it).
    fn put_local(&self, x: BindingId, at: Span) -> TokenStream {
        let cfg = self.cfg;
        let binding = &cfg.bindings[x];
        let s = slot_ident(x);
        let mut id = binding.ident.clone();
        id.set_span(id.span().located_at(at));
        quote!(#s.put(#id);)
    }

    // Input: bindings just declared with their values.
    // Output: `let _ = &mut x;` for each that only other blocks mutate (see
    // `Places::mut_marks`).
    fn mut_marks(&self, declared: &[BindingId]) -> TokenStream {
        let marks = declared
            .iter()
            .filter(|d| self.cfg.places.mut_marks.contains(d))
            .map(|&d| {
                let id = &self.cfg.bindings[d].ident;
                quote!(let _ = &mut #id;)
            });
        quote!(#(#marks)*)
    }

    fn sub(&self, r: RegionId, binds: &[BindingId]) -> TokenStream {
        let mut nest = Nest::new();
        self.region(r, binds, &mut nest);
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
                Piece::Bind(b) => {
                    let binding = &self.cfg.bindings[*b];
                    if self.cfg.places.renamed.contains(b) {
                        out.extend(renamed_ident(*b).into_token_stream());
                    } else {
                        let id = &binding.ident;
                        let m = binding.mutable.then(|| quote!(mut));
                        out.extend(quote!(#m #id));
                    }
                }
                Piece::FieldName(b) => {
                    if self.cfg.places.renamed.contains(b) {
                        let id = &self.cfg.bindings[*b].ident;
                        out.extend(quote!(#id :));
                    }
                }
                Piece::Unreachable => out.extend(quote!(::core::unreachable!())),
            }
        }
        out
    }

    // Input: a jump.
    // Output: `{ dest.put(value); slot.put(local); ..; __durable_block = N; continue 'machine; }`
    // putting every local live at the target whose value is in a Rust local here.
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
        let puts = cfg.places.puts[g]
            .iter()
            .map(|&x| self.put_local(x, goto.span));
        let target = Literal::u32_unsuffixed(cfg.number(goto.target));
        let Names { block, label, .. } = &self.n;
        // The jump may follow code that already diverged (a `return`, a `break`).
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
        let o = outcome_type_ident(pid);
        // rustc spans an expression from its first to its last token only when both are
        // the user's; tokens of the macro's own in between do not matter.
        let head = respanned(quote!(#p::outcome), point.start_span);
        let mut args = Group::new(
            Delimiter::Parenthesis,
            quote!(&#stop, #o, #entered, |#run| #p::run(#op, #run)),
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
