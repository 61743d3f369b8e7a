//! Lowering: the body of a `#[durable]` fn → a control-flow graph of blocks, split at
//! durable points, with the liveness of every local over it.
//!
//! The result ([`ir::Cfg`]) is plain data: the user's code is held as [`ir::Frag`]s, and
//! nothing here names a runtime path; `expand` decides how every construct is spelled.
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

mod frag;
pub mod ir;
mod liveness;
mod verbatim;

pub use ir::*;

use std::collections::BTreeSet;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, ToTokens};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Block as SynBlock, Expr, ExprAwait, Ident, Pat, Stmt};

use crate::ast::{Points, Workflow};
use crate::ctxt::Ctxt;
use frag::{Hole, Holes};
use verbatim::{pat_idents, Verbatim};

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
pub fn lower(cx: &Ctxt, wf: &Workflow) -> Cfg {
    let mut l = Lowerer {
        cx,
        points: wf.points(),
        holes: Holes::new(wf.item.to_token_stream()),
        cfg: Cfg::default(),
        scopes: Vec::new(),
        loops: Vec::new(),
        cur: 0,
        next_seq: 0,
    };
    l.lower_fn(wf);
    let mut cfg = l.cfg;
    liveness::liveness(&mut cfg);
    liveness::check_slots(cx, &cfg);
    cfg
}

