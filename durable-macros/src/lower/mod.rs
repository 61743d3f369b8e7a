//! Lowering: the body of a `#[durable]` fn → a control-flow graph of blocks, split at
//! durable points, with the liveness of every local over it and where each local's value
//! is at every step.
//!
//! The result ([`ir::Cfg`]) is plain data: the user's code is held as [`ir::Frag`]s, and
//! nothing here names a runtime path; `expand` decides how every construct is spelled.
//! One module per job: statements (`stmt`), expressions and points (`expr`), control flow
//! (`control`), verbatim code (`verbatim`), then the analyses over the finished graph
//! (`liveness`, `places`).
//!
//! Invariants the expansion relies on:
//! - every durable point starts a block, and a block holds at most one point;
//! - blocks are numbered in the order the lowering starts them, which is source order:
//!   a local's first `put` is emitted textually before any `take` of it, so rustc infers
//!   each slot's type from the put;
//! - a block's code is a tree of regions (`if`/`match` tails with sub-regions), so code
//!   between two points that branches without reaching a point never crosses a block
//!   boundary and keeps its borrows;
//! - every binding (`let`, pattern, parameter, temporary) has its own id, so shadowed
//!   locals live in separate slots;
//! - every piece of region code carries its effects (reads, whole assignments,
//!   declarations), in evaluation order.

mod control;
mod expr;
mod frag;
pub mod ir;
mod liveness;
mod places;
mod stmt;
mod verbatim;

pub use ir::*;

use proc_macro2::Span;
use quote::{format_ident, ToTokens};
use syn::visit_mut::VisitMut;
use syn::{Expr, Ident, Pat, Stmt};

use crate::ast::{Points, Workflow};
use crate::ctxt::Ctxt;
use frag::Holes;
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
// Output: its CFG with liveness and places; errors (unsupported positions, locals that
// must be saved where they cannot be named) in `cx`.
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
        fx: Effects::default(),
    };
    l.lower_fn(wf);
    let mut cfg = l.cfg;
    liveness::liveness(&mut cfg);
    places::places(cx, &mut cfg);
    borrows(cx, &cfg);
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
    /// The effects of the code being lowered, until it is emitted.
    fx: Effects,
}

