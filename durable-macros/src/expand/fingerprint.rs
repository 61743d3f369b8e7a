//! The workflow's code fingerprint (its tokens, kept for information: executions resume
//! by layout, see `durable_core`'s `engine::layouts`), and the lowering format.

use proc_macro2::TokenStream;
use quote::ToTokens;

use super::Expander;

/// What a frame means to the code this macro generates: how points are numbered (source
/// order of their `.await`s), which locals a frame holds and in which order (the
/// liveness analysis), how a frame is entered and resumed. Part of every workflow's
/// layout, so bump it with any change to those: frames written by the old lowering then
/// never resume on the new one (they park until code of the old lowering is registered).
pub(super) const LOWERING_FORMAT: u32 = 1;

impl Expander<'_> {
    /// FNV-1a 64 over the function's tokens (normalised: identifiers, literals,
    /// punctuation and delimiters, never whitespace), then each point's id and the
    /// names of its live locals.
    pub(super) fn fingerprint(&self) -> u64 {
        let mut h = Fnv::new();
        let mut tokens = TokenStream::new();
        self.wf.item.sig.to_tokens(&mut tokens);
        self.wf.item.block.to_tokens(&mut tokens);
        h.tokens(tokens);
        for pid in 0..self.cfg.points.len() {
            h.write(b"point");
            h.write(&(pid as u32).to_le_bytes());
            for b in self.cfg.frame(pid) {
                h.write(b"local");
                h.write(self.cfg.bindings[b].name().as_bytes());
                h.write(&[0]);
            }
        }
        h.0
    }
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn tokens(&mut self, tokens: TokenStream) {
        use proc_macro2::{Delimiter, TokenTree};
        for tt in tokens {
            match tt {
                TokenTree::Group(g) => {
                    let (open, close): (&[u8], &[u8]) = match g.delimiter() {
                        Delimiter::Parenthesis => (b"(", b")"),
                        Delimiter::Brace => (b"{", b"}"),
                        Delimiter::Bracket => (b"[", b"]"),
                        Delimiter::None => (b"<g", b"g>"),
                    };
                    self.write(open);
                    self.tokens(g.stream());
                    self.write(close);
                }
                TokenTree::Ident(i) => {
                    self.write(b"i");
                    self.write(i.to_string().as_bytes());
                    self.write(&[0]);
                }
                TokenTree::Punct(p) => {
                    self.write(b"p");
                    let mut buf = [0; 4];
                    self.write(p.as_char().encode_utf8(&mut buf).as_bytes());
                }
                TokenTree::Literal(l) => {
                    self.write(b"l");
                    self.write(l.to_string().as_bytes());
                    self.write(&[0]);
                }
            }
        }
    }
}
