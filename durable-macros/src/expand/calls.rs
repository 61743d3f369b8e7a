//! The workflows a body calls as children or invokes: registering the caller registers
//! them.

use proc_macro2::TokenStream;
use quote::quote;
use std::collections::HashSet;
use syn::visit::{self, Visit};
use syn::{Expr, ExprPath, Ident};

use super::Expander;

/// The methods of the context whose first argument names a workflow to run.
const CALLING_METHODS: &[&str] = &["call", "invoke"];

/// The method of the context whose third argument may name a workflow to run per item.
const MAPPING_METHOD: &str = "map";

// Input: the workflow as parsed, and the runtime path.
// Output: in every durable point `ctx.map(name, items, body)..await` whose body is a path,
// the body probed: a `#[durable]` fn becomes a function giving one child call per item, so
// that `map` takes a workflow like a closure; any other function stays itself (a step
// body). Closures are left alone (their parameter types are inferred from `map`'s
// signature only when they are passed to it directly).
pub(super) fn wrap_map_bodies(wf: &mut crate::ast::Workflow, p: &TokenStream) {
    struct Wrap<'a> {
        ctx: Option<Ident>,
        p: &'a TokenStream,
    }
    impl syn::visit_mut::VisitMut for Wrap<'_> {
        fn visit_expr_mut(&mut self, e: &mut Expr) {
            syn::visit_mut::visit_expr_mut(self, e);
            let Expr::Await(aw) = e else { return };
            let Some(m) = map_call(&mut aw.base) else {
                return;
            };
            let rooted = matches!(&*m.receiver, Expr::Path(r)
                if r.qself.is_none() && self.ctx.as_ref().is_some_and(|c| r.path.is_ident(c)));
            if !rooted || m.method != MAPPING_METHOD || m.args.len() != 3 {
                return;
            }
            if let Some(Expr::Path(body)) = m.args.get_mut(2) {
                if body.qself.is_none() && body.attrs.is_empty() {
                    let p = self.p;
                    let span = syn::spanned::Spanned::span(&*body);
                    let wrapped: Expr = syn::parse_quote_spanned! {span=> {
                        #[allow(unused_imports)]
                        use #p::{ProbeOther as _, ProbeWorkflow as _};
                        (&&#p::Probe(#body)).map_body()
                    }};
                    m.args[2] = wrapped;
                }
            }
        }
        fn visit_item_mut(&mut self, _: &mut syn::Item) {}
    }
    // The method call at the root of an option chain: `ctx.map(..)` in `ctx.map(..).opt(..)`.
    fn map_call(e: &mut Expr) -> Option<&mut syn::ExprMethodCall> {
        match e {
            Expr::MethodCall(m) => {
                if matches!(&*m.receiver, Expr::Path(_)) {
                    Some(m)
                } else {
                    map_call(&mut m.receiver)
                }
            }
            Expr::Paren(p) => map_call(&mut p.expr),
            Expr::Group(g) => map_call(&mut g.expr),
            _ => None,
        }
    }
    let ctx = wf.ctx.as_ref().and_then(|c| c.ident.clone());
    let mut body = wf.body.clone();
    syn::visit_mut::VisitMut::visit_block_mut(&mut Wrap { ctx, p }, &mut body);
    wf.body = body;
}

