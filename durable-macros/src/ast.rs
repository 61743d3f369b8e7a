//! The workflow as the macro sees it: the signature split into context, parameters and
//! output, and the recogniser for durable points.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{
    Attribute, Block, Expr, ExprAwait, FnArg, Ident, ItemFn, Pat, ReturnType, Type, Visibility,
};

/// The parsed `#[durable] async fn`.
pub struct Workflow {
    /// The function as written, re-emitted on error.
    pub item: ItemFn,
    /// The function name, which becomes the workflow struct's name.
    pub ident: Ident,
    /// The function's visibility, given to the struct.
    pub vis: Visibility,
    /// The context parameter, when the first parameter is one.
    pub ctx: Option<CtxParam>,
    /// The other parameters.
    pub params: Vec<Param>,
    /// The declared return type (`()` when there is none).
    pub output: Type,
    /// The body.
    pub body: Block,
}

/// The context parameter (`ctx: Ctx`).
pub struct CtxParam {
    /// Its name; `None` for `_`.
    pub ident: Option<Ident>,
    /// `mut ctx`.
    pub mutability: Option<syn::Token![mut]>,
    /// The whole parameter, for errors.
    pub span: Span,
    /// Its type as written.
    pub ty: Type,
}

/// A parameter after the context.
pub struct Param {
    /// Its pattern, bound in block 0.
    pub pat: Pat,
    /// Its type, part of `Workflow::Input`.
    pub ty: Type,
}

impl Workflow {
    // Input: `async fn name(ctx: Ctx, a: A, ..) -> R { body }` as parsed by syn.
    // Output: the signature split up; nothing is validated here (see `check`).
    pub fn from_item(item: ItemFn) -> Self {
        let mut ctx = None;
        let mut params = Vec::new();
        // A receiver (`&self`, rejected by `check`) does not hide the context after it.
        let typed = item.sig.inputs.iter().filter_map(|arg| match arg {
            FnArg::Typed(pt) => Some(pt),
            FnArg::Receiver(_) => None,
        });
        for (i, pt) in typed.enumerate() {
            // A type alias of `Ctx` is recognised by the parameter's name.
            if i == 0 && (is_ctx_type(&pt.ty) || is_ctx_name(&pt.pat)) {
                let (ident, mutability) = match &*pt.pat {
                    Pat::Ident(pi) if pi.subpat.is_none() && pi.by_ref.is_none() => {
                        (Some(pi.ident.clone()), pi.mutability)
                    }
                    _ => (None, None),
                };
                ctx = Some(CtxParam {
                    ident,
                    mutability,
                    span: pt.span(),
                    ty: (*pt.ty).clone(),
                });
                continue;
            }
            params.push(Param {
                pat: (*pt.pat).clone(),
                ty: (*pt.ty).clone(),
            });
        }
        let output = match &item.sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, ty) => (**ty).clone(),
        };
        Workflow {
            ident: item.sig.ident.clone(),
            vis: item.vis.clone(),
            ctx,
            params,
            output,
            body: (*item.block).clone(),
            item,
        }
    }

    /// The recogniser for this workflow's durable points.
    pub fn points(&self) -> Points<'_> {
        Points {
            ctx: self.ctx.as_ref().and_then(|c| c.ident.as_ref()),
        }
    }

    /// `#[doc]` attributes: given to the struct.
    pub fn doc_attrs(&self) -> impl Iterator<Item = &Attribute> {
        self.item.attrs.iter().filter(|a| a.path().is_ident("doc"))
    }
}

/// Whether a parameter pattern is a context's usual name: `ctx`, `context` (or `_`-prefixed).
fn is_ctx_name(pat: &Pat) -> bool {
    match pat {
        Pat::Ident(pi) if pi.subpat.is_none() && pi.by_ref.is_none() => {
            let name = pi.ident.to_string();
            matches!(name.trim_start_matches('_'), "ctx" | "context")
        }
        _ => false,
    }
}

/// Whether `ty`'s last path segment is `Ctx`.
pub fn is_ctx_type(ty: &Type) -> bool {
    match ty {
        Type::Path(tp) => {
            tp.qself.is_none() && tp.path.segments.last().is_some_and(|s| s.ident == "Ctx")
        }
        Type::Group(g) => is_ctx_type(&g.elem),
        Type::Paren(p) => is_ctx_type(&p.elem),
        _ => false,
    }
}

/// Recognises durable points: `.await`s on a method-call chain rooted at the context
/// parameter (`ctx.step(..).retry(..).await`).
#[derive(Clone, Copy)]
pub struct Points<'a> {
    ctx: Option<&'a Ident>,
}

