//! Rules that reject a `#[durable]` fn with spanned errors, all collected in one pass.
//!
//! Points in positions the lowering can reach but not lower (an expression whose
//! operands are not evaluated once and in order, a `let` chain) are reported by `lower`;
//! this module checks the signature and the places the lowering never looks into
//! (closures, `async` blocks, guards, macros other than the formatting ones).

use proc_macro2::{Span, TokenStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Expr, FnArg, Type};

use crate::ast::{Points, Workflow};
use crate::ctxt::Ctxt;

// Input: the parsed workflow.
// Output: errors in `cx` for every rule its signature breaks.
pub fn check_signature(cx: &Ctxt, wf: &Workflow) {
    signature(cx, wf);
    attributes(cx, wf);
}

// Input: the parsed workflow.
// Output: errors in `cx` for durable points where the lowering does not look.
pub fn check_body(cx: &Ctxt, wf: &Workflow) {
    let mut misplaced = Misplaced {
        cx,
        points: wf.points(),
    };
    misplaced.visit_block(&wf.body);
}

fn signature(cx: &Ctxt, wf: &Workflow) {
    let sig = &wf.item.sig;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(sig.fn_token, "`#[durable]` requires an `async fn`");
    }
    if let Some(c) = &sig.constness {
        cx.error_spanned_by(c, "a `#[durable]` fn cannot be `const`");
    }
    if let syn::Safety::Unsafe(u) = &sig.safety {
        cx.error_spanned_by(u, "a `#[durable]` fn cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, "a `#[durable]` fn cannot have an ABI");
    }
    if let Some(v) = &sig.variadic {
        cx.error_spanned_by(v, "a `#[durable]` fn cannot be variadic");
    }
    generics(cx, &sig.generics);
    for arg in &sig.inputs {
        if let FnArg::Receiver(r) = arg {
            cx.error_spanned_by(
                r,
                "a `#[durable]` workflow is a free `async fn`; it cannot take `self`",
            );
        }
    }
    match &wf.ctx {
        // A receiver is already an error.
        None if sig.receiver().is_some() => {}
        None => {
            let at = sig
                .inputs
                .first()
                .map_or_else(|| sig.paren_token.span.join(), |a| a.span());
            cx.error_at(
                at,
                "the first parameter of a `#[durable]` fn must be the context: `ctx: Ctx` (under a type alias of `Ctx`, name it `ctx`)",
            );
        }
        Some(ctx) if ctx.ident.is_none() => {
            if let Some(FnArg::Typed(pt)) = sig.inputs.first() {
                if !matches!(&*pt.pat, syn::Pat::Wild(_)) {
                    cx.error_at(
                        ctx.span,
                        "the context parameter must be a plain name, such as `ctx: Ctx`",
                    );
                }
            }
        }
        Some(_) => {}
    }
    let typed = sig.inputs.iter().filter(|a| matches!(a, FnArg::Typed(_)));
    for (i, arg) in typed.enumerate() {
        if let FnArg::Typed(pt) = arg {
            if i > 0 && crate::ast::is_ctx_type(&pt.ty) {
                cx.error_spanned_by(
                    &pt.ty,
                    "only the first parameter of a `#[durable]` fn can be the context",
                );
            }
            if i > 0 || wf.ctx.is_none() {
                owned(
                    cx,
                    &pt.ty,
                    "workflow inputs are stored with the execution, so they must be owned types",
                );
            }
        }
    }
    if let syn::ReturnType::Type(_, ty) = &sig.output {
        owned(
            cx,
            ty,
            "the workflow output is stored with the execution, so it must be an owned type",
        );
    }
}

// Input: the fn's generics.
// Output: an error on each parameter (and on a `where` clause without parameters).
// Generic workflows are rejected rather than supported: the workflow is one type
// registered under one name with one fingerprint, and its input, output and frames are
// stored, so every type in them must be fixed when the macro expands.
fn generics(cx: &Ctxt, generics: &syn::Generics) {
    for param in &generics.params {
        let msg = match param {
            syn::GenericParam::Lifetime(_) => {
                "a `#[durable]` fn cannot have lifetime parameters: its input is stored with the execution, so it must own its data"
            }
            syn::GenericParam::Type(_) | syn::GenericParam::Const(_) => {
                "a `#[durable]` fn cannot be generic: its input, output and frames are stored, so their types must be fixed; write one `#[durable]` fn per concrete type (they can share generic helper fns)"
            }
        };
        cx.error_spanned_by(param, msg);
    }
    if let Some(wc) = &generics.where_clause {
        if generics.params.is_empty() {
            cx.error_spanned_by(
                wc,
                "a `#[durable]` fn cannot have a `where` clause: its types are fixed, so there is nothing to bound",
            );
        }
    }
}

fn owned(cx: &Ctxt, ty: &Type, why: &str) {
    match ty {
        Type::Reference(r) => cx.error_spanned_by(r, why),
        Type::ImplTrait(t) => {
            cx.error_spanned_by(t, "`impl Trait` cannot be stored: name the concrete type")
        }
        _ => {}
    }
}

