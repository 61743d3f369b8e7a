//! Statements: kept verbatim when they hold no durable point, otherwise lowered around
//! their points; every statement becomes region code with its effects.

use quote::quote;
use syn::{Expr, Stmt};

use super::frag::Hole;
use super::ir::{BindingKind, Borrowed, Code, Tail};
use super::{diverges, BlockKind, Lowerer, Out};

impl Lowerer<'_> {
    // Input: a block's statements.
    // Output: all but the tail expression lowered into the current region (items
    // hoisted); the tail, unlowered, for the caller to place.
    pub(super) fn lower_stmts(&mut self, stmts: &[Stmt]) -> Option<Expr> {
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
                Stmt::Macro(m) => {
                    let e = Expr::Macro(syn::ExprMacro {
                        attrs: m.attrs.clone(),
                        mac: m.mac.clone(),
                    });
                    if self.points.in_expr(&e) {
                        self.lower_expr_stmt(&e, m.semi_token);
                    } else {
                        self.emit_stmt(stmt.clone());
                    }
                }
            }
        }
        None
    }

    // Input: `let pat = init;` / `let pat = init else { .. };` / `let pat;`.
    // Output: verbatim when nothing in it has a point; otherwise `init` lowered to a value
    // `v` and `let pat = v;` in the block where `v` is available. An `else` block with a
    // point becomes a block of its own that the `let` jumps to.
    fn lower_local(&mut self, local: &syn::Local) {
        let Some(init) = &local.init else {
            return self.emit_let(local.clone());
        };
        let diverge_has_point = init
            .diverge
            .as_ref()
            .is_some_and(|(_, e)| self.points.in_expr(e));
        if !self.points.in_expr(&init.expr) && !diverge_has_point {
            return self.emit_let(local.clone());
        }
        let value = self.lower_value(&init.expr);
        let mut local = local.clone();
        if let Some(init) = &mut local.init {
            *init.expr = value;
        }
        if !diverge_has_point {
            return self.emit_let(local);
        }
        // `let pat = v else { <jump to the else block> };`, then the else block on its
        // own, which always diverges (checked as the `let` would); the code after the
        // `let` goes on in the current region.
        let Some((else_token, diverge)) = local.init.as_mut().and_then(|i| i.diverge.take()) else {
            return self.emit_let(local);
        };
        let els = self.new_block(BlockKind::Plain);
        let g = self.new_goto(els, None, None, super::first_span(&else_token));
        self.fx.jumps.push(g);
        let jump = self.holes.hole(Hole::Jump(g));
        let block: Expr = syn::parse_quote!({ #jump });
        if let Some(init) = &mut local.init {
            init.diverge = Some((else_token, Box::new(block)));
        }
        self.emit_let(local);
        let resume = self.cur;
        self.start_block(els);
        self.lower_diverging(&diverge);
        self.cur = resume;
    }

    // Input: the `else` block of a `let ... else` that awaits a durable point.
    // Output: the block lowered; its last expression checked to diverge (`let _:
    // Infallible = last;` reads rustc's own "expected `!`"-style error when it does not).
    fn lower_diverging(&mut self, e: &Expr) {
        let Expr::Block(b) = e else {
            self.lower_into(e, Out::Discard);
            return self.set_tail(self.cur, Tail::Diverged);
        };
        self.push_scope(false);
        self.emit(Code::Open);
        let (init, last) = b
            .block
            .stmts
            .split_at(b.block.stmts.len().saturating_sub(1));
        let tail = self.lower_stmts(init).or_else(|| match last.first() {
            Some(Stmt::Expr(e, _)) => Some(e.clone()),
            Some(Stmt::Macro(m)) => Some(Expr::Macro(syn::ExprMacro {
                attrs: m.attrs.clone(),
                mac: m.mac.clone(),
            })),
            _ => None,
        });
        match tail {
            Some(e) => {
                let v = self.lower_value(&e);
                let v = self.verbatim_expr(v);
                let v = self.frag(&v);
                self.emit(Code::Diverge(v));
            }
            None => {
                let at = last
                    .first()
                    .map_or_else(|| super::first_span(&b.block), super::first_span);
                self.cx.error_at(
                    at,
                    "the `else` block of `let ... else` must end in an expression that diverges (`return`, `break`, `continue`, a panic)",
                );
            }
        }
        self.emit(Code::Close);
        self.pop_scope();
        self.set_tail(self.cur, Tail::Diverged);
    }

    // Input: an expression statement.
    // Output: verbatim without points; control flow with points lowered without a
    // value; otherwise the expression lowered around its points, then the statement.
    pub(super) fn lower_expr_stmt(&mut self, e: &Expr, semi: Option<syn::Token![;]>) {
        let semi = Some(semi.unwrap_or_default());
        if !self.points.in_expr(e) {
            return self.emit_stmt(Stmt::Expr(e.clone(), semi));
        }
        if self.is_control(e) {
            return self.lower_control(e, Out::Discard);
        }
        if let Some(aw) = self.points.point(e) {
            let pid = self.lower_point_id(aw);
            return self.emit(Code::Discard(pid));
        }
        let value = self.lower_value(e);
        self.emit_stmt(Stmt::Expr(value, semi));
    }

    /// A statement as region code: a `let` (see [`Code::Let`]), a whole assignment of a
    /// local (which assigns it, rather than reading it), or verbatim code.
    pub(super) fn emit_stmt(&mut self, stmt: Stmt) {
        match stmt {
            Stmt::Local(local) => self.emit_let(local),
            Stmt::Expr(Expr::Assign(mut a), semi) => match self.assigned_local(&a.left) {
                Some(b) => {
                    self.note_moves(&a.right);
                    *a.right = self.verbatim_expr(*a.right);
                    self.fx.kills.insert(b);
                    self.fx.mutates.insert(b);
                    let frag = self.frag(&Stmt::Expr(Expr::Assign(a), semi));
                    self.emit(Code::Stmt(frag));
                }
                None => {
                    let stmt = self.verbatim_stmt(Stmt::Expr(Expr::Assign(a), semi));
                    let frag = self.frag(&stmt);
                    self.emit(Code::Stmt(frag));
                }
            },
            stmt => {
                if let Stmt::Expr(e, _) = &stmt {
                    self.note_moves(e);
                }
                let stmt = self.verbatim_stmt(stmt);
                let frag = self.frag(&stmt);
                self.emit(Code::Stmt(frag));
            }
        }
    }

    /// Records the fields of locals that `e` moves out, syntactically: a field access in a
    /// place its value is moved from (a `let` initializer, an argument, a field of a new
    /// value, an arithmetic operand).
    pub(super) fn note_moves(&mut self, e: &Expr) {
        match e {
            Expr::Field(f) => {
                let mut base = &*f.base;
                while let Expr::Field(inner) = base {
                    base = &inner.base;
                }
                let Expr::Path(p) = base else { return };
                let Some(b) = p.path.get_ident().and_then(|i| self.lookup(&i.to_string())) else {
                    return;
                };
                if self.cfg.bindings[b].saveable() {
                    self.fx.moves.push(super::ir::FieldMove {
                        binding: b,
                        place: quote::ToTokens::to_token_stream(e),
                    });
                }
            }
            Expr::Call(c) => c.args.iter().for_each(|a| self.note_moves(a)),
            Expr::MethodCall(m) => m.args.iter().for_each(|a| self.note_moves(a)),
            Expr::Struct(s) => s.fields.iter().for_each(|f| self.note_moves(&f.expr)),
            Expr::Tuple(t) => t.elems.iter().for_each(|e| self.note_moves(e)),
            Expr::Array(a) => a.elems.iter().for_each(|e| self.note_moves(e)),
            Expr::Paren(p) => self.note_moves(&p.expr),
            Expr::Group(g) => self.note_moves(&g.expr),
            Expr::Binary(b) => {
                use syn::BinOp::*;
                if matches!(b.op, Add(_) | Sub(_) | Mul(_) | Div(_) | Rem(_)) {
                    self.note_moves(&b.left);
                    self.note_moves(&b.right);
                }
            }
            Expr::Return(r) => r.expr.iter().for_each(|e| self.note_moves(e)),
            Expr::Break(b) => b.expr.iter().for_each(|e| self.note_moves(e)),
            _ => {}
        }
    }

    /// The local that `left = ..` assigns whole, if it is one (not a field, not a deref).
    fn assigned_local(&self, left: &Expr) -> Option<super::BindingId> {
        let Expr::Path(p) = left else { return None };
        if p.qself.is_some() || !p.attrs.is_empty() {
            return None;
        }
        let b = self.lookup(&p.path.get_ident()?.to_string())?;
        // An immutable local with a value cannot be assigned: left to rustc to say so.
        let binding = &self.cfg.bindings[b];
        (binding.saveable() && (binding.mutable || binding.deferred)).then_some(b)
    }

    // Input: a `let` whose initializer has no point left in it.
    // Output: `Code::Let` (head, initializer, tail), its reads, then its declarations.
    fn emit_let(&mut self, local: syn::Local) {
        let syn::Local {
            attrs,
            let_token,
            pat,
            init,
            semi_token,
            ..
        } = local;
        let (init, eq, diverge) = match init {
            Some(i) => {
                self.note_moves(&i.expr);
                let expr = self.verbatim_expr(*i.expr);
                let diverge = i.diverge.map(|(e, d)| (e, self.verbatim_expr(*d)));
                (Some(expr), Some(i.eq_token), diverge)
            }
            None => (None, None, None),
        };
        let borrowed = borrowed(&pat, init.as_ref());
        let ids = self.bind_pat(&pat);
        for &id in &ids {
            self.cfg.bindings[id].deferred = init.is_none();
        }
        if let [id] = ids.as_slice() {
            if self.cfg.bindings[*id].kind == BindingKind::User {
                self.cfg.bindings[*id].borrowed = borrowed;
                if let (syn::Pat::Type(t), None) = (&pat, &init) {
                    self.cfg.bindings[*id].ty = Some((*t.ty).clone());
                }
            }
        }
        let head = quote!(#(#attrs)* #let_token #pat #eq);
        let tail = match diverge {
            Some((else_token, block)) => quote!(#else_token #block #semi_token),
            None => quote!(#semi_token),
        };
        let code = Code::Let {
            head: self.frag(&head),
            init: init.map(|e| self.frag(&e)),
            tail: self.frag(&tail),
        };
        self.emit(code);
    }
}

/// What the macro can tell of a `let` that binds a borrow: a string literal (or a choice
/// of string literals), or a `&` type.
fn borrowed(pat: &syn::Pat, init: Option<&Expr>) -> Option<Borrowed> {
    if let syn::Pat::Type(t) = pat {
        if let syn::Type::Reference(_) = &*t.ty {
            return Some(Borrowed::Reference);
        }
    }
    let init = init?;
    all_str_literals(init).then_some(Borrowed::StaticStr)
}

/// Whether every value `e` can produce is a string literal (and it can produce one).
fn all_str_literals(e: &Expr) -> bool {
    literal_or_diverges(e) == Some(true)
}

/// `Some(true)`: `e` is a string literal, or a choice of them and diverging branches with
/// at least one literal; `Some(false)`: it always diverges; `None`: anything else.
fn literal_or_diverges(e: &Expr) -> Option<bool> {
    fn block(b: &syn::Block) -> Option<bool> {
        match b.stmts.last() {
            Some(Stmt::Expr(e, None)) => literal_or_diverges(e),
            Some(stmt) if diverges(stmt) => Some(false),
            _ => None,
        }
    }
    fn any(branches: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
        let mut literal = false;
        for b in branches {
            literal |= b?;
        }
        Some(literal)
    }
    match e {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(_),
            ..
        }) => Some(true),
        Expr::Return(_) | Expr::Break(_) | Expr::Continue(_) => Some(false),
        Expr::Paren(p) => literal_or_diverges(&p.expr),
        Expr::Group(g) => literal_or_diverges(&g.expr),
        Expr::Block(b) => block(&b.block),
        Expr::If(i) => {
            let (_, els) = i.else_branch.as_ref()?;
            any([block(&i.then_branch), literal_or_diverges(els)])
        }
        Expr::Match(m) => any(m.arms.iter().map(|a| literal_or_diverges(&a.body))),
        _ => None,
    }
}
