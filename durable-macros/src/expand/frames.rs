//! Frames: what a point encodes when it is entered (the locals live there, through
//! their codecs), how a frame is decoded back into the slots to resume or to inspect an
//! execution, and what the engine shows of each point.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};

use super::diagnostics::located_slot;
use super::machine::{codec_ident, outcome_type_ident, Names};
use super::Expander;
use crate::lower::PointId;

impl Expander<'_> {
    // Input: point `pid` with its frame (the locals live where its block starts).
    // Output: `enter`, encoding each local through its codec (see `slot_checks`).
    pub(super) fn enter(&self, pid: PointId) -> TokenStream {
        let Expander { p, cfg, .. } = self;
        let Names {
            ctx,
            entered,
            writer,
            stop,
            ..
        } = &self.n;
        let encodes = cfg.frame(pid).into_iter().map(|b| {
            let binding = &cfg.bindings[b];
            let span = binding.ident.span();
            let s = located_slot(b, span);
            let c = codec_ident(b);
            let name = binding.name();
            quote_spanned!(span=> #writer.local(#c, &#s, #name);)
        });
        let id = Literal::u32_unsuffixed(pid as u32);
        quote! {
            let #entered = #p::enter(&#stop, &#ctx, #id, |#writer| { #(#encodes)* }).await;
        }
    }

    // Output: the last arm: decode the frame into the slots of its point's live locals
    // (in frame order) and go on at the point's block (the decoder reports a frame that
    // does not decode, and answers an inspection with the locals).
    pub(super) fn resume_arm(&self) -> TokenStream {
        let Expander { p, cfg, .. } = self;
        let Names {
            block,
            bytes,
            reader,
            inspect,
            stop,
            ..
        } = &self.n;
        let arms = cfg.points.iter().enumerate().map(|(pid, point)| {
            let decodes = cfg.frame(pid).into_iter().map(|b| {
                let binding = &cfg.bindings[b];
                let span = binding.ident.span();
                let s = located_slot(b, span);
                let c = codec_ident(b);
                let name = binding.name();
                quote_spanned!(span=> #reader.local(#c, &mut #s, #name);)
            });
            let id = Literal::u32_unsuffixed(pid as u32);
            let num = Literal::u32_unsuffixed(cfg.number(point.block));
            let o = outcome_type_ident(pid);
            quote!(#id => { #reader.outcome(#o); #(#decodes)* #num })
        });
        quote! {
            ::core::primitive::u32::MAX => {
                #block = #p::resume(&#stop, &mut #bytes, #inspect, |#reader| match #reader.point() {
                    #(#arms)*
                    _ => #reader.unknown_point(),
                })
                .await;
            }
        }
    }

    /// `Workflow::POINTS`: each point's id, label, line and saved locals.
    pub(super) fn points_info(&self) -> Vec<TokenStream> {
        let Expander { p, cfg, .. } = self;
        cfg.points
            .iter()
            .enumerate()
            .map(|(pid, point)| {
                let id = Literal::u32_unsuffixed(pid as u32);
                let label = &point.label;
                let line = Literal::u32_unsuffixed(point.line);
                let names = cfg.frame(pid).into_iter().map(|b| cfg.bindings[b].name());
                quote!(#p::PointInfo { id: #id, label: #label, line: #line, locals: &[#(#names),*] })
            })
            .collect()
    }
}