fn attributes(cx: &Ctxt, wf: &Workflow) {
    for attr in &wf.item.attrs {
        let path = attr.path();
        let known = [
            "doc", "cfg", "cfg_attr", "allow", "warn", "deny", "forbid", "expect",
        ]
        .iter()
        .any(|k| path.is_ident(k));
        if !known {
            cx.error_spanned_by(
                path,
                "`#[durable]` fns take only `doc`, `cfg` and lint attributes, because the fn becomes a workflow type",
            );
        }
    }
}

/// Finds durable points the lowering does not look into.
struct Misplaced<'a> {
    cx: &'a Ctxt,
    points: Points<'a>,
}

impl Misplaced<'_> {
    fn report_all(&self, spans: Vec<Span>, msg: &str) {
        for span in spans {
            self.cx.error_at(span, msg);
        }
    }
}

impl<'ast> Visit<'ast> for Misplaced<'_> {
    fn visit_expr_closure(&mut self, c: &'ast syn::ExprClosure) {
        self.report_all(
            all_points(self.points, |v| v.visit_expr(&c.body)),
            "durable operations can only be awaited directly in the body of a `#[durable]` fn, not inside a closure; move this `.await` out of the closure",
        );
    }

    fn visit_expr_async(&mut self, a: &'ast syn::ExprAsync) {
        self.report_all(
            all_points(self.points, |v| v.visit_block(&a.block)),
            "durable operations can only be awaited directly in the body of a `#[durable]` fn, not inside an `async` block; move this `.await` out of the `async` block",
        );
    }

    fn visit_expr_const(&mut self, c: &'ast syn::ExprConst) {
        self.report_all(
            all_points(self.points, |v| v.visit_block(&c.block)),
            "a `const` block cannot await a durable operation",
        );
    }

    fn visit_expr_unsafe(&mut self, u: &'ast syn::ExprUnsafe) {
        let spans = all_points(self.points, |v| v.visit_block(&u.block));
        self.report_all(
            spans,
            "move this durable `.await` out of the `unsafe` block: `let value = ctx.step(..).await;` before it",
        );
    }

    fn visit_expr_macro(&mut self, m: &'ast syn::ExprMacro) {
        self.visit_macro(&m.mac);
    }

    fn visit_stmt_macro(&mut self, m: &'ast syn::StmtMacro) {
        self.visit_macro(&m.mac);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if let Some(args) = crate::ast::lowerable_macro_args(m) {
            // The lowering lowers these arguments like a call's.
            for e in &args {
                self.visit_expr(e);
            }
            return;
        }
        if let Some(args) = macro_args(&m.tokens) {
            let spans = all_points(self.points, |v| {
                for e in &args {
                    v.visit_expr(e);
                }
            });
            let name = quote::ToTokens::to_token_stream(&m.path)
                .to_string()
                .replace(' ', "");
            self.report_all(
                spans,
                &format!("`{name}!` may not evaluate its arguments once and in order, so a durable `.await` cannot be lowered inside it; move it out: `let value = ctx.step(..).await;` before it"),
            );
            // Closures inside the arguments are checked like any other.
            for e in &args {
                self.visit_expr(e);
            }
        }
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        if let syn::Pat::Guard(g) = &arm.pat {
            self.report_all(
                all_points(self.points, |v| v.visit_expr(&g.guard)),
                "a `match` guard cannot await a durable operation: the guard borrows the arm's bindings, and a borrow cannot cross a durable point; await it before the `match` (`let ok = ctx.step(..).await;` then `pat if ok =>`) or test it in the arm's body",
            );
        }
        self.visit_expr(&arm.body);
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// The arguments of a macro invocation, when they parse as comma-separated expressions
/// (`format!`, `vec!`, `assert_eq!`, ..).
pub fn macro_args(tokens: &TokenStream) -> Option<Punctuated<Expr, syn::Token![,]>> {
    syn::parse::Parser::parse2(
        Punctuated::<Expr, syn::Token![,]>::parse_terminated,
        tokens.clone(),
    )
    .ok()
}

/// Every durable point under the node `walk` visits, closures and blocks included
/// (nested items excluded).
fn all_points(points: Points<'_>, walk: impl FnOnce(&mut AllPoints<'_>)) -> Vec<Span> {
    let mut v = AllPoints {
        points,
        found: Vec::new(),
    };
    walk(&mut v);
    v.found
}

struct AllPoints<'a> {
    points: Points<'a>,
    found: Vec<Span>,
}

impl<'ast> Visit<'ast> for AllPoints<'_> {
    fn visit_expr(&mut self, e: &'ast Expr) {
        if let Some(aw) = self.points.point(e) {
            self.found.push(aw.await_token.span);
        }
        visit::visit_expr(self, e);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if let Some(args) = crate::ast::lowerable_macro_args(m) {
            // The lowering lowers these arguments like a call's.
            for e in &args {
                self.visit_expr(e);
            }
            return;
        }
        if let Some(args) = macro_args(&m.tokens) {
            for e in &args {
                self.visit_expr(e);
            }
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}
