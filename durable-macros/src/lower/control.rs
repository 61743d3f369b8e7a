//! Control flow with durable points in it: blocks, `if`, `match`, loops and labeled
//! blocks become blocks and jumps; their patterns' bindings become holes, so that a
//! binding that hides a local still needed can be renamed (see `places`).

use std::collections::BTreeMap;

use quote::{quote, ToTokens};
use syn::visit_mut::VisitMut;
use syn::{Block as SynBlock, Expr, Pat};

use super::frag::Hole;
use super::ir::{Arm, BindingId, BindingKind, BlockKind, Code, Effects, Frag, Tail};
use super::verbatim::binds;
use super::{dest_of, diverges, first_span, focus, last_span, LoopFrame, Lowerer, Out};

impl Lowerer<'_> {
    /// Control flow whose branches or body contain a point (lowered into blocks, not
    /// into an expression context).
    pub(super) fn is_control(&self, e: &Expr) -> bool {
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

    pub(super) fn lower_control(&mut self, e: &Expr, out: Out) {
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
    pub(super) fn lower_into(&mut self, e: &Expr, out: Out) {
        match e {
            Expr::Block(b) if b.label.is_none() && b.attrs.is_empty() => {
                return self.lower_block(&b.block, out)
            }
            _ if self.is_control(e) => return self.lower_control(e, out),
            _ => {}
        }
        match out {
            Out::Discard => self.lower_expr_stmt(e, None),
            // `return ..` / `break ..` as a value: it never produces one, so it is a
            // statement (as a value it would draw rustc's `unreachable_code` lint).
            Out::Put(_) if diverges(&syn::Stmt::Expr(e.clone(), None)) => {
                self.lower_expr_stmt(e, None)
            }
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
    pub(super) fn lower_block(&mut self, block: &SynBlock, out: Out) {
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
        self.goto_at(exit, last_span(&b.block));
        self.start_block(exit);
    }

    // Input: `if cond { a } else { b }` with a point in a branch.
    // Output: `cond` lowered to a value; an `if` tail whose branches are regions of the
    // current block, each ending in a jump to a new join block; `if let` bindings
    // declared for the then branch.
    fn lower_if(&mut self, i: &syn::ExprIf, out: Out) {
        let cond = self.lower_value(&i.cond);
        self.push_scope(false);
        let (cond, binds, fx) = self.condition(cond);
        let at = self.cur;
        let then_r = self.new_region();
        let else_r = self.new_region();
        self.fx = fx;
        self.set_tail(
            at,
            Tail::If {
                cond,
                binds,
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
        self.goto_at(join, last_span(&i.then_branch));
        self.cur = else_r;
        match &i.else_branch {
            Some((_, e)) => self.lower_into(e, out),
            None => {
                if let Out::Put(t) = out {
                    self.put_unit(t);
                }
            }
        }
        let end = match &i.else_branch {
            Some((_, e)) => last_span(e),
            None => last_span(&i.then_branch),
        };
        self.goto_at(join, end);
        self.start_block(join);
    }

    // Input: an `if`/`while` condition, lowered.
    // Output: it as a `Frag` (a single `let` with its bindings as holes), the bindings it
    // declares, and its effects without them.
    fn condition(&mut self, cond: Expr) -> (Frag, Vec<BindingId>, Effects) {
        let cond = match cond {
            Expr::Let(mut l) => {
                *l.expr = self.verbatim_expr(*l.expr);
                let (pat, _) = self.bind_pattern(&l.pat);
                *l.pat = pat;
                Expr::Let(l)
            }
            other => self.verbatim_expr(other),
        };
        let mut fx = std::mem::take(&mut self.fx);
        let binds = std::mem::take(&mut fx.declares);
        (self.frag(&cond), binds, fx)
    }

    // Input: `match scrut { pat if guard => body, .. }` with a point in an arm body.
    // Output: `scrut` lowered to a value; a `match` tail with the user's patterns and
    // guards, each arm a region of the current block that ends in a jump to a new join
    // block.
    fn lower_match(&mut self, m: &syn::ExprMatch, out: Out) {
        let scrut = self.lower_value(&m.expr);
        let scrut = self.verbatim_expr(scrut);
        let scrut = self.frag(&scrut);
        let scrut_fx = std::mem::take(&mut self.fx);
        let at = self.cur;
        let join = self.new_block(BlockKind::Plain);
        let mut arms = Vec::new();
        for arm in &m.arms {
            self.cur = at;
            let region = self.new_region();
            self.cur = region;
            self.push_scope(false);
            let (pat, guarded) = match &arm.pat {
                Pat::Guard(g) => {
                    let mut g = g.clone();
                    let (pat, _) = self.bind_pattern(&g.pat);
                    *g.pat = pat;
                    *g.guard = self.verbatim_expr(*g.guard);
                    (Pat::Guard(g), true)
                }
                other => (self.bind_pattern(other).0, false),
            };
            let mut fx = std::mem::take(&mut self.fx);
            let binds = std::mem::take(&mut fx.declares);
            arms.push(Arm {
                pat: self.frag(&pat),
                binds,
                guarded,
                region,
                fx,
            });
            self.emit(Code::Open);
            self.lower_into(&arm.body, out);
            self.emit(Code::Close);
            self.pop_scope();
            self.goto_at(join, last_span(&arm.body));
        }
        self.fx = scrut_fx;
        self.set_tail(at, Tail::Match { scrut, arms });
        self.start_block(join);
    }

    // Input: `'l: loop { body }` with a point in the body.
    // Output: a header block holding the body, which jumps back to it; an exit block
    // that `break`s jump to (with their value in the destination).
    fn lower_loop(&mut self, l: &syn::ExprLoop, out: Out) {
        let header = self.new_block(BlockKind::Plain);
        let exit = self.new_block(BlockKind::Plain);
        self.goto_at(header, first_span(l));
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
        self.goto_at(header, last_span(&l.body));
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
        self.goto_at(header, first_span(w));
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
        let (cond, binds, fx) = self.condition(cond);
        let at = self.cur;
        let then_r = self.new_region();
        let else_r = self.new_region();
        self.fx = fx;
        self.set_tail(
            at,
            Tail::If {
                cond,
                binds,
                then_r,
                else_r,
            },
        );
        self.cur = then_r;
        self.emit(Code::Open);
        self.lower_block(&w.body, Out::Discard);
        self.emit(Code::Close);
        self.pop_scope();
        self.goto_at(header, last_span(&w.body));
        self.loops.pop();
        self.cur = else_r;
        self.goto_at(exit, last_span(&w.body));
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
        let at = syn::spanned::Spanned::span(&f.expr);
        let it = quote::format_ident!(
            "__durable_i{}",
            it_id,
            span = proc_macro2::Span::mixed_site().located_at(at)
        );
        let it_binding = self.declare(it, BindingKind::Iter, true);
        let pat_text = f.pat.to_token_stream().to_string();
        self.cfg.bindings[it_binding].label = Some(format!("for {pat_text}"));
        self.cfg.bindings[it_binding].at = Some(focus(&f.expr));
        self.emit(Code::LoopIter {
            iter: it_binding,
            iterable,
        });
        let header = self.new_block(BlockKind::Plain);
        let exit = self.new_block(BlockKind::Plain);
        self.goto_at(header, first_span(f));
        self.start_block(header);
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
        let (pat, _) = self.bind_pattern(&f.pat);
        let binds = std::mem::take(&mut self.fx.declares);
        let pat = self.frag(&pat);
        self.emit(Code::Open);
        self.lower_block(&f.body, Out::Discard);
        self.emit(Code::Close);
        self.pop_scope();
        self.goto_at(header, last_span(&f.body));
        self.loops.pop();
        self.cur = none_r;
        self.goto_at(exit, last_span(&f.body));
        // The header reads the iterator to take its next item.
        self.fx.reads.insert(it_binding);
        self.fx.mutates.insert(it_binding);
        self.set_tail(
            at,
            Tail::Next {
                iter: it_binding,
                pat,
                binds,
                some: some_r,
                none: none_r,
            },
        );
        self.start_block(exit);
        if let Out::Put(t) = out {
            self.put_unit(t);
        }
    }

    // Input: a pattern of a lowered `if let`, `while let`, `match` arm or `for` loop.
    // Output: the pattern with each binding identifier (and its `mut`) replaced by a
    // hole, the bindings declared in the innermost scope (in the effects).
    pub(super) fn bind_pattern(&mut self, pat: &Pat) -> (Pat, Vec<BindingId>) {
        let ids = self.bind_pat(pat);
        let names: BTreeMap<String, BindingId> = ids
            .iter()
            .map(|&b| (self.cfg.bindings[b].ident.to_string(), b))
            .collect();
        let mut pat = pat.clone();
        BindHoles {
            l: self,
            names: &names,
        }
        .visit_pat_mut(&mut pat);
        (pat, ids)
    }
}

/// Replaces a pattern's binding identifiers by [`Hole::Bind`]s.
struct BindHoles<'l, 'a, 'n> {
    l: &'l mut Lowerer<'a>,
    names: &'n BTreeMap<String, BindingId>,
}

impl VisitMut for BindHoles<'_, '_, '_> {
    fn visit_pat_mut(&mut self, pat: &mut Pat) {
        match pat {
            Pat::Ident(p) if binds(p) => {
                if let Some((_, sub)) = &mut p.subpat {
                    self.visit_pat_mut(sub);
                }
                let Some(&b) = self.names.get(&p.ident.to_string()) else {
                    return;
                };
                let hole = self.l.holes.hole_tokens(Hole::Bind(b));
                let by_ref = &p.by_ref;
                // A by-value `mut` belongs to the binding (the hole); `ref mut` stays.
                let mutability = p.by_ref.as_ref().and(p.mutability.as_ref());
                let sub = p.subpat.as_ref().map(|(at, sub)| quote!(#at #sub));
                *pat = Pat::Verbatim(quote!(#by_ref #mutability #hole #sub));
            }
            Pat::Struct(s) => {
                for field in &mut s.fields {
                    if field.colon_token.is_none() {
                        // `Point { x }` becomes `Point { <field name hole> <hole> }`: the
                        // field's name is written only if the binding is renamed.
                        if let Pat::Ident(p) = &*field.pat {
                            if let Some(&b) = self.names.get(&p.ident.to_string()) {
                                let name = self.l.holes.hole_tokens(Hole::FieldName(b));
                                self.visit_pat_mut(&mut field.pat);
                                let pat = &field.pat;
                                *field.pat = Pat::Verbatim(quote!(#name #pat));
                                continue;
                            }
                        }
                        field.colon_token = Some(Default::default());
                    }
                    self.visit_pat_mut(&mut field.pat);
                }
            }
            _ => syn::visit_mut::visit_pat_mut(self, pat),
        }
    }

    fn visit_expr_mut(&mut self, _: &mut Expr) {}
}