impl Points<'_> {
    /// `e` itself is a durable point.
    pub fn point<'e>(&self, e: &'e Expr) -> Option<&'e ExprAwait> {
        fn call(e: &Expr) -> bool {
            match e {
                Expr::MethodCall(_) => true,
                Expr::Paren(p) => call(&p.expr),
                Expr::Group(g) => call(&g.expr),
                _ => false,
            }
        }
        match e {
            Expr::Await(aw) if call(&aw.base) && self.rooted(&aw.base) => Some(aw),
            _ => None,
        }
    }

    /// Whether `e` is the context parameter itself.
    pub fn is_ctx(&self, e: &Expr) -> bool {
        match e {
            Expr::Path(p) => {
                p.qself.is_none()
                    && p.attrs.is_empty()
                    && self.ctx.is_some_and(|ctx| p.path.is_ident(ctx))
            }
            Expr::Paren(p) => self.is_ctx(&p.expr),
            Expr::Group(g) => self.is_ctx(&g.expr),
            _ => false,
        }
    }

    fn rooted(&self, e: &Expr) -> bool {
        match e {
            Expr::MethodCall(m) => self.rooted(&m.receiver),
            Expr::Paren(p) => self.rooted(&p.expr),
            Expr::Group(g) => self.rooted(&g.expr),
            Expr::Path(p) => {
                p.qself.is_none()
                    && p.attrs.is_empty()
                    && self.ctx.is_some_and(|ctx| p.path.is_ident(ctx))
            }
            _ => false,
        }
    }

    /// The `.await` of the first durable point in `e` that the lowering sees (it does not
    /// look into closures, `async` blocks, nested items or macro invocations).
    pub fn first_in_expr(&self, e: &Expr) -> Option<Span> {
        let mut finder = Finder {
            points: *self,
            found: None,
        };
        finder.visit_expr(e);
        finder.found
    }

    /// [`Points::first_in_expr`] for a block.
    pub fn first_in_block(&self, b: &Block) -> Option<Span> {
        let mut finder = Finder {
            points: *self,
            found: None,
        };
        finder.visit_block(b);
        finder.found
    }

    /// The `.await` of the first durable point in macro tokens that parse as
    /// comma-separated expressions.
    pub fn first_in_tokens(&self, tokens: &proc_macro2::TokenStream) -> Option<Span> {
        let args = crate::check::macro_args(tokens)?;
        let mut finder = Finder {
            points: *self,
            found: None,
        };
        for e in &args {
            finder.visit_expr(e);
        }
        finder.found
    }

    /// `e` contains a durable point that the lowering sees.
    pub fn in_expr(&self, e: &Expr) -> bool {
        self.first_in_expr(e).is_some()
    }

    /// `b` contains a durable point that the lowering sees.
    pub fn in_block(&self, b: &Block) -> bool {
        self.first_in_block(b).is_some()
    }
}

struct Finder<'a> {
    points: Points<'a>,
    found: Option<Span>,
}

impl<'ast> Visit<'ast> for Finder<'_> {
    fn visit_expr(&mut self, e: &'ast Expr) {
        if self.found.is_some() {
            return;
        }
        if let Some(aw) = self.points.point(e) {
            // A point inside the operand chain is found first: it is evaluated first.
            visit::visit_expr(self, &aw.base);
            if self.found.is_none() {
                self.found = Some(aw.await_token.span);
            }
            return;
        }
        match e {
            // Not lowered: `check` reports points in these.
            Expr::Closure(_) | Expr::Async(_) | Expr::Const(_) | Expr::Unsafe(_) => {}
            Expr::Macro(m) => self.visit_lowerable_macro(&m.mac),
            _ => visit::visit_expr(self, e),
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}

    fn visit_stmt_macro(&mut self, m: &'ast syn::StmtMacro) {
        self.visit_lowerable_macro(&m.mac);
    }
}

impl Finder<'_> {
    fn visit_lowerable_macro(&mut self, m: &syn::Macro) {
        if let Some(args) = lowerable_macro_args(m) {
            for e in &args {
                self.visit_expr(e);
            }
        }
    }
}

/// The formatting macros, which evaluate each of their arguments once, in order: a
/// durable `.await` in their arguments is lowered like one in a call's.
const LOWERABLE_MACROS: &[&str] = &[
    "format",
    "format_args",
    "print",
    "println",
    "eprint",
    "eprintln",
    "write",
    "writeln",
    "vec",
    "dbg",
];

/// The arguments of a macro whose durable points the lowering can lower (see
/// [`LOWERABLE_MACROS`]), when they parse as comma-separated expressions.
pub fn lowerable_macro_args(
    m: &syn::Macro,
) -> Option<syn::punctuated::Punctuated<Expr, syn::Token![,]>> {
    let name = m.path.segments.last()?.ident.to_string();
    if !LOWERABLE_MACROS.contains(&name.as_str()) {
        return None;
    }
    crate::check::macro_args(&m.tokens)
}
