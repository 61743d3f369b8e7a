//! Code kept verbatim: rewritten where it jumps out of lowered code, and read for what
//! it mentions, mutates and declares.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit_mut::{self, VisitMut};
use syn::{Block as SynBlock, Expr, Ident, Lifetime, Pat, Stmt};

use super::frag::Hole;
use super::Lowerer;

/// Rewrites code that stays verbatim and records its effects in the lowerer's current
/// [`Effects`](super::ir::Effects). `?` and `return` stay as written (the machine's body
/// returns the workflow's output); a `break`/`continue` that leaves a lowered loop or
/// labeled block becomes a hole (see `frag`), [`Hole::Jump`]: the puts of the target's live
/// locals and the jump. Nothing inside closures, `async` blocks or nested items is
/// rewritten (their `break`s are their own), but their mentions of locals still count.
pub(super) struct Verbatim<'l, 'a> {
    l: &'l mut Lowerer<'a>,
    /// Loops and labeled blocks inside the code: (label, is a block).
    inner: Vec<(Option<String>, bool)>,
    /// Depth of closures and `async` blocks.
    opaque: usize,
}

impl<'l, 'a> Verbatim<'l, 'a> {
    pub(super) fn new(l: &'l mut Lowerer<'a>) -> Self {
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

    fn jump(
        &mut self,
        frame: usize,
        is_continue: bool,
        value: Option<Expr>,
        span: proc_macro2::Span,
    ) -> Expr {
        let f = &mut self.l.loops[frame];
        let (target, dest) = if is_continue {
            (f.cont.unwrap_or(f.brk), None)
        } else {
            f.broken = true;
            (f.brk, f.dest)
        };
        let value = value.map(|v| self.l.frag(&v));
        let g = self.l.new_goto(target, dest, value, span);
        self.l.fx.jumps.push(g);
        self.l.holes.hole(Hole::Jump(g))
    }

    fn macro_tokens(&mut self, mac: &mut syn::Macro) {
        self.mention_tokens(&mac.tokens.clone());
        if self.opaque > 0 || !has_jumps(&mac.tokens) {
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
    /// in string literals (format strings), counts as a use that may mutate:
    /// conservatively.
    fn mention_tokens(&mut self, tokens: &TokenStream) {
        let mut prev_dot = false;
        for tt in tokens.clone() {
            match &tt {
                TokenTree::Ident(i) if !prev_dot => {
                    let name = i.to_string();
                    self.l.mention_name(&name);
                    self.l.mutate_name(&name);
                }
                TokenTree::Group(g) => self.mention_tokens(&g.stream()),
                TokenTree::Literal(lit) => {
                    for name in format_names(&lit.to_string()) {
                        self.l.mention_name(&name);
                    }
                }
                _ => {}
            }
            prev_dot = matches!(&tt, TokenTree::Punct(p) if p.as_char() == '.');
        }
    }

    /// Records that the place `e` (rooted at a local) may be mutated.
    fn mutates(&mut self, e: &Expr) {
        if let Some(root) = place_root(e) {
            self.l.mutate_name(&root.to_string());
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
            Expr::Assign(a) => {
                self.mutates(&a.left);
                visit_mut::visit_expr_assign_mut(self, a);
            }
            Expr::Binary(b) if is_compound_assign(&b.op) => {
                self.mutates(&b.left);
                visit_mut::visit_expr_binary_mut(self, b);
            }
            Expr::Reference(r) if r.mutability.is_some() => {
                self.mutates(&r.expr);
                visit_mut::visit_expr_reference_mut(self, r);
            }
            Expr::MethodCall(m) => {
                // The receiver may be borrowed mutably (`v.push(..)`).
                self.mutates(&m.receiver);
                visit_mut::visit_expr_method_call_mut(self, m);
            }
            Expr::Break(b) if self.opaque == 0 => {
                if let Some(v) = &mut b.expr {
                    self.visit_expr_mut(v);
                }
                if let Some(frame) = self.lowered_target(b.label.as_ref(), false) {
                    let value = b.expr.as_ref().map(|v| (**v).clone());
                    *e = self.jump(frame, false, value, b.break_token.span);
                }
            }
            Expr::Continue(c) if self.opaque == 0 => {
                if let Some(frame) = self.lowered_target(c.label.as_ref(), true) {
                    *e = self.jump(frame, true, None, c.continue_token.span);
                }
            }
            Expr::Macro(m) => self.macro_tokens(&mut m.mac),
            Expr::Closure(c) => self.opaque(|v| {
                v.scoped(|v| {
                    for input in &c.inputs {
                        v.l.bind_pat(input);
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
                                v.l.bind_pat(&g.pat);
                                v.visit_expr_mut(&mut g.guard);
                            }
                            pat => {
                                v.l.bind_pat(pat);
                            }
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
                    v.l.bind_pat(&f.pat);
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
                self.l.bind_pat(&l.pat);
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
                self.l.bind_pat(&local.pat);
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

fn is_compound_assign(op: &syn::BinOp) -> bool {
    use syn::BinOp::*;
    matches!(
        op,
        AddAssign(_)
            | SubAssign(_)
            | MulAssign(_)
            | DivAssign(_)
            | RemAssign(_)
            | BitXorAssign(_)
            | BitAndAssign(_)
            | BitOrAssign(_)
            | ShlAssign(_)
            | ShrAssign(_)
    )
}

/// The local a place expression is rooted at: `x` in `x`, `x.a.b`, `x[i]`, `(x)`.
pub(super) fn place_root(e: &Expr) -> Option<&Ident> {
    match e {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => p.path.get_ident(),
        Expr::Field(f) => place_root(&f.base),
        Expr::Index(i) => place_root(&i.expr),
        Expr::Paren(p) => place_root(&p.expr),
        Expr::Group(g) => place_root(&g.expr),
        _ => None,
    }
}

fn has_jumps(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == "break" || i == "continue",
        TokenTree::Group(g) => has_jumps(&g.stream()),
        _ => false,
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

/// Whether a pattern identifier is a binding: an identifier starting with an uppercase
/// letter is a constant or a variant (unless `ref`/`mut`/`@` make it a binding).
pub(super) fn binds(p: &syn::PatIdent) -> bool {
    let name = p.ident.to_string();
    let upper = name
        .trim_start_matches("r#")
        .chars()
        .next()
        .is_some_and(char::is_uppercase);
    p.by_ref.is_some() || p.mutability.is_some() || p.subpat.is_some() || !upper
}

/// The binding identifiers of a pattern, in order, each with whether it is `mut` by value.
pub fn pat_idents(pat: &Pat, out: &mut Vec<(Ident, bool)>) {
    match pat {
        Pat::Ident(p) => {
            if binds(p) {
                out.push((
                    p.ident.clone(),
                    p.by_ref.is_none() && p.mutability.is_some(),
                ));
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