impl Lowerer<'_> {
    // ---- blocks and regions ------------------------------------------------------

    fn new_block(&mut self, kind: BlockKind) -> BlockId {
        let id = self.cfg.blocks.len();
        let root = self.cfg.regions.len();
        self.cfg.regions.push(Region {
            block: id,
            code: Vec::new(),
            tail: None,
            tail_fx: Effects::default(),
        });
        self.cfg.blocks.push(Block {
            kind,
            root,
            start: Vec::new(),
            seq: None,
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
            tail_fx: Effects::default(),
        });
        self.cfg.regions.len() - 1
    }

    fn cur_block(&self) -> BlockId {
        self.cfg.regions[self.cur].block
    }

    /// Emits `code` with the effects gathered since the last emission.
    fn emit(&mut self, code: Code) {
        debug_assert!(self.cfg.regions[self.cur].tail.is_none());
        let fx = std::mem::take(&mut self.fx);
        self.cfg.regions[self.cur].code.push((code, fx));
    }

    /// Rewritten code as a `Frag`.
    fn frag(&self, code: &impl ToTokens) -> Frag {
        self.holes.frag(code.to_token_stream())
    }

    /// Ends `region` with `tail`, which gets the effects gathered since the last emission.
    fn set_tail(&mut self, region: RegionId, tail: Tail) {
        debug_assert!(self.cfg.regions[region].tail.is_none());
        let fx = std::mem::take(&mut self.fx);
        self.cfg.regions[region].tail = Some(tail);
        self.cfg.regions[region].tail_fx = fx;
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
        span: Span,
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
            span,
        });
        self.cfg.blocks[from].gotos.push(id);
        id
    }

    /// Ends the current region with a jump to `target`, located at `span` in the user's
    /// code.
    fn goto_at(&mut self, target: BlockId, span: Span) {
        let g = self.new_goto(target, None, None, span);
        self.set_tail(self.cur, Tail::Goto(g));
    }

    // ---- bindings ----------------------------------------------------------------

    fn push_scope(&mut self, internal: bool) {
        self.scopes.push(ScopeFrame {
            internal,
            bindings: Vec::new(),
        });
    }

    fn pop_scope(&mut self) {
        self.scopes.pop();
    }

    fn declare(&mut self, ident: Ident, kind: BindingKind, mutable: bool) -> BindingId {
        let id = self.cfg.bindings.len();
        let hides = self
            .lookup(&ident.to_string())
            .filter(|&h| self.cfg.bindings[h].saveable());
        self.cfg.bindings.push(Binding {
            ident,
            kind,
            label: None,
            at: None,
            param: None,
            mutable,
            hides,
            borrowed: None,
            deferred: false,
            ty: None,
        });
        if let Some(scope) = self.scopes.last_mut() {
            scope.bindings.push(id);
        }
        if self.cfg.bindings[id].saveable() {
            self.fx.declares.push(id);
            self.cfg.declared_in.insert(id, self.cur_block());
        }
        id
    }

    /// Declares the bindings of `pat` in the innermost scope.
    fn bind_pat(&mut self, pat: &Pat) -> Vec<BindingId> {
        let internal = self.scopes.last().is_some_and(|s| s.internal);
        let kind = if internal {
            BindingKind::Internal
        } else {
            BindingKind::User
        };
        let mut idents = Vec::new();
        pat_idents(pat, &mut idents);
        idents
            .into_iter()
            .map(|(ident, mutable)| self.declare(ident, kind, mutable))
            .collect()
    }

    fn lookup(&self, name: &str) -> Option<BindingId> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.bindings.iter().rev())
            .copied()
            .find(|&b| self.cfg.bindings[b].ident == name)
    }

    /// A mention of `name`: a read of the local it names, if any.
    fn use_name(&mut self, name: &str) {
        if let Some(id) = self.lookup(name) {
            match self.cfg.bindings[id].kind {
                BindingKind::Ctx => {
                    let block = self.cur_block();
                    self.cfg.blocks[block].mentions_ctx = true;
                }
                BindingKind::Dest | BindingKind::Internal => {}
                _ => {
                    self.fx.reads.insert(id);
                }
            }
        }
    }

    /// A mention of `name` in macro arguments: a read that may not be one.
    fn mention_name(&mut self, name: &str) {
        let before = self.fx.reads.clone();
        self.use_name(name);
        let added: Vec<BindingId> = self.fx.reads.difference(&before).copied().collect();
        self.fx.mentions.extend(added);
    }

    /// A place rooted at `name` may be mutated.
    fn mutate_name(&mut self, name: &str) {
        if let Some(id) = self.lookup(name) {
            if self.cfg.bindings[id].saveable() {
                self.fx.mutates.insert(id);
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
            mutable: false,
            hides: None,
            borrowed: None,
            deferred: false,
            ty: None,
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
    // body's value leaves the machine.
    fn lower_fn(&mut self, wf: &Workflow) {
        self.push_scope(false);
        let entry = self.new_block(BlockKind::Entry);
        self.start_block(entry);
        if let Some(ident) = wf.ctx.as_ref().and_then(|c| c.ident.clone()) {
            self.declare(ident, BindingKind::Ctx, false);
        }
        for (i, param) in wf.params.iter().enumerate() {
            let ids = self.bind_pat(&param.pat);
            if let Pat::Ident(pi) = &param.pat {
                if pi.subpat.is_none() && pi.by_ref.is_none() {
                    if let Some(&last) = ids.last() {
                        self.cfg.bindings[last].param = Some(i);
                    }
                }
            }
        }
        self.emit(Code::Input);
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

// Input: the CFG with liveness.
// Output: an error for each local saved in a frame that the macro can tell is a borrow
// (a string literal, a `&` type): rustc's own error for a `&'static str` would be that
// `Deserialize` is not general enough.
fn borrows(cx: &Ctxt, cfg: &Cfg) {
    let mut reported = std::collections::BTreeSet::new();
    for (pid, point) in cfg.points.iter().enumerate() {
        for b in cfg.frame(pid) {
            let binding = &cfg.bindings[b];
            let Some(borrowed) = binding.borrowed else {
                continue;
            };
            if !reported.insert(b) {
                continue;
            }
            let name = binding.name();
            let why = if point.op_reads.contains(&b) {
                format!(
                    "the durable operation `{}` at line {} uses `{name}`, and runs again when the execution resumes, so `{name}` is saved in the frame",
                    point.label, point.line
                )
            } else {
                format!(
                    "`{name}` is held across the durable point `{}` at line {}, so it is saved in the frame",
                    point.label, point.line
                )
            };
            let (what, fix) = match borrowed {
                Borrowed::StaticStr => (
                    "a borrowed `&str`",
                    "use a `String` (`\"..\".to_owned()`), or an enum for a fixed set of values",
                ),
                Borrowed::Reference => (
                    "a borrow",
                    "own the value instead (`.clone()`, `.to_owned()`), or borrow it again after the point",
                ),
            };
            cx.error_at(
                binding.ident.span(),
                format!("{why}, but it is {what}, which cannot be saved: {fix}"),
            );
        }
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

/// The span of the first token of `e`.
fn first_span(e: &impl ToTokens) -> Span {
    e.to_token_stream()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}

/// The span of the last token of `e`.
fn last_span(e: &impl ToTokens) -> Span {
    e.to_token_stream()
        .into_iter()
        .last()
        .map_or_else(Span::call_site, |t| match t {
            proc_macro2::TokenTree::Group(g) => g.span_close(),
            other => other.span(),
        })
}
