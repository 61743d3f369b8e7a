//! Lowering: the body of a `#[durable]` fn → a control-flow graph of blocks, split at
//! durable points, with the liveness of every local over it.
//!
//! Invariants the expansion relies on:
//! - every durable point starts a block, and a block holds at most one point;
//! - blocks are numbered in the order the lowering starts them, which is source order:
//!   a local's first `put` is emitted textually before any `take` of it, so rustc infers
//!   each slot's type from the put;
//! - a block's code is a tree of regions (`if`/`match` tails with sub-regions), so code
//!   between two points that branches without reaching a point never crosses a block
//!   boundary and keeps its borrows;
//! - every binding (`let`, pattern, parameter) has its own id, so shadowed locals live in
//!   separate slots.

use std::collections::BTreeSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Block as SynBlock, Expr, ExprAwait, Ident, Lifetime, Pat, Stmt};

use crate::ast::{Points, Workflow};
use crate::ctxt::Ctxt;

pub type BlockId = usize;
pub type BindingId = usize;
pub type RegionId = usize;
pub type GotoId = usize;
pub type PointId = usize;

/// What a binding is, which decides whether it can live in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    /// A user's local with a value where it is declared.
    User,
    /// A user's `let x;`: may not cross a block boundary.
    Uninit,
    /// The context parameter: never saved, re-bound in every block that names it.
    Ctx,
    /// The saveable iterator of a lowered `for` loop.
    Iter,
    /// The destination of an `if`/`match`/`loop`/block used as a value: it only ever
    /// lives in its slot, written just before a jump and taken just after it.
    Dest,
    /// A binding inside a statement that is kept verbatim: never crosses a boundary.
    Internal,
}

/// One binding.
#[derive(Clone, Debug)]
pub struct Binding {
    /// The identifier emitted for it (the user's own for user locals).
    pub ident: Ident,
    /// The kind.
    pub kind: BindingKind,
    /// The name shown for a generated binding (`for i` for a loop's iterator).
    pub label: Option<String>,
}

impl Binding {
    /// Its name as the user reads it (in frames and messages).
    pub fn name(&self) -> String {
        if let Some(label) = &self.label {
            return label.clone();
        }
        let s = self.ident.to_string();
        s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
    }

    fn saveable(&self) -> bool {
        matches!(
            self.kind,
            BindingKind::User | BindingKind::Uninit | BindingKind::Iter
        )
    }
}

/// What starts a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Block 0: decodes the input.
    Entry,
    /// A durable point's block: the resume target of that point.
    Point(PointId),
    /// A join, a loop header or a loop exit.
    Plain,
}

/// A basic block of the state machine.
pub struct Block {
    /// What starts it.
    pub kind: BlockKind,
    /// Its code.
    pub root: RegionId,
    /// The scopes open where it starts, outermost first, each with the bindings
    /// declared in it by then.
    pub start: Vec<Vec<BindingId>>,
    /// Start order: the emitted block number. `None`: never started (unreachable).
    pub seq: Option<u32>,
    /// Bindings its code mentions.
    pub uses: BTreeSet<BindingId>,
    /// Bindings its code declares.
    pub defs: BTreeSet<BindingId>,
    /// Its jumps.
    pub gotos: Vec<GotoId>,
    /// Whether it names the context parameter.
    pub mentions_ctx: bool,
}

/// A straight-line run of code inside a block, ending in a tail.
pub struct Region {
    /// The block it belongs to.
    pub block: BlockId,
    /// Its code, in order.
    pub code: Vec<Code>,
    /// How it ends. `None` only while it is being built.
    pub tail: Option<Tail>,
}

/// One piece of region code.
pub enum Code {
    /// A statement kept verbatim (rewritten: `?`, `return`, jumps).
    Stmt(Box<Stmt>),
    /// `slot.put(value);` for a destination binding.
    Put(BindingId, Box<Expr>),
    /// Opens a lexical scope (`{`).
    Open,
    /// Closes the innermost open scope (`}`).
    Close,
    /// Block 0: decode the input and bind the parameters.
    Input,
    /// A point block: `let __durable_v = <recorded outcome or run the operation>;`.
    PointValue(PointId),
}

/// How a region ends.
pub enum Tail {
    /// Jump to a block.
    Goto(GotoId),
    /// Branch; both regions belong to the same block.
    If {
        cond: Box<Expr>,
        then_r: RegionId,
        else_r: RegionId,
    },
    /// Branch on patterns (guards included in the patterns).
    Match {
        scrut: Box<Expr>,
        arms: Vec<(Pat, RegionId)>,
    },
    /// Leave the machine with the workflow's value.
    Finish(Box<Expr>),
    /// The code before always diverges.
    Diverged,
}

/// A jump from one block to another.
pub struct Goto {
    /// The block it leaves.
    pub from: BlockId,
    /// The block it enters.
    pub target: BlockId,
    /// Every binding in scope where it is, outer to inner: only the last of each name
    /// can be named there.
    pub visible: Vec<BindingId>,
    /// The loop or block value it writes (a `break` with a value).
    pub dest: Option<BindingId>,
    /// That value.
    pub value: Option<Expr>,
}

/// A durable point.
pub struct Point {
    /// Its block.
    pub block: BlockId,
    /// The operation (the expression before `.await`), rewritten.
    pub op: Expr,
    /// The `.await`.
    pub await_span: Span,
    /// `ctx.step("charge", ..)`.
    pub label: String,
    /// Source line of the `.await`.
    pub line: u32,
}

/// The lowered workflow.
#[derive(Default)]
pub struct Cfg {
    pub blocks: Vec<Block>,
    pub regions: Vec<Region>,
    pub bindings: Vec<Binding>,
    pub points: Vec<Point>,
    pub gotos: Vec<Goto>,
    /// Items declared in the lowered body, hoisted before the machine loop.
    pub items: Vec<syn::Item>,
    /// Destinations that are written somewhere (only those get a slot).
    pub written: BTreeSet<BindingId>,
    /// Bindings live at the start of each block (saveable bindings only).
    pub live_in: Vec<BTreeSet<BindingId>>,
}

impl Cfg {
    /// Bindings a block takes from their slots where it starts.
    pub fn taken(&self, b: BlockId) -> impl Iterator<Item = BindingId> + '_ {
        self.live_in[b].intersection(&self.blocks[b].uses).copied()
    }

    /// Bindings a jump puts into their slots.
    pub fn puts(&self, g: GotoId) -> Vec<BindingId> {
        let goto = &self.gotos[g];
        let from = &self.blocks[goto.from];
        self.live_in[goto.target]
            .iter()
            .copied()
            .filter(|b| {
                from.defs.contains(b)
                    || (from.uses.contains(b) && self.live_in[goto.from].contains(b))
            })
            .collect()
    }

    /// The locals saved at a point, in frame order.
    pub fn frame(&self, p: PointId) -> Vec<BindingId> {
        self.live_in[self.points[p].block].iter().copied().collect()
    }

    /// Every binding that needs a slot, in declaration order.
    pub fn slots(&self) -> BTreeSet<BindingId> {
        let mut all: BTreeSet<BindingId> = self.live_in.iter().flatten().copied().collect();
        all.extend(self.written.iter().copied());
        all
    }

    /// Blocks in emission order (start order); unstarted blocks are left out.
    pub fn emission_order(&self) -> Vec<BlockId> {
        let mut order: Vec<BlockId> = (0..self.blocks.len())
            .filter(|&b| self.blocks[b].seq.is_some())
            .collect();
        order.sort_by_key(|&b| self.blocks[b].seq);
        order
    }
}

