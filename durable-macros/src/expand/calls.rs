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
            .map(|path| quote!(#p::called(#path)))
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
        visit::visit_expr(self, e);
    }
    fn visit_item(&mut self, _: &'a syn::Item) {}
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
