//! Building [`Frag`]s. The lowering rewrites user code as a syn tree in which each node
//! it replaces (a `?`, a `return`, a jump, a lowered value) becomes a *hole*: an
//! identifier that no token of the user's can equal, recorded with what goes there.
//! Turning the tree's tokens into a `Frag` turns each hole into its piece, so neither the
//! IR nor the expansion ever scans for marker tokens.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{Expr, Ident};

use super::ir::{BindingId, Frag, GotoId, Piece, PointId};

/// What a hole stands for.
pub(super) enum Hole {
    /// A jump out of verbatim code.
    Jump(GotoId),
    /// A destination's value.
    Take(BindingId),
    /// A point's outcome.
    Outcome(PointId),
    /// A value never produced.
    Unreachable,
    /// A pattern's binding.
    Bind(BindingId),
    /// The field name before a shorthand field pattern's binding.
    FieldName(BindingId),
}

/// The holes of one workflow.
pub(super) struct Holes {
    /// `__durable_holeN_`, where no identifier of the user's starts with it.
    prefix: String,
    holes: Vec<Hole>,
}

impl Holes {
    // Input: every token of the user's fn.
    // Output: a hole prefix none of them starts with.
    pub(super) fn new(user_tokens: TokenStream) -> Self {
        let mut taken = Vec::new();
        collect_hole_like(user_tokens, &mut taken);
        let prefix = (0u32..)
            .map(|n| format!("__durable_hole{n}_"))
            .find(|p| !taken.iter().any(|t| t.starts_with(p.as_str())))
            .unwrap_or_default();
        Holes {
            prefix,
            holes: Vec::new(),
        }
    }

    /// An expression that stands for `hole` until the tokens become a `Frag`.
    pub(super) fn hole(&mut self, hole: Hole) -> Expr {
        Expr::Verbatim(self.hole_tokens(hole))
    }

    /// The tokens that stand for `hole` (in a pattern, say).
    pub(super) fn hole_tokens(&mut self, hole: Hole) -> TokenStream {
        let ident = Ident::new(
            &format!("{}{}", self.prefix, self.holes.len()),
            Span::mixed_site(),
        );
        self.holes.push(hole);
        ident.into_token_stream()
    }

    // Input: tokens of rewritten user code.
    // Output: the same tokens as a `Frag`, each hole replaced by its piece.
    pub(super) fn frag(&self, tokens: TokenStream) -> Frag {
        let mut pieces = Vec::new();
        let mut run = TokenStream::new();
        for tt in tokens {
            match tt {
                TokenTree::Ident(i) => match self.index(&i) {
                    Some(k) => {
                        flush(&mut run, &mut pieces);
                        pieces.push(self.piece(k));
                    }
                    None => run.extend([TokenTree::Ident(i)]),
                },
                TokenTree::Group(g) => {
                    let inner = self.frag(g.stream());
                    if inner.0.iter().all(|p| matches!(p, Piece::Tokens(_))) {
                        run.extend([TokenTree::Group(g)]);
                    } else {
                        flush(&mut run, &mut pieces);
                        pieces.push(Piece::Group(g.delimiter(), g.span(), inner));
                    }
                }
                other => run.extend([other]),
            }
        }
        flush(&mut run, &mut pieces);
        Frag(pieces)
    }

    fn index(&self, ident: &Ident) -> Option<usize> {
        let name = ident.to_string();
        let k: usize = name.strip_prefix(&self.prefix)?.parse().ok()?;
        (k < self.holes.len()).then_some(k)
    }

    fn piece(&self, k: usize) -> Piece {
        match &self.holes[k] {
            Hole::Jump(g) => Piece::Jump(*g),
            Hole::Take(b) => Piece::Take(*b),
            Hole::Outcome(p) => Piece::Outcome(*p),
            Hole::Unreachable => Piece::Unreachable,
            Hole::Bind(b) => Piece::Bind(*b),
            Hole::FieldName(b) => Piece::FieldName(*b),
        }
    }
}

fn flush(run: &mut TokenStream, pieces: &mut Vec<Piece>) {
    if !run.is_empty() {
        pieces.push(Piece::Tokens(std::mem::take(run)));
    }
}

fn collect_hole_like(tokens: TokenStream, out: &mut Vec<String>) {
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) => {
                let name = i.to_string();
                if name.starts_with("__durable_hole") {
                    out.push(name);
                }
            }
            TokenTree::Group(g) => collect_hole_like(g.stream(), out),
            _ => {}
        }
    }
}