struct Lowerer<'a> {
    cx: &'a Ctxt,
    points: Points<'a>,
    holes: Holes,
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
        let frag = self.frag(&stmt);
        self.emit(Code::Stmt(frag));
    }

    /// Rewritten code as a `Frag`.
    fn frag(&self, code: &impl ToTokens) -> Frag {
        self.holes.frag(code.to_token_stream())
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
        value: Option<Frag>,
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
            at: None,
            param: None,
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
            at: None,
            param: None,
        });
        id
    }

    fn put(&mut self, dest: BindingId, value: Frag) {
        self.cfg.written.insert(dest);
        self.emit(Code::Put(dest, value));
    }

    fn put_unit(&mut self, dest: BindingId) {
        self.put(dest, Frag::tokens(quote::quote!(())));
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
        for (i, param) in wf.params.iter().enumerate() {
            self.bind_pat(&param.pat, false);
            if let Pat::Ident(pi) = &param.pat {
                if pi.subpat.is_none() && pi.by_ref.is_none() {
                    let last = self.cfg.bindings.len() - 1;
                    self.cfg.bindings[last].param = Some(i);
                }
            }
        }
        let tail = self.lower_stmts(&wf.body.stmts);
        match tail {
            Some(e) => {
                let v = self.lower_value(&e);
                let v = self.verbatim_expr(v);
                let v = self.frag(&v);
                self.set_tail(self.cur, Tail::Finish(v));
            }
            None if wf.body.stmts.last().is_some_and(diverges) => {
                self.set_tail(self.cur, Tail::Diverged);
            }
            None => self.set_tail(self.cur, Tail::Finish(Frag::tokens(quote::quote!(())))),
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
        if let Some(aw) = self.points.point(e) {
            self.lower_point(aw);
            let pid = self.cfg.points.len() - 1;
            return self.emit(Code::Discard(pid));
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
                self.holes.hole(Hole::Take(t))
            } else {
                // Nothing writes the value: the construct never completes normally.
                self.holes.hole(Hole::Unreachable)
            };
        }
        self.lower_hole(e)
    }

    // Input: `ctx.op(..).await`.
    // Output: a jump to a new point block; the point block, whose code starts with the
    // operation's outcome; an expression standing for that outcome.
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
        let mut base = (*aw.base).clone();
        on_a_clone_of_the_context(&mut base);
        let op = self.verbatim_expr(base);
        let op = self.frag(&op);
        self.cfg.points.push(Point {
            block,
            op,
            await_span: aw.await_token.span,
            label: point_label(&aw.base),
            line: aw.await_token.span.start().line as u32,
        });
        self.holes.hole(Hole::Outcome)
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
                let v = self.frag(&v);
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
                self.put_unit(t);
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
        let cond = self.frag(&cond);
        let at = self.cur;
        let then_r = self.new_region();
        let else_r = self.new_region();
        self.set_tail(
            at,
            Tail::If {
                cond,
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
                    self.put_unit(t);
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
        let scrut = self.frag(&scrut);
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
            arms.push((self.frag(&pat), region));
            self.emit(Code::Open);
            self.lower_into(&arm.body, out);
            self.emit(Code::Close);
            self.pop_scope();
            self.goto(join);
        }
        self.set_tail(at, Tail::Match { scrut, arms });
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
            self.emit(Code::Unreachable);
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
        let cond = self.frag(&cond);
        let at = self.cur;
        let then_r = self.new_region();
        let else_r = self.new_region();
        self.set_tail(
            at,
            Tail::If {
                cond,
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
            self.put_unit(t);
        }
    }

    // Input: `'l: for pat in iterable { body }` with a point in the body.
    // Output: the iterable made saveable once into an iterator local; a header block
    // taking the iterator's next item into `pat` (the body, jumping back) or finding none
    // (the exit block).
    fn lower_for(&mut self, f: &syn::ExprForLoop, out: Out) {
        let iterable = self.lower_value(&f.expr);
        let iterable = self.verbatim_expr(iterable);
        let iterable = self.frag(&iterable);
        let it_id = self.cfg.bindings.len();
        // Located at the iterable, so an iterable whose items cannot be saved is the
        // error's location.
        let at = f.expr.span();
        let it = format_ident!(
            "__durable_i{}",
            it_id,
            span = Span::mixed_site().located_at(at)
        );
        let it_binding = self.declare(it, BindingKind::Iter);
        self.emit(Code::LoopIter {
            iter: it_binding,
            iterable,
        });
        let pat_text = f.pat.to_token_stream().to_string();
        self.cfg.bindings[it_binding].label = Some(format!("for {pat_text}"));
        self.cfg.bindings[it_binding].at = Some(focus(&f.expr));
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
        let pat = self.frag(&f.pat);
        self.set_tail(
            at,
            Tail::Next {
                iter: it_binding,
                pat,
                some: some_r,
                none: none_r,
            },
        );
        self.start_block(exit);
        if let Out::Put(t) = out {
            self.put_unit(t);
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

// Input: a durable point's operation, `ctx.op(..).more(..)`, rooted at the context.
// Output: the same chain on a clone of the context, `(Clone::clone(&ctx)).op(..)`. A method
// call on `ctx` itself borrows it while the arguments are evaluated, so an argument that
// moves `ctx` (a step body `|| async move { f(ctx.execution_id()).await }`) would not
// compile; the clone is a temporary whose borrow of `ctx` ends before the arguments.
fn on_a_clone_of_the_context(e: &mut Expr) {
    match e {
        Expr::MethodCall(m) => on_a_clone_of_the_context(&mut m.receiver),
        Expr::Paren(p) => on_a_clone_of_the_context(&mut p.expr),
        Expr::Group(g) => on_a_clone_of_the_context(&mut g.expr),
        Expr::Path(path) => {
            let span = path.span();
            *e = syn::parse_quote_spanned!(span=> (::core::clone::Clone::clone(&#path)));
        }
        _ => {}
    }
}

fn dest_of(out: Out) -> Option<BindingId> {
    match out {
        Out::Put(t) => Some(t),
        Out::Discard => None,
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

/// The token an error about `e` points at: its first identifier (`names` in `&names`
/// or `names.iter()`), else its first token.
fn focus(e: &Expr) -> Span {
    let tokens = e.to_token_stream();
    let first = tokens.clone().into_iter().next().map(|t| t.span());
    tokens
        .into_iter()
        .find_map(|t| match t {
            proc_macro2::TokenTree::Ident(i) => Some(i.span()),
            _ => None,
        })
        .or(first)
        .unwrap_or_else(Span::call_site)
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