impl Expander<'_> {
    // Input: durable points `ctx.call(helper, ..).await` and `ctx.invoke(helper, ..).await`
    // (also under option methods: `ctx.call(helper, ..).opt(..).await`).
    // Output: `#p::called(helper), ..` for each one whose first argument is a path that
    // no binding of the fn shadows (a local holding a workflow cannot be named from the
    // `Workflow` impl; the runtime reports such an unregistered child by a typed error).
    pub(super) fn called(&self) -> Vec<TokenStream> {
        let p = &self.p;
        let mut bound = Bindings::default();
        for param in &self.wf.params {
            bound.visit_pat(&param.pat);
        }
        bound.visit_block(&self.wf.body);
        let mut calls = Calls {
            points: self.wf.points(),
            found: Vec::new(),
        };
        calls.visit_block(&self.wf.body);
        let mut seen = HashSet::new();
        calls
            .found
            .into_iter()
            .filter(|path| {
                let first = &path.path.segments[0].ident;
                !(path.path.leading_colon.is_none() && bound.0.contains(first))
            })
            .filter(|path| seen.insert(quote!(#path).to_string()))
            .map(|path| quote!((&&#p::Probe(#path)).workflow_called()))
            .collect()
    }
}

/// Every identifier a pattern of the fn binds.
#[derive(Default)]
struct Bindings(HashSet<Ident>);

impl Visit<'_> for Bindings {
    fn visit_pat_ident(&mut self, p: &syn::PatIdent) {
        self.0.insert(p.ident.clone());
        visit::visit_pat_ident(self, p);
    }
    fn visit_item(&mut self, _: &syn::Item) {}
}

struct Calls<'a> {
    points: crate::ast::Points<'a>,
    found: Vec<ExprPath>,
}

impl<'a> Visit<'a> for Calls<'_> {
    fn visit_expr(&mut self, e: &'a Expr) {
        if let Some(aw) = self.points.point(e) {
            if let Some(path) = called_path(&aw.base) {
                self.found.push(path.clone());
            }
        }
        match e {
            // `ctx.call(helper, ..)` built in a closure (a batch body), not awaited there.
            Expr::MethodCall(m)
                if self.points.is_ctx(&m.receiver)
                    && CALLING_METHODS.iter().any(|name| m.method == name) =>
            {
                if let Some(path) = plain_path(m.args.first()) {
                    self.found.push(path.clone());
                }
            }
            // `ctx.map(name, items, helper)`, as `wrap_map_bodies` left it.
            Expr::MethodCall(m)
                if self.points.is_ctx(&m.receiver) && m.method == MAPPING_METHOD =>
            {
                if let Some(path) = m.args.get(2).and_then(probed_path) {
                    self.found.push(path.clone());
                }
            }
            // `Branch::call(helper, ..)`, a branch of `ctx.parallel`.
            Expr::Call(call) if last_segments(&call.func, &["Branch", "call"]) => {
                if let Some(path) = plain_path(call.args.first()) {
                    self.found.push(path.clone());
                }
            }
            _ => {}
        }
        visit::visit_expr(self, e);
    }
    // `vec![Branch::call(helper, ..), ..]`: macro arguments that parse as expressions.
    fn visit_macro(&mut self, m: &'a syn::Macro) {
        if let Some(args) = crate::check::macro_args(&m.tokens) {
            let mut inner = Calls {
                points: self.points,
                found: Vec::new(),
            };
            for arg in &args {
                inner.visit_expr(arg);
            }
            self.found.extend(inner.found);
        }
    }
    fn visit_item(&mut self, _: &'a syn::Item) {}
}

/// `e` if it is a plain path (no `<T as Trait>::`, no attributes).
fn plain_path(e: Option<&Expr>) -> Option<&ExprPath> {
    match e {
        Some(Expr::Path(path)) if path.qself.is_none() && path.attrs.is_empty() => Some(path),
        _ => None,
    }
}

/// The path in `{ use ..; (&&Probe(path)).map_body() }`, the probed body of `ctx.map`.
fn probed_path(e: &Expr) -> Option<&ExprPath> {
    let Expr::Block(block) = e else { return None };
    let Some(syn::Stmt::Expr(Expr::MethodCall(m), None)) = block.block.stmts.last() else {
        return None;
    };
    let mut receiver = &*m.receiver;
    loop {
        receiver = match receiver {
            Expr::Reference(r) => &r.expr,
            Expr::Paren(p) => &p.expr,
            _ => break,
        };
    }
    match receiver {
        Expr::Call(call) if last_segments(&call.func, &["Probe"]) => plain_path(call.args.first()),
        _ => None,
    }
}

/// Whether `e` is a path ending in the segments `last`.
fn last_segments(e: &Expr, last: &[&str]) -> bool {
    let Expr::Path(path) = e else { return false };
    let segments: Vec<String> = path
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    segments.len() >= last.len() && segments[segments.len() - last.len()..] == *last
}

/// The workflow path of a calling method at the root of a method chain.
fn called_path(e: &Expr) -> Option<&ExprPath> {
    match e {
        Expr::MethodCall(m) => match &*m.receiver {
            Expr::Path(_) => {
                let calling = CALLING_METHODS.iter().any(|name| m.method == name);
                match m.args.first() {
                    Some(Expr::Path(path))
                        if calling && path.qself.is_none() && path.attrs.is_empty() =>
                    {
                        Some(path)
                    }
                    _ => None,
                }
            }
            receiver => called_path(receiver),
        },
        Expr::Paren(p) => called_path(&p.expr),
        Expr::Group(g) => called_path(&g.expr),
        _ => None,
    }
}