/// Identifiers the machine declares; `Span::mixed_site()` so user code cannot see them.
pub fn mixed(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// The machine loop's label.
pub fn machine_label() -> Lifetime {
    Lifetime::new("'__durable_machine", Span::mixed_site())
}

/// The slot of binding `b`.
pub fn slot_ident(b: BindingId) -> Ident {
    format_ident!("__durable_s{}", b, span = Span::mixed_site())
}

/// The value a point block's operation produced.
pub fn value_ident() -> Ident {
    mixed("__durable_v")
}

const GOTO_MARKER: &str = "__durable_goto";

#[derive(Clone, Copy)]
enum Out {
    /// The value is not used.
    Discard,
    /// The value goes into this destination's slot.
    Put(BindingId),
}

struct ScopeFrame {
    internal: bool,
    bindings: Vec<BindingId>,
}

struct LoopFrame {
    label: Option<String>,
    is_block: bool,
    brk: BlockId,
    cont: Option<BlockId>,
    dest: Option<BindingId>,
    broken: bool,
}

// Input: the checked workflow.
// Output: its CFG with liveness; errors (unsupported positions, uninitialised or
// shadowed locals that cross a boundary) in `cx`.
pub fn lower(cx: &Ctxt, wf: &Workflow, krate: &TokenStream) -> Cfg {
    let mut l = Lowerer {
        cx,
        points: wf.points(),
        private: quote!(#krate::__private),
        cfg: Cfg::default(),
        scopes: Vec::new(),
        loops: Vec::new(),
        cur: 0,
        next_seq: 0,
    };
    l.lower_fn(wf);
    let mut cfg = l.cfg;
    liveness(&mut cfg);
    check_slots(cx, &cfg);
    cfg
}

struct Lowerer<'a> {
    cx: &'a Ctxt,
    points: Points<'a>,
    private: TokenStream,
    cfg: Cfg,
    scopes: Vec<ScopeFrame>,
    loops: Vec<LoopFrame>,
    cur: RegionId,
    next_seq: u32,
}

impl Lowerer<'_> {
    // ---- building blocks -------------------------------------------------------------

    fn new_block(&mut self, kind: BlockKind) -> BlockId {
        let id = self.cfg.blocks.len();
        let root = self.cfg.regions.len();
        self.cfg.regions.push(Region {
            block: id,
            code: Vec::new(),
            tail: None,
        });
        self.cfg.blocks.push(Block {
            kind,
            root,
            start: Vec::new(),
            seq: None,
            uses: BTreeSet::new(),
            defs: BTreeSet::new(),
            gotos: Vec::new(),
            mentions_ctx: false,
        });
        id
    }

    fn start_block(&mut self, b: BlockId) {
        let block = &mut self.cfg.blocks[b];
        block.seq = Some(self.next_seq);
        self.next_seq += 1;
        block.start = self.scopes.iter().map(|s| s.bindings.clone()).collect();
        self.cur = block.root;
    }

    fn new_region(&mut self) -> RegionId {
        let block = self.cur_block();
        self.cfg.regions.push(Region {
            block,
            code: Vec::new(),
            tail: None,
        });
        self.cfg.regions.len() - 1
    }

    fn cur_block(&self) -> BlockId {
        self.cfg.regions[self.cur].block
    }

    fn emit(&mut self, code: Code) {
        debug_assert!(self.cfg.regions[self.cur].tail.is_none());
        self.cfg.regions[self.cur].code.push(code);
    }

    fn emit_stmt(&mut self, stmt: Stmt) {
        let stmt = self.verbatim_stmt(stmt);
        self.emit(Code::Stmt(Box::new(stmt)));
    }

    fn set_tail(&mut self, region: RegionId, tail: Tail) {
        debug_assert!(self.cfg.regions[region].tail.is_none());
        self.cfg.regions[region].tail = Some(tail);
    }

    fn visible(&self) -> Vec<BindingId> {
        self.scopes
            .iter()
            .flat_map(|s| s.bindings.iter().copied())
            .collect()
    }

    fn new_goto(
        &mut self,
        target: BlockId,
        dest: Option<BindingId>,
        value: Option<Expr>,
    ) -> GotoId {
        let from = self.cur_block();
        let id = self.cfg.gotos.len();
        if let Some(d) = dest {
            self.cfg.written.insert(d);
        }
        self.cfg.gotos.push(Goto {
            from,
            target,
            visible: self.visible(),
            dest,
            value,
        });
        self.cfg.blocks[from].gotos.push(id);
        id
    }

    /// Ends the current region with a jump to `target`.
    fn goto(&mut self, target: BlockId) {
        let g = self.new_goto(target, None, None);
        self.set_tail(self.cur, Tail::Goto(g));
    }

    // ---- bindings --------------------------------------------------------------------

    fn push_scope(&mut self, internal: bool) {
        self.scopes.push(ScopeFrame {
            internal,
            bindings: Vec::new(),
        });
    }

    fn pop_scope(&mut self) {
        self.scopes.pop();
    }

    fn declare(&mut self, ident: Ident, kind: BindingKind) -> BindingId {
        let id = self.cfg.bindings.len();
        self.cfg.bindings.push(Binding {
            ident,
            kind,
            label: None,
        });
        if let Some(scope) = self.scopes.last_mut() {
            scope.bindings.push(id);
        }
        if self.cfg.bindings[id].saveable() {
            let b = self.cur_block();
            self.cfg.blocks[b].defs.insert(id);
        }
        id
    }

    /// Declares the bindings of `pat` in the innermost scope.
    fn bind_pat(&mut self, pat: &Pat, uninit: bool) {
        let internal = self.scopes.last().is_some_and(|s| s.internal);
        let kind = match (internal, uninit) {
            (true, _) => BindingKind::Internal,
            (false, true) => BindingKind::Uninit,
            (false, false) => BindingKind::User,
        };
        let mut idents = Vec::new();
        pat_idents(pat, &mut idents);
        for ident in idents {
            self.declare(ident, kind);
        }
    }

    fn lookup(&self, name: &str) -> Option<BindingId> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.bindings.iter().rev())
            .copied()
            .find(|&b| self.cfg.bindings[b].ident == name)
    }

    fn use_name(&mut self, name: &str) {
        if let Some(id) = self.lookup(name) {
            let block = self.cur_block();
            match self.cfg.bindings[id].kind {
                BindingKind::Ctx => self.cfg.blocks[block].mentions_ctx = true,
                BindingKind::Dest | BindingKind::Internal => {}
                _ => {
                    self.cfg.blocks[block].uses.insert(id);
                }
            }
        }
    }

    fn new_dest(&mut self) -> BindingId {
        let id = self.cfg.bindings.len();
        self.cfg.bindings.push(Binding {
            ident: format_ident!("__durable_t{}", id, span = Span::mixed_site()),
            kind: BindingKind::Dest,
            label: None,
        });
        id
    }

    fn put(&mut self, dest: BindingId, value: Expr) {
        self.cfg.written.insert(dest);
        self.emit(Code::Put(dest, Box::new(value)));
    }

    // ---- the function ------------------------------------------------------------

    // Input: `async fn f(ctx: Ctx, a: A, ..) -> R { body }`.
    // Output: block 0 decodes the input and binds the parameters, then the body; the
    // body's value leaves the machine (`break '__durable_machine value`).
    fn lower_fn(&mut self, wf: &Workflow) {
        self.push_scope(false);
        let entry = self.new_block(BlockKind::Entry);
        self.start_block(entry);
        if let Some(ident) = wf.ctx.as_ref().and_then(|c| c.ident.clone()) {
            self.declare(ident, BindingKind::Ctx);
        }
        self.emit(Code::Input);
        for param in &wf.params {
            self.bind_pat(&param.pat, false);
        }
        let tail = self.lower_stmts(&wf.body.stmts);
        match tail {
            Some(e) => {
                let v = self.lower_value(&e);
                let v = self.verbatim_expr(v);
                self.set_tail(self.cur, Tail::Finish(Box::new(v)));
            }
            None if wf.body.stmts.last().is_some_and(diverges) => {
                self.set_tail(self.cur, Tail::Diverged);
            }
            None => self.set_tail(self.cur, Tail::Finish(Box::new(syn::parse_quote!(())))),
        }
        self.pop_scope();
    }

    // ---- statements --------------------------------------------------------------

    // Input: a block's statements.
    // Output: all but the tail expression lowered into the current region (items
    // hoisted); the tail, unlowered, for the caller to place.
    fn lower_stmts(&mut self, stmts: &[Stmt]) -> Option<Expr> {
        for (i, stmt) in stmts.iter().enumerate() {
            let last = i + 1 == stmts.len();
            match stmt {
                Stmt::Item(item) => self.cfg.items.push(item.clone()),
                Stmt::Local(local) => self.lower_local(local),
                Stmt::Expr(e, None) if last => return Some(e.clone()),
                Stmt::Expr(e, semi) => self.lower_expr_stmt(e, *semi),
                Stmt::Macro(m) if last && m.semi_token.is_none() => {
                    return Some(Expr::Macro(syn::ExprMacro {
                        attrs: m.attrs.clone(),
                        mac: m.mac.clone(),
                    }))
                }
                Stmt::Macro(_) => self.emit_stmt(stmt.clone()),
            }
        }
        None
    }

    // Input: `let pat = init;` / `let pat = init else { .. };` / `let pat;`.
    // Output: verbatim when `init` has no point; otherwise `init` lowered to a value `v`
    // and `let pat = v;` in the block where `v` is available.
    fn lower_local(&mut self, local: &syn::Local) {
        let Some(init) = &local.init else {
            return self.emit_stmt(Stmt::Local(local.clone()));
        };
        if !self.points.in_expr(&init.expr) {
            return self.emit_stmt(Stmt::Local(local.clone()));
        }
        let value = self.lower_value(&init.expr);
        let mut local = local.clone();
        if let Some(init) = &mut local.init {
            *init.expr = value;
        }
        self.emit_stmt(Stmt::Local(local));
    }

    // Input: an expression statement.
    // Output: verbatim without points; control flow with points lowered without a
    // value; otherwise the point lowered first and the rest of the statement after it.
    fn lower_expr_stmt(&mut self, e: &Expr, semi: Option<syn::Token![;]>) {
        let semi = Some(semi.unwrap_or_default());
        if !self.points.in_expr(e) {
            return self.emit_stmt(Stmt::Expr(e.clone(), semi));
        }
        if self.is_control(e) {
            return self.lower_control(e, Out::Discard);
        }
        let value = self.lower_value(e);
        self.emit_stmt(Stmt::Expr(value, semi));
    }

    // ---- expressions -------------------------------------------------------------

    /// Control flow whose branches or body contain a point (lowered into blocks, not
    /// into an expression context).
    fn is_control(&self, e: &Expr) -> bool {
        let p = self.points;
        match e {
            Expr::Block(b) => p.in_block(&b.block),
            Expr::If(i) => {
                p.in_block(&i.then_branch)
                    || i.else_branch.as_ref().is_some_and(|(_, e)| p.in_expr(e))
            }
            Expr::Match(m) => m.arms.iter().any(|a| p.in_expr(&a.body)),
            Expr::Loop(l) => p.in_block(&l.body),
            Expr::While(w) => p.in_expr(&w.cond) || p.in_block(&w.body),
            Expr::ForLoop(f) => p.in_block(&f.body),
            Expr::Paren(e) => self.is_control(&e.expr),
            Expr::Group(e) => self.is_control(&e.expr),
            _ => false,
        }
    }

    // Input: an expression `e` (possibly with points).
    // Output: an expression, free of points, that evaluates to `e`'s value in the
    // current region once this returns (`__durable_v`, a destination's `take()`, or `e`
    // with its first-evaluated operand so replaced).
    fn lower_value(&mut self, e: &Expr) -> Expr {
        if !self.points.in_expr(e) {
            return e.clone();
        }
        if let Some(aw) = self.points.point(e) {
            return self.lower_point(aw);
        }
        if self.is_control(e) {
            let t = self.new_dest();
            self.lower_control(e, Out::Put(t));
            return if self.cfg.written.contains(&t) {
                let slot = slot_ident(t);
                Expr::Verbatim(quote!(#slot.take()))
            } else {
                // Nothing writes the value: the construct never completes normally.
                Expr::Verbatim(quote!(::core::unreachable!()))
            };
        }
        self.lower_hole(e)
    }

    // Input: `ctx.op(..).await`.
    // Output: a jump to a new point block; the point block, whose code starts by
    // binding `__durable_v` to the operation's outcome; `__durable_v`.
    fn lower_point(&mut self, aw: &ExprAwait) -> Expr {
        if let Some(inner) = self.points.first_in_expr(&aw.base) {
            self.cx.error_at(
                inner,
                "a durable operation cannot be built from another one's `.await`; move this `.await` into its own statement: `let value = ctx.step(..).await;`",
            );
        }
        let pid = self.cfg.points.len();
        let block = self.new_block(BlockKind::Point(pid));
        self.goto(block);
        self.start_block(block);
        self.emit(Code::PointValue(pid));
        let op = self.verbatim_expr((*aw.base).clone());
        self.cfg.points.push(Point {
            block,
            op,
            await_span: aw.await_token.span,
            label: point_label(&aw.base),
            line: aw.await_token.span.start().line as u32,
        });
        let v = value_ident();
        syn::parse_quote!(#v)
    }

    // Input: an expression that is not itself a point or lowered control flow, with a
    // point in one operand.
    // Output: that operand lowered (it must be the first thing evaluated: only pure
    // operands, such as paths and literals, may come before it, and none after it may
    // contain a point); the expression with the operand's value in its place.
    fn lower_hole(&mut self, e: &Expr) -> Expr {
        let points = self.points;
        let mut e = e.clone();
        let Some(first) = points.first_in_expr(&e) else {
            return e;
        };
        let Some((mut kids, conditional)) = eval_children(&mut e) else {
            self.cx.error_at(
                first,
                "a durable `.await` must be the first thing evaluated in its expression; move it into its own statement: `let value = ctx.step(..).await;`",
            );
            return e;
        };
        for c in conditional {
            if let Some(span) = points.first_in_expr(c) {
                self.cx.error_at(
                    span,
                    "this durable `.await` runs only if the left operand allows it; use an `if` instead of `&&`/`||`",
                );
            }
        }
        let Some(idx) = kids.iter().position(|k| points.in_expr(k)) else {
            return e;
        };
        if kids[..idx].iter().any(|k| !is_pure(k)) {
            self.cx.error_at(
                first,
                "a durable `.await` must be the first thing evaluated in its expression; move it into its own statement: `let value = ctx.step(..).await;`",
            );
        }
        for k in &kids[idx + 1..] {
            if let Some(span) = points.first_in_expr(k) {
                self.cx.error_at(
                    span,
                    "only one durable `.await` can be lowered per expression; move this one into its own statement: `let value = ctx.step(..).await;`",
                );
            }
        }
        let kid = &mut *kids[idx];
        *kid = self.lower_value(kid);
        e
    }

    // ---- control flow ------------------------------------------------------------

    fn lower_control(&mut self, e: &Expr, out: Out) {
        match e {
            Expr::Block(b) if b.label.is_some() => self.lower_labeled(b, out),
            Expr::Block(b) => self.lower_block(&b.block, out),
            Expr::If(i) => self.lower_if(i, out),
            Expr::Match(m) => self.lower_match(m, out),
            Expr::Loop(l) => self.lower_loop(l, out),
            Expr::While(w) => self.lower_while(w, out),
            Expr::ForLoop(f) => self.lower_for(f, out),
            Expr::Paren(p) => self.lower_control(&p.expr, out),
            Expr::Group(g) => self.lower_control(&g.expr, out),
            _ => self.lower_into(e, out),
        }
    }

    /// Lowers `e` and sends its value to `out`.
    fn lower_into(&mut self, e: &Expr, out: Out) {
        match e {
            Expr::Block(b) if b.label.is_none() && b.attrs.is_empty() => {
                return self.lower_block(&b.block, out)
            }
            _ if self.is_control(e) => return self.lower_control(e, out),
            _ => {}
        }
        match out {
            Out::Discard => self.lower_expr_stmt(e, None),
            Out::Put(t) => {
                let v = self.lower_value(e);
                let v = self.verbatim_expr(v);
                self.put(t, v);
            }
        }
    }

    // Input: `{ stmts; tail }`.
    // Output: a lexical scope in the emitted code (`Open` .. `Close`) holding the
    // statements; the tail's value sent to `out` before the scope closes.
    fn lower_block(&mut self, block: &SynBlock, out: Out) {
        self.push_scope(false);
        self.emit(Code::Open);
        let tail = self.lower_stmts(&block.stmts);
        match (tail, out) {
            (Some(e), out) => self.lower_into(&e, out),
            (None, Out::Put(t)) if !block.stmts.last().is_some_and(diverges) => {
                self.put(t, syn::parse_quote!(()));
            }
            (None, _) => {}
        }
        self.emit(Code::Close);
        self.pop_scope();
    }

    // Input: `'a: { .. break 'a v; .. }`.
    // Output: the block lowered; `break 'a v` jumps to the exit block with `v` in the
    // destination.
    fn lower_labeled(&mut self, b: &syn::ExprBlock, out: Out) {
        let exit = self.new_block(BlockKind::Plain);
        self.loops.push(LoopFrame {
            label: b.label.as_ref().map(|l| l.name.ident.to_string()),
            is_block: true,
            brk: exit,
            cont: None,
            dest: dest_of(out),
            broken: false,
        });
        self.lower_block(&b.block, out);
        self.loops.pop();
        self.goto(exit);
        self.start_block(exit);
    }

    // Input: `if cond { a } else { b }` with a point in a branch.
    // Output: `cond` lowered to a value; an `if` tail whose branches are regions of the
    // current block, each ending in a jump to a new join block; `if let` bindings
    // declared for the then branch.
    fn lower_if(&mut self, i: &syn::ExprIf, out: Out) {
        let cond = self.lower_value(&i.cond);
        self.push_scope(false);
        let cond = self.verbatim_expr(cond);
        let at = self.cur;
        let then_r = self.new_region();
        let else_r = self.new_region();
        self.set_tail(
            at,
            Tail::If {
                cond: Box::new(cond),
                then_r,
                else_r,
            },
        );
        let join = self.new_block(BlockKind::Plain);
        self.cur = then_r;
        self.emit(Code::Open);
        self.lower_block(&i.then_branch, out);
        self.emit(Code::Close);
        self.pop_scope();
        self.goto(join);
        self.cur = else_r;
        match &i.else_branch {
            Some((_, e)) => self.lower_into(e, out),
            None => {
                if let Out::Put(t) = out {
                    self.put(t, syn::parse_quote!(()));
                }
            }
        }
        self.goto(join);
        self.start_block(join);
    }

    // Input: `match scrut { pat if guard => body, .. }` with a point in an arm body.
    // Output: `scrut` lowered to a value; a `match` tail with the user's patterns and
    // guards, each arm a region of the current block that ends in a jump to a new join
    // block.
    fn lower_match(&mut self, m: &syn::ExprMatch, out: Out) {
        let scrut = self.lower_value(&m.expr);
        let scrut = self.verbatim_expr(scrut);
        let at = self.cur;
        let join = self.new_block(BlockKind::Plain);
        let mut arms = Vec::new();
        for arm in &m.arms {
            self.cur = at;
            let region = self.new_region();
            self.cur = region;
            self.push_scope(false);
            let mut pat = arm.pat.clone();
            match &mut pat {
                Pat::Guard(g) => {
                    self.bind_pat(&g.pat, false);
                    let guard =
                        std::mem::replace(&mut *g.guard, Expr::Verbatim(TokenStream::new()));
                    *g.guard = self.verbatim_expr(guard);
                }
                other => self.bind_pat(other, false),
            }
            arms.push((pat, region));
            self.emit(Code::Open);
            self.lower_into(&arm.body, out);
            self.emit(Code::Close);
            self.pop_scope();
            self.goto(join);
        }
        self.set_tail(
            at,
            Tail::Match {
                scrut: Box::new(scrut),
                arms,
            },
        );
        self.start_block(join);
    }

    // Input: `'l: loop { body }` with a point in the body.
    // Output: a header block holding the body, which jumps back to it; an exit block
    // that `break`s jump to (with their value in the destination).
    fn lower_loop(&mut self, l: &syn::ExprLoop, out: Out) {
        let header = self.new_block(BlockKind::Plain);
        let exit = self.new_block(BlockKind::Plain);
        self.goto(header);
        self.start_block(header);
        self.loops.push(LoopFrame {
            label: l.label.as_ref().map(|l| l.name.ident.to_string()),
            is_block: false,
            brk: exit,
            cont: Some(header),
            dest: dest_of(out),
            broken: false,
        });
        self.lower_block(&l.body, Out::Discard);
        self.goto(header);
        let frame = self.loops.pop();
        self.start_block(exit);
        if !frame.is_some_and(|f| f.broken) {
            // No `break` leaves this loop: the exit block is never reached.
            self.emit(Code::Stmt(Box::new(
                syn::parse_quote!(::core::unreachable!();),
            )));
        }
    }

    // Input: `'l: while cond { body }` (also `while let`) with a point in it.
    // Output: a header block evaluating `cond` (lowered: it runs every iteration) into
    // an `if` tail: the body, jumping back to the header, or the exit block.
    fn lower_while(&mut self, w: &syn::ExprWhile, out: Out) {
        let header = self.new_block(BlockKind::Plain);
        let exit = self.new_block(BlockKind::Plain);
        self.goto(header);
        self.start_block(header);
        self.loops.push(LoopFrame {
            label: w.label.as_ref().map(|l| l.name.ident.to_string()),
            is_block: false,
            brk: exit,
            cont: Some(header),
            dest: None,
            broken: false,
        });
        let cond = self.lower_value(&w.cond);
        self.push_scope(false);
        let cond = self.verbatim_expr(cond);
        let at = self.cur;
        let then_r = self.new_region();
        let else_r = self.new_region();
        self.set_tail(
            at,
            Tail::If {
                cond: Box::new(cond),
                then_r,
                else_r,
            },
        );
        self.cur = then_r;
        self.emit(Code::Open);
        self.lower_block(&w.body, Out::Discard);
        self.emit(Code::Close);
        self.pop_scope();
        self.goto(header);
        self.loops.pop();
        self.cur = else_r;
        self.goto(exit);
        self.start_block(exit);
        if let Out::Put(t) = out {
            self.put(t, syn::parse_quote!(()));
        }
    }

    // Input: `'l: for pat in iterable { body }` with a point in the body.
    // Output: the iterable made saveable once (`ForSource`) into an iterator local; a
    // header block matching `Iterator::next(&mut it)` on `Some(pat)` (the body, jumping
    // back) or `None` (the exit block).
    fn lower_for(&mut self, f: &syn::ExprForLoop, out: Out) {
        let iterable = self.lower_value(&f.expr);
        let iterable = self.verbatim_expr(iterable);
        let p = self.private.clone();
        let it_id = self.cfg.bindings.len();
        // Located at the iterable, so an iterable whose items cannot be saved is the
        // error's location.
        let at = f.expr.span();
        let it = format_ident!(
            "__durable_i{}",
            it_id,
            span = Span::mixed_site().located_at(at)
        );
        let init: Stmt = syn::parse_quote! {
            let #it = {
                use #p::{ViaRange as _, ViaCollect as _};
                (&#p::ForSource::new(#iterable)).durable_iter()
            };
        };
        self.emit(Code::Stmt(Box::new(init)));
        let it_binding = self.declare(it.clone(), BindingKind::Iter);
        let pat_text = f.pat.to_token_stream().to_string();
        self.cfg.bindings[it_binding].label = Some(format!("for {pat_text}"));
        let header = self.new_block(BlockKind::Plain);
        let exit = self.new_block(BlockKind::Plain);
        self.goto(header);
        self.start_block(header);
        self.cfg.blocks[header].uses.insert(it_id);
        self.loops.push(LoopFrame {
            label: f.label.as_ref().map(|l| l.name.ident.to_string()),
            is_block: false,
            brk: exit,
            cont: Some(header),
            dest: None,
            broken: false,
        });
        let at = self.cur;
        let some_r = self.new_region();
        let none_r = self.new_region();
        self.cur = some_r;
        self.push_scope(false);
        self.bind_pat(&f.pat, false);
        self.emit(Code::Open);
        self.lower_block(&f.body, Out::Discard);
        self.emit(Code::Close);
        self.pop_scope();
        self.goto(header);
        self.loops.pop();
        self.cur = none_r;
        self.goto(exit);
        let pat = &f.pat;
        self.set_tail(
            at,
            Tail::Match {
                scrut: Box::new(syn::parse_quote!(::core::iter::Iterator::next(&mut #it))),
                arms: vec![
                    (
                        syn::parse_quote!(::core::option::Option::Some(#pat)),
                        some_r,
                    ),
                    (syn::parse_quote!(::core::option::Option::None), none_r),
                ],
            },
        );
        self.start_block(exit);
        if let Out::Put(t) = out {
            self.put(t, syn::parse_quote!(()));
        }
    }

    // ---- verbatim code -----------------------------------------------------------

    fn verbatim_stmt(&mut self, mut stmt: Stmt) -> Stmt {
        Verbatim::new(self).visit_stmt_mut(&mut stmt);
        stmt
    }

    fn verbatim_expr(&mut self, mut e: Expr) -> Expr {
        Verbatim::new(self).visit_expr_mut(&mut e);
        e
    }
}

fn dest_of(out: Out) -> Option<BindingId> {
    match out {
        Out::Put(t) => Some(t),
        Out::Discard => None,
    }
}

/// Rewrites a statement that stays verbatim and records what it mentions and declares:
/// - `e?` → `match Try::branch(e) { Continue(v) => v, Break(r) => break '__durable_machine
///   FromResidual::from_residual(r) }`;
/// - `return v` → `break '__durable_machine v`;
/// - `break`/`continue` that leave a lowered loop or labeled block → a jump marker that
///   the expansion replaces with the puts of the target's live locals and the jump;
/// - nothing inside closures, `async` blocks or nested items (their `?`, `return` and
///   `break` are their own), but their mentions of locals still count.
struct Verbatim<'l, 'a> {
    l: &'l mut Lowerer<'a>,
    /// Loops and labeled blocks inside the statement: (label, is a block).
    inner: Vec<(Option<String>, bool)>,
    /// Depth of closures and `async` blocks.
    opaque: usize,
}

impl<'l, 'a> Verbatim<'l, 'a> {
    fn new(l: &'l mut Lowerer<'a>) -> Self {
        Verbatim {
            l,
            inner: Vec::new(),
            opaque: 0,
        }
    }

    fn scoped(&mut self, f: impl FnOnce(&mut Self)) {
        self.l.push_scope(true);
        f(self);
        self.l.pop_scope();
    }

    fn in_loop(&mut self, label: Option<&syn::Label>, is_block: bool, f: impl FnOnce(&mut Self)) {
        self.inner
            .push((label.map(|l| l.name.ident.to_string()), is_block));
        f(self);
        self.inner.pop();
    }

    fn opaque(&mut self, f: impl FnOnce(&mut Self)) {
        let inner = std::mem::take(&mut self.inner);
        self.opaque += 1;
        f(self);
        self.opaque -= 1;
        self.inner = inner;
    }

    /// The lowered loop a `break`/`continue` leaves, if it leaves one.
    fn lowered_target(&self, label: Option<&Lifetime>, is_continue: bool) -> Option<usize> {
        match label {
            Some(label) => {
                let name = label.ident.to_string();
                if self.inner.iter().any(|(l, _)| l.as_deref() == Some(&*name)) {
                    return None;
                }
                let idx = self
                    .l
                    .loops
                    .iter()
                    .rposition(|f| f.label.as_deref() == Some(&*name))?;
                (!is_continue || !self.l.loops[idx].is_block).then_some(idx)
            }
            None => {
                if self.inner.iter().any(|(_, is_block)| !is_block) {
                    return None;
                }
                self.l.loops.iter().rposition(|f| !f.is_block)
            }
        }
    }

    fn marker(&mut self, frame: usize, is_continue: bool, value: Option<Expr>, span: Span) -> Expr {
        let f = &mut self.l.loops[frame];
        let (target, dest) = if is_continue {
            (f.cont.unwrap_or(f.brk), None)
        } else {
            f.broken = true;
            (f.brk, f.dest)
        };
        let g = self.l.new_goto(target, dest, value);
        let marker = Ident::new(GOTO_MARKER, Span::mixed_site().located_at(span));
        let g = proc_macro2::Literal::usize_unsuffixed(g);
        Expr::Verbatim(quote!(#marker!(#g)))
    }

    fn macro_tokens(&mut self, mac: &mut syn::Macro) {
        self.mention_tokens(&mac.tokens.clone());
        if self.opaque > 0 || !has_control_tokens(&mac.tokens) {
            return;
        }
        if let Some(mut args) = crate::check::macro_args(&mac.tokens) {
            for arg in args.iter_mut() {
                self.visit_expr_mut(arg);
            }
            mac.tokens = args.into_token_stream();
        }
    }

    /// Every identifier in macro tokens that names a local in scope, and every `{name}`
    /// in string literals (format strings), counts as a use: conservatively.
    fn mention_tokens(&mut self, tokens: &TokenStream) {
        let mut prev_dot = false;
        for tt in tokens.clone() {
            match &tt {
                TokenTree::Ident(i) if !prev_dot => self.l.use_name(&i.to_string()),
                TokenTree::Group(g) => self.mention_tokens(&g.stream()),
                TokenTree::Literal(lit) => {
                    for name in format_names(&lit.to_string()) {
                        self.l.use_name(&name);
                    }
                }
                _ => {}
            }
            prev_dot = matches!(&tt, TokenTree::Punct(p) if p.as_char() == '.');
        }
    }
}

impl VisitMut for Verbatim<'_, '_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::Path(p) => {
                if p.qself.is_none() {
                    if let Some(ident) = p.path.get_ident() {
                        self.l.use_name(&ident.to_string());
                    }
                }
            }
            Expr::Try(t) if self.opaque == 0 => {
                self.visit_expr_mut(&mut t.expr);
                let inner = &t.expr;
                let p = &self.l.private;
                let label = machine_label();
                let (v, r) = (mixed("__durable_x"), mixed("__durable_e"));
                *e = Expr::Verbatim(quote_spanned! {t.question_token.span()=>
                    (match #p::Try::branch(#inner) {
                        ::core::ops::ControlFlow::Continue(#v) => #v,
                        ::core::ops::ControlFlow::Break(#r) => break #label #p::FromResidual::from_residual(#r),
                    })
                });
            }
            Expr::Return(r) if self.opaque == 0 => {
                if let Some(v) = &mut r.expr {
                    self.visit_expr_mut(v);
                }
                let label = machine_label();
                let value = match &r.expr {
                    Some(v) => v.to_token_stream(),
                    None => quote!(()),
                };
                *e = Expr::Verbatim(quote_spanned!(r.return_token.span=> (break #label #value)));
            }
            Expr::Break(b) if self.opaque == 0 => {
                if let Some(v) = &mut b.expr {
                    self.visit_expr_mut(v);
                }
                if let Some(frame) = self.lowered_target(b.label.as_ref(), false) {
                    let value = b.expr.as_ref().map(|v| (**v).clone());
                    *e = self.marker(frame, false, value, b.break_token.span);
                }
            }
            Expr::Continue(c) if self.opaque == 0 => {
                if let Some(frame) = self.lowered_target(c.label.as_ref(), true) {
                    *e = self.marker(frame, true, None, c.continue_token.span);
                }
            }
            Expr::Macro(m) => self.macro_tokens(&mut m.mac),
            Expr::Closure(c) => self.opaque(|v| {
                v.scoped(|v| {
                    for input in &c.inputs {
                        v.l.bind_pat(input, false);
                    }
                    v.visit_expr_mut(&mut c.body);
                })
            }),
            Expr::Async(a) => self.opaque(|v| v.visit_block_mut(&mut a.block)),
            Expr::Const(c) => self.opaque(|v| v.visit_block_mut(&mut c.block)),
            Expr::Match(m) => {
                self.visit_expr_mut(&mut m.expr);
                for arm in &mut m.arms {
                    self.scoped(|v| {
                        match &mut arm.pat {
                            Pat::Guard(g) => {
                                v.l.bind_pat(&g.pat, false);
                                v.visit_expr_mut(&mut g.guard);
                            }
                            pat => v.l.bind_pat(pat, false),
                        }
                        v.visit_expr_mut(&mut arm.body);
                    });
                }
            }
            Expr::If(i) => {
                self.scoped(|v| {
                    v.visit_expr_mut(&mut i.cond);
                    v.visit_block_mut(&mut i.then_branch);
                });
                if let Some((_, els)) = &mut i.else_branch {
                    self.visit_expr_mut(els);
                }
            }
            Expr::While(w) => self.scoped(|v| {
                v.visit_expr_mut(&mut w.cond);
                v.in_loop(w.label.as_ref(), false, |v| v.visit_block_mut(&mut w.body));
            }),
            Expr::ForLoop(f) => {
                self.visit_expr_mut(&mut f.expr);
                self.scoped(|v| {
                    v.l.bind_pat(&f.pat, false);
                    v.in_loop(f.label.as_ref(), false, |v| v.visit_block_mut(&mut f.body));
                });
            }
            Expr::Loop(l) => {
                self.in_loop(l.label.as_ref(), false, |v| v.visit_block_mut(&mut l.body))
            }
            Expr::Block(b) if b.label.is_some() => {
                self.in_loop(b.label.as_ref(), true, |v| v.visit_block_mut(&mut b.block))
            }
            Expr::Let(l) => {
                self.visit_expr_mut(&mut l.expr);
                self.l.bind_pat(&l.pat, false);
            }
            _ => visit_mut::visit_expr_mut(self, e),
        }
    }

    fn visit_block_mut(&mut self, b: &mut SynBlock) {
        self.scoped(|v| {
            for stmt in &mut b.stmts {
                v.visit_stmt_mut(stmt);
            }
        });
    }

    fn visit_stmt_mut(&mut self, s: &mut Stmt) {
        match s {
            Stmt::Local(local) => {
                if let Some(init) = &mut local.init {
                    self.visit_expr_mut(&mut init.expr);
                    if let Some((_, els)) = &mut init.diverge {
                        self.visit_expr_mut(els);
                    }
                }
                let uninit = local.init.is_none();
                self.l.bind_pat(&local.pat, uninit);
            }
            Stmt::Item(_) => {}
            Stmt::Expr(e, _) => self.visit_expr_mut(e),
            Stmt::Macro(m) => self.macro_tokens(&mut m.mac),
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
    fn visit_type_mut(&mut self, _: &mut syn::Type) {}
    fn visit_pat_mut(&mut self, _: &mut Pat) {}
    fn visit_attribute_mut(&mut self, _: &mut syn::Attribute) {}
}

fn has_control_tokens(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().any(|tt| match tt {
        TokenTree::Punct(p) => p.as_char() == '?',
        TokenTree::Ident(i) => i == "return" || i == "break" || i == "continue",
        TokenTree::Group(g) => has_control_tokens(&g.stream()),
        TokenTree::Literal(_) => false,
    })
}

/// Names used by a format string: `{name}`, `{name:?}`, `{:width$}`.
pub fn format_names(lit: &str) -> Vec<String> {
    let body = if let Some(rest) = lit.strip_prefix('"') {
        rest
    } else if let Some(rest) = lit.strip_prefix('r') {
        rest.trim_start_matches('#').strip_prefix('"').unwrap_or("")
    } else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '{' {
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            continue;
        }
        let mut inner = String::new();
        for c in chars.by_ref() {
            if c == '}' {
                break;
            }
            inner.push(c);
        }
        let (arg, spec) = inner.split_once(':').unwrap_or((&inner, ""));
        let arg = arg.trim();
        if is_ident(arg) {
            names.push(arg.to_owned());
        }
        // `width$` / `.precision$` in the spec.
        let mut word = String::new();
        for c in spec.chars() {
            if c.is_alphanumeric() || c == '_' {
                word.push(c);
            } else {
                if c == '$' && is_ident(&word) {
                    names.push(word.clone());
                }
                word.clear();
            }
        }
    }
    names
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
        && s != "_"
}

/// The identifiers a pattern binds. An identifier starting with an uppercase letter is a
/// constant or a variant (unless `ref`/`mut`/`@` make it a binding).
pub fn pat_idents(pat: &Pat, out: &mut Vec<Ident>) {
    match pat {
        Pat::Ident(p) => {
            let name = p.ident.to_string();
            let upper = name
                .trim_start_matches("r#")
                .chars()
                .next()
                .is_some_and(char::is_uppercase);
            if p.by_ref.is_some() || p.mutability.is_some() || p.subpat.is_some() || !upper {
                out.push(p.ident.clone());
            }
            if let Some((_, sub)) = &p.subpat {
                pat_idents(sub, out);
            }
        }
        Pat::Or(o) => {
            if let Some(first) = o.cases.first() {
                pat_idents(first, out);
            }
        }
        Pat::Paren(p) => pat_idents(&p.pat, out),
        Pat::Reference(r) => pat_idents(&r.pat, out),
        Pat::Slice(s) => s.elems.iter().for_each(|p| pat_idents(p, out)),
        Pat::Struct(s) => s.fields.iter().for_each(|f| pat_idents(&f.pat, out)),
        Pat::Tuple(t) => t.elems.iter().for_each(|p| pat_idents(p, out)),
        Pat::TupleStruct(t) => t.elems.iter().for_each(|p| pat_idents(p, out)),
        Pat::Type(t) => pat_idents(&t.pat, out),
        Pat::Guard(g) => pat_idents(&g.pat, out),
        _ => {}
    }
}

/// Whether a statement syntactically never completes (`return`, `break`, `continue`,
/// `panic!`-like macros).
fn diverges(stmt: &Stmt) -> bool {
    fn mac(m: &syn::Macro) -> bool {
        m.path.segments.last().is_some_and(|s| {
            ["panic", "unreachable", "todo", "unimplemented"]
                .iter()
                .any(|n| s.ident == n)
        })
    }
    match stmt {
        Stmt::Expr(Expr::Return(_) | Expr::Break(_) | Expr::Continue(_), _) => true,
        Stmt::Expr(Expr::Macro(m), _) => mac(&m.mac),
        Stmt::Macro(m) => mac(&m.mac),
        _ => false,
    }
}

/// Operands without side effects, which may be evaluated after a point instead of
/// before it.
fn is_pure(e: &Expr) -> bool {
    match e {
        Expr::Lit(_) => true,
        Expr::Path(p) => p.qself.is_none(),
        Expr::Paren(p) => is_pure(&p.expr),
        Expr::Group(g) => is_pure(&g.expr),
        Expr::Reference(r) => is_pure(&r.expr),
        Expr::Field(f) => is_pure(&f.base),
        Expr::Tuple(t) => t.elems.iter().all(is_pure),
        _ => false,
    }
}

/// The operands of `e` through which a durable `.await` is lowered, in evaluation
/// order (only pure operands may precede the one holding the point), and the operands
/// evaluated only conditionally (`a && b`: `b`). `None`: an expression whose operands
/// cannot hold a point (function-call arguments, tuple, array and struct fields: the
/// point would not be the first thing evaluated).
fn eval_children(e: &mut Expr) -> Option<(Vec<&mut Expr>, Vec<&Expr>)> {
    use syn::BinOp;
    let kids: Vec<&mut Expr> = match e {
        Expr::Assign(a) => vec![&mut *a.right, &mut *a.left],
        Expr::Await(a) => vec![&mut *a.base],
        Expr::Binary(b) => match b.op {
            BinOp::And(_) | BinOp::Or(_) => return Some((vec![&mut *b.left], vec![&*b.right])),
            BinOp::AddAssign(_)
            | BinOp::SubAssign(_)
            | BinOp::MulAssign(_)
            | BinOp::DivAssign(_)
            | BinOp::RemAssign(_)
            | BinOp::BitXorAssign(_)
            | BinOp::BitAndAssign(_)
            | BinOp::BitOrAssign(_)
            | BinOp::ShlAssign(_)
            | BinOp::ShrAssign(_) => vec![&mut *b.right, &mut *b.left],
            _ => vec![&mut *b.left, &mut *b.right],
        },
        Expr::Break(b) => b.expr.iter_mut().map(|e| &mut **e).collect(),
        Expr::Cast(c) => vec![&mut *c.expr],
        Expr::Field(f) => vec![&mut *f.base],
        Expr::ForLoop(f) => vec![&mut *f.expr],
        Expr::Group(g) => vec![&mut *g.expr],
        Expr::If(i) => vec![&mut *i.cond],
        Expr::Index(i) => vec![&mut *i.expr, &mut *i.index],
        Expr::Let(l) => vec![&mut *l.expr],
        Expr::Match(m) => vec![&mut *m.expr],
        Expr::MethodCall(m) => std::iter::once(&mut *m.receiver)
            .chain(m.args.iter_mut())
            .collect(),
        Expr::Paren(p) => vec![&mut *p.expr],
        Expr::Range(r) => r
            .start
            .iter_mut()
            .chain(r.end.iter_mut())
            .map(|e| &mut **e)
            .collect(),
        Expr::Reference(r) => vec![&mut *r.expr],
        Expr::Return(r) => r.expr.iter_mut().map(|e| &mut **e).collect(),
        Expr::Try(t) => vec![&mut *t.expr],
        Expr::Unary(u) => vec![&mut *u.expr],
        _ => return None,
    };
    Some((kids, Vec::new()))
}

/// `ctx.step("charge", ..).retry(..)`: the operation chain with its arguments elided.
fn point_label(e: &Expr) -> String {
    match e {
        Expr::MethodCall(m) => {
            let args = match m.args.first() {
                None => String::new(),
                Some(Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                })) => {
                    let more = if m.args.len() > 1 { ", .." } else { "" };
                    format!("{:?}{more}", s.value())
                }
                Some(_) => "..".to_owned(),
            };
            format!("{}.{}({args})", point_label(&m.receiver), m.method)
        }
        Expr::Paren(p) => point_label(&p.expr),
        Expr::Group(g) => point_label(&g.expr),
        other => other.to_token_stream().to_string(),
    }
}

// Input: the CFG.
// Output: `live_in` for every block: standard backward dataflow on binding ids
// (`live_in(B) = (uses(B) ∪ ⋃ live_in(successors)) − defs(B)`), saveable bindings only.
fn liveness(cfg: &mut Cfg) {
    let n = cfg.blocks.len();
    let succ: Vec<Vec<BlockId>> = cfg
        .blocks
        .iter()
        .map(|b| b.gotos.iter().map(|&g| cfg.gotos[g].target).collect())
        .collect();
    let mut live: Vec<BTreeSet<BindingId>> = vec![BTreeSet::new(); n];
    let mut changed = true;
    while changed {
        changed = false;
        for b in (0..n).rev() {
            let block = &cfg.blocks[b];
            let mut set: BTreeSet<BindingId> = block
                .uses
                .iter()
                .copied()
                .filter(|&u| cfg.bindings[u].saveable())
                .collect();
            for &s in &succ[b] {
                set.extend(live[s].iter().copied());
            }
            set.retain(|x| !block.defs.contains(x));
            if set != live[b] {
                live[b] = set;
                changed = true;
            }
        }
    }
    cfg.live_in = live;
}

// Input: the CFG with liveness.
// Output: errors for locals that must cross a boundary but cannot: declared without a
// value, or shadowed where a jump has to save them.
fn check_slots(cx: &Ctxt, cfg: &Cfg) {
    let mut reported = BTreeSet::new();
    for set in &cfg.live_in {
        for &b in set {
            let binding = &cfg.bindings[b];
            if binding.kind == BindingKind::Uninit && reported.insert(b) {
                let name = binding.name();
                cx.error_spanned_by(
                    &binding.ident,
                    format!("give `{name}` an initial value: locals that cross a durable point must be initialised where they are declared"),
                );
            }
        }
    }
    for g in 0..cfg.gotos.len() {
        for b in cfg.puts(g) {
            let binding = &cfg.bindings[b];
            let nameable = cfg.gotos[g]
                .visible
                .iter()
                .rev()
                .find(|&&v| cfg.bindings[v].ident == binding.ident)
                == Some(&b);
            if !nameable && reported.insert(b) {
                let name = binding.name();
                cx.error_spanned_by(
                    &binding.ident,
                    format!("`{name}` must be saved across a durable point where another `{name}` shadows it; rename one of them"),
                );
            }
        }
    }
    if let Some(entry) = cfg.live_in.first() {
        if !entry.is_empty() {
            let names: Vec<String> = entry.iter().map(|&b| cfg.bindings[b].name()).collect();
            cx.error_at(
                Span::call_site(),
                format!("durable: internal error: locals {names:?} are used before they are declared; please report this bug"),
            );
        }
    }
}

/// The block and point numbers of a lowered CFG, for tests and expansion.
impl Cfg {
    /// The emitted number of a block.
    pub fn number(&self, b: BlockId) -> u32 {
        self.blocks[b].seq.unwrap_or(u32::MAX - 1)
    }

    /// Replaces jump markers in `tokens` with `f(goto)`.
    pub fn expand_markers(
        &self,
        tokens: TokenStream,
        f: &dyn Fn(GotoId) -> TokenStream,
    ) -> TokenStream {
        let mut out = TokenStream::new();
        let mut iter = tokens.into_iter().peekable();
        while let Some(tt) = iter.next() {
            match tt {
                TokenTree::Ident(i) if i == GOTO_MARKER => {
                    let bang = iter.next();
                    let group = iter.next();
                    let id = match &group {
                        Some(TokenTree::Group(g)) => g.stream().to_string().parse::<usize>().ok(),
                        _ => None,
                    };
                    match id {
                        Some(id) => out.extend(f(id)),
                        None => {
                            out.extend([TokenTree::Ident(i)]);
                            out.extend(bang);
                            out.extend(group);
                        }
                    }
                }
                TokenTree::Group(g) => {
                    let mut ng =
                        proc_macro2::Group::new(g.delimiter(), self.expand_markers(g.stream(), f));
                    ng.set_span(g.span());
                    out.extend([TokenTree::Group(ng)]);
                }
                other => out.extend([other]),
            }
        }
        out
    }
}
