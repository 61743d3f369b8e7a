//! Expressions with durable points in them: the points become blocks of their own, and
//! the operands evaluated before a point keep their value across it.

use std::collections::BTreeSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, ToTokens};
use syn::{Expr, ExprAwait};

use super::frag::Hole;
use super::ir::{BindingKind, BlockKind, Code, Point, PointId};
use super::verbatim::place_root;
use super::{first_span, focus, Lowerer, Out};

/// How an operand is used by the expression it is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Moved or copied into the expression (a call argument, a tuple field).
    Value,
    /// Used in place, perhaps borrowed (a method receiver, `&x`, a compared operand, an
    /// assigned place).
    Place,
}

impl Lowerer<'_> {
    // Input: an expression `e` (possibly with points).
    // Output: an expression, free of points, that evaluates to `e`'s value in the
    // current region once this returns (code before it emitted, jumps to point blocks
    // made, operands evaluated before a point kept in temporaries).
    pub(super) fn lower_value(&mut self, e: &Expr) -> Expr {
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
        match e {
            Expr::Paren(p) => {
                let mut p = p.clone();
                *p.expr = self.lower_value(&p.expr);
                Expr::Paren(p)
            }
            Expr::Group(g) => {
                let mut g = g.clone();
                *g.expr = self.lower_value(&g.expr);
                Expr::Group(g)
            }
            Expr::Binary(b)
                if matches!(b.op, syn::BinOp::And(_) | syn::BinOp::Or(_))
                    && self.points.in_expr(&b.right) =>
            {
                self.lower_short_circuit(b)
            }
            _ => self.lower_operands(e),
        }
    }

    // Input: `ctx.op(..).await`.
    // Output: a jump to a new point block; an expression standing for the point's outcome
    // in that block.
    pub(super) fn lower_point(&mut self, aw: &ExprAwait) -> Expr {
        let pid = self.lower_point_id(aw);
        self.holes.hole(Hole::Outcome(pid))
    }

    // Input: `ctx.op(..).await` (the operation may itself await points: they are lowered
    // first, their values kept for the operation).
    // Output: the point, whose block is now the current one; its operation's reads are
    // the effects of the code that uses its outcome.
    pub(super) fn lower_point_id(&mut self, aw: &ExprAwait) -> PointId {
        // `(ctx.op(..)).await`: the parentheses go, as rustc would not warn about them.
        let mut base = &*aw.base;
        while let Expr::Paren(syn::ExprParen { expr, .. })
        | Expr::Group(syn::ExprGroup { expr, .. }) = base
        {
            base = expr;
        }
        let mut base = if self.points.in_expr(base) {
            self.lower_operands(base)
        } else {
            base.clone()
        };
        on_a_clone_of_the_context(&mut base);
        let pid = self.cfg.points.len();
        let block = self.new_block(BlockKind::Point(pid));
        self.goto_at(block, aw.await_token.span);
        self.start_block(block);
        let before = self.fx.reads.clone();
        let op = self.verbatim_expr(base);
        let op_reads = self.fx.reads.difference(&before).copied().collect();
        let op = self.frag(&op);
        self.cfg.points.push(Point {
            block,
            op,
            op_reads,
            await_span: aw.await_token.span,
            start_span: first_span(&aw.base),
            label: point_label(&aw.base),
            line: aw.await_token.span.start().line as u32,
        });
        pid
    }

    // Input: an expression that is not a point, not control flow, with points in its
    // operands.
    // Output: the operands up to the last one with a point lowered in evaluation order:
    // those before it that must be evaluated first kept in temporaries, the rest (places,
    // literals, locals nothing later touches) left where they are; the expression with
    // them in place.
    pub(super) fn lower_operands(&mut self, e: &Expr) -> Expr {
        let mut e = e.clone();
        if let Expr::Macro(m) = &mut e {
            self.lower_macro(&mut m.mac);
            return e;
        }
        match operands(&mut e) {
            Some(mut ops) => self.lower_ops(&mut ops),
            None => {
                if let Some(span) = self.points.first_in_expr(&e) {
                    self.cx.error_at(span, unsupported(&e));
                }
            }
        }
        e
    }

    fn lower_ops(&mut self, ops: &mut [(&mut Expr, Use)]) {
        let Some(last) = ops.iter().rposition(|(k, _)| self.points.in_expr(k)) else {
            return;
        };
        for i in 0..=last {
            let later: BTreeSet<String> = ops[i + 1..=last]
                .iter()
                .flat_map(|(k, _)| idents(k.to_token_stream()))
                .collect();
            let (kid, how) = &mut ops[i];
            if self.points.in_expr(kid) {
                let v = self.lower_value(kid);
                **kid = if i < last {
                    self.hoist(v, *how, kid)
                } else {
                    v
                };
            } else {
                self.defer_or_hoist(kid, *how, &later);
            }
        }
    }

    // Input: an operand without a point, evaluated before a point later in its
    // expression.
    // Output: left in place when evaluating it after the point gives the same value (a
    // literal, a place used in place, a local nothing later mentions, a closure); else
    // evaluated now into a temporary.
    fn defer_or_hoist(&mut self, kid: &mut Expr, how: Use, later: &BTreeSet<String>) {
        match kid {
            Expr::Paren(p) => return self.defer_or_hoist(&mut p.expr, how, later),
            Expr::Group(g) => return self.defer_or_hoist(&mut g.expr, how, later),
            Expr::Reference(r) => {
                let later: BTreeSet<String> = later
                    .iter()
                    .filter(|n| self.lookup(n).is_some())
                    .cloned()
                    .collect();
                if place_root(&r.expr).is_none() && !inert(&r.expr, &later) {
                    let inner = (*r.expr).clone();
                    *r.expr = self.hoist(inner.clone(), Use::Place, &inner);
                }
                return;
            }
            _ => {}
        }
        let is_local = |name: &str| self.lookup(name).is_some();
        let later: BTreeSet<String> = later.iter().filter(|n| is_local(n)).cloned().collect();
        let keep = match how {
            Use::Place => place_root(kid).is_some() || inert(kid, &later),
            Use::Value => inert(kid, &later),
        };
        if !keep {
            let original = kid.clone();
            *kid = self.hoist(original.clone(), how, &original);
        }
    }

    // Input: a value to keep until the end of its expression; how the expression uses
    // it; the user's expression it stands for (for messages).
    // Output: `let __durable_hN = value;` emitted; the temporary's name.
    fn hoist(&mut self, value: Expr, how: Use, original: &Expr) -> Expr {
        let at = focus(original);
        let ident = format_ident!(
            "__durable_h{}",
            self.cfg.bindings.len(),
            span = Span::mixed_site().located_at(at)
        );
        let value = self.verbatim_expr(value);
        let value = self.frag(&value);
        let b = self.declare(ident.clone(), BindingKind::Temp, how == Use::Place);
        let binding = &mut self.cfg.bindings[b];
        binding.label = Some(format!("the value of `{}`", abbreviate(original)));
        binding.at = Some(at);
        self.emit(Code::Temp { binding: b, value });
        syn::parse_quote!(#ident)
    }

    // Input: `a && b` / `a || b` with a point in `b`.
    // Output: `if a { b } else { false }` / `if a { true } else { b }` lowered: `b` is
    // evaluated (and its point reached) only when `a` allows it.
    fn lower_short_circuit(&mut self, b: &syn::ExprBinary) -> Expr {
        if has_let(&b.left) {
            let span = self
                .points
                .first_in_expr(&b.right)
                .unwrap_or_else(Span::call_site);
            self.cx.error_at(
                span,
                "a durable `.await` cannot follow a `let` in a `&&` chain, whose bindings would have to cross it; nest the condition: `if let .. = .. { if ctx.step(..).await { .. } }`",
            );
            return Expr::Binary(b.clone());
        }
        let (left, right) = (&b.left, &b.right);
        let choice: Expr = match b.op {
            syn::BinOp::And(_) => syn::parse_quote!(if #left { #right } else { false }),
            _ => syn::parse_quote!(if #left { true } else { #right }),
        };
        self.lower_value(&choice)
    }

    // Input: a macro invocation with a point in its arguments.
    // Output: for the formatting macros (whose arguments are all evaluated, in order),
    // the arguments lowered like a call's; for others, an error.
    fn lower_macro(&mut self, mac: &mut syn::Macro) {
        let Some(mut args) = crate::ast::lowerable_macro_args(mac) else {
            if let Some(span) = self.points.first_in_tokens(&mac.tokens) {
                let name = mac.path.to_token_stream().to_string().replace(' ', "");
                self.cx.error_at(
                    span,
                    format!("`{name}!` may not evaluate its arguments once and in order, so a durable `.await` cannot be lowered inside it; move it out: `let value = ctx.step(..).await;` before it"),
                );
            }
            return;
        };
        let writes = mac
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "write" || s.ident == "writeln");
        let mut ops: Vec<(&mut Expr, Use)> = args
            .iter_mut()
            .enumerate()
            .map(|(i, a)| {
                (
                    a,
                    if writes && i == 0 {
                        Use::Place
                    } else {
                        Use::Value
                    },
                )
            })
            .collect();
        self.lower_ops(&mut ops);
        mac.tokens = args.into_token_stream();
    }
}

/// The operands of `e` through which a durable `.await` is lowered, in evaluation order,
/// each with how `e` uses it. `None`: an expression whose operands are not all evaluated,
/// once and in order, where they stand (a closure, a block, a loop).
fn operands(e: &mut Expr) -> Option<Vec<(&mut Expr, Use)>> {
    use syn::BinOp;
    use Use::{Place, Value};
    let ops = match e {
        Expr::Array(a) => a.elems.iter_mut().map(|e| (e, Value)).collect(),
        Expr::Tuple(t) => t.elems.iter_mut().map(|e| (e, Value)).collect(),
        Expr::Call(c) => std::iter::once((&mut *c.func, Value))
            .chain(c.args.iter_mut().map(|e| (e, Value)))
            .collect(),
        Expr::MethodCall(m) => std::iter::once((&mut *m.receiver, Place))
            .chain(m.args.iter_mut().map(|e| (e, Value)))
            .collect(),
        Expr::Struct(s) => s
            .fields
            .iter_mut()
            .map(|f| (&mut f.expr, Value))
            .chain(s.rest.iter_mut().map(|r| (&mut **r, Value)))
            .collect(),
        Expr::Binary(b) => match b.op {
            BinOp::And(_) | BinOp::Or(_) => vec![(&mut *b.left, Value)],
            BinOp::AddAssign(_)
            | BinOp::SubAssign(_)
            | BinOp::MulAssign(_)
            | BinOp::DivAssign(_)
            | BinOp::RemAssign(_)
            | BinOp::BitXorAssign(_)
            | BinOp::BitAndAssign(_)
            | BinOp::BitOrAssign(_)
            | BinOp::ShlAssign(_)
            | BinOp::ShrAssign(_) => vec![(&mut *b.right, Value), (&mut *b.left, Place)],
            BinOp::Eq(_)
            | BinOp::Ne(_)
            | BinOp::Lt(_)
            | BinOp::Le(_)
            | BinOp::Gt(_)
            | BinOp::Ge(_) => vec![(&mut *b.left, Place), (&mut *b.right, Place)],
            _ => vec![(&mut *b.left, Value), (&mut *b.right, Value)],
        },
        Expr::Assign(a) => vec![(&mut *a.right, Value), (&mut *a.left, Place)],
        Expr::Index(i) => vec![(&mut *i.expr, Place), (&mut *i.index, Value)],
        Expr::Field(f) => vec![(&mut *f.base, Place)],
        Expr::Cast(c) => vec![(&mut *c.expr, Value)],
        Expr::Unary(u) => match u.op {
            syn::UnOp::Deref(_) => vec![(&mut *u.expr, Place)],
            _ => vec![(&mut *u.expr, Value)],
        },
        Expr::Reference(r) => vec![(&mut *r.expr, Place)],
        Expr::Try(t) => vec![(&mut *t.expr, Value)],
        Expr::Await(a) => vec![(&mut *a.base, Value)],
        Expr::Range(r) => r
            .start
            .iter_mut()
            .chain(r.end.iter_mut())
            .map(|e| (&mut **e, Value))
            .collect(),
        Expr::Let(l) => vec![(&mut *l.expr, Place)],
        Expr::Match(m) => vec![(&mut *m.expr, Place)],
        Expr::If(i) => vec![(&mut *i.cond, Value)],
        Expr::ForLoop(f) => vec![(&mut *f.expr, Value)],
        Expr::Break(b) => b.expr.iter_mut().map(|e| (&mut **e, Value)).collect(),
        Expr::Return(r) => r.expr.iter_mut().map(|e| (&mut **e, Value)).collect(),
        Expr::Repeat(r) => vec![(&mut *r.expr, Value)],
        _ => return None,
    };
    Some(ops)
}

/// Whether evaluating `e` later (after a point) gives what evaluating it now would: it
/// has no effect of its own and reads no local that `later` (the locals the operands up to
/// the point mention) names.
fn inert(e: &Expr, later: &BTreeSet<String>) -> bool {
    let untouched = |e: &Expr| idents(e.to_token_stream()).all(|i| !later.contains(&i));
    match e {
        Expr::Lit(_) => true,
        Expr::Path(p) => p.qself.is_none() && untouched(e),
        Expr::Field(f) => inert(&f.base, later),
        Expr::Paren(p) => inert(&p.expr, later),
        Expr::Group(g) => inert(&g.expr, later),
        Expr::Cast(c) => inert(&c.expr, later),
        Expr::Reference(r) => place_root(&r.expr).is_some() || inert(&r.expr, later),
        Expr::Tuple(t) => t.elems.iter().all(|e| inert(e, later)),
        Expr::Array(a) => a.elems.iter().all(|e| inert(e, later)),
        Expr::Struct(s) => s.rest.is_none() && s.fields.iter().all(|f| inert(&f.expr, later)),
        // Building a closure or a future runs nothing.
        Expr::Closure(_) | Expr::Async(_) => untouched(e),
        _ => false,
    }
}

/// The identifiers in `tokens`, with format-string names, recursively.
fn idents(tokens: TokenStream) -> impl Iterator<Item = String> {
    let mut out = Vec::new();
    fn walk(tokens: TokenStream, out: &mut Vec<String>) {
        for tt in tokens {
            match tt {
                TokenTree::Ident(i) => out.push(i.to_string()),
                TokenTree::Group(g) => walk(g.stream(), out),
                TokenTree::Literal(l) => out.extend(super::verbatim::format_names(&l.to_string())),
                TokenTree::Punct(_) => {}
            }
        }
    }
    walk(tokens, &mut out);
    out.into_iter()
}

fn has_let(e: &Expr) -> bool {
    match e {
        Expr::Let(_) => true,
        Expr::Binary(b) if matches!(b.op, syn::BinOp::And(_)) => {
            has_let(&b.left) || has_let(&b.right)
        }
        Expr::Paren(p) => has_let(&p.expr),
        Expr::Group(g) => has_let(&g.expr),
        _ => false,
    }
}

/// Why a point in `e` cannot be lowered, and how to rewrite it.
fn unsupported(e: &Expr) -> String {
    let what = match e {
        Expr::Closure(_) => "a closure",
        Expr::Async(_) => "an `async` block",
        Expr::Unsafe(_) => "an `unsafe` block",
        Expr::Const(_) => "a `const` block",
        _ => "this expression",
    };
    format!("a durable `.await` cannot be lowered inside {what}; move it into its own statement before it: `let value = ctx.step(..).await;`")
}

/// `e`'s source text, shortened for a message.
fn abbreviate(e: &Expr) -> String {
    let text = e.to_token_stream().to_string();
    let text = text
        .replace(" . ", ".")
        .replace(" (", "(")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(" ,", ",");
    if text.chars().count() > 40 {
        let short: String = text.chars().take(37).collect();
        format!("{short}..")
    } else {
        text
    }
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
            let span = syn::spanned::Spanned::span(&*path);
            *e = syn::parse_quote_spanned!(span=> (::core::clone::Clone::clone(&#path)));
        }
        _ => {}
    }
}
