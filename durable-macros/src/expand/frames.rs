//! Frames: what a point encodes when it is entered (the locals live there, through
//! their codecs), how a frame is decoded back into the slots to resume or to inspect an
//! execution, and what the engine shows of each point.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};

use super::diagnostics::located_slot;
use super::machine::{codec_ident, Names};
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
            ..
        } = &self.n;
        let encodes = cfg.frame(pid).into_iter().map(|b| {
            let binding = &cfg.bindings[b];
            let span = binding.ident.span();
            let s = located_slot(b, span);
            let c = codec_ident(b);
            let name = binding.name();
            quote_spanned!(span=> #c.encode(#writer, &#s, #name)?;)
        });
        let id = Literal::u32_unsuffixed(pid as u32);
        quote! {
            let #entered = #p::enter(&#ctx, #id, |#writer| {
                #(#encodes)*
                ::core::result::Result::Ok(())
            })?;
        }
    }

    // Output: the last arm: decode the frame into the slots of its point's live
    // locals (in frame order) and jump to the point's block; when inspecting, return
    // the decoded locals as JSON instead of jumping.
    pub(super) fn resume_arm(&self) -> TokenStream {
        let Expander { p, cfg, .. } = self;
        let Names {
            block,
            bytes,
            reader,
            frame,
            other,
            inspect,
            recorded: b,
            ..
        } = &self.n;
        let arms = cfg.points.iter().enumerate().map(|(pid, point)| {
            let decodes = cfg.frame(pid).into_iter().map(|b| {
                let binding = &cfg.bindings[b];
                let span = binding.ident.span();
                let s = located_slot(b, span);
                let c = codec_ident(b);
                let name = binding.name();
                quote_spanned!(span=> #c.decode(&mut #reader, &mut #s, #name)?;)
            });
            let jsons = cfg.frame(pid).into_iter().map(|b| {
                let binding = &cfg.bindings[b];
                let s = located_slot(b, binding.ident.span());
                let c = codec_ident(b);
                let name = binding.name();
                quote!((#name, #c.json(&#s, #name)?))
            });
            let id = Literal::u32_unsuffixed(pid as u32);
            let num = Literal::u32_unsuffixed(cfg.number(point.block));
            quote! {
                #id => {
                    #(#decodes)*
                    #p::frame_done(#reader)?;
                    if #inspect {
                        return ::core::result::Result::Err(#p::Interrupt::Inspected(
                            ::std::vec![#(#jsons),*],
                        ));
                    }
                    #block = #num;
                }
            }
        });
        quote! {
            ::core::primitive::u32::MAX => {
                let #frame = match ::core::option::Option::take(&mut #bytes) {
                    ::core::option::Option::Some(#b) => #b,
                    ::core::option::Option::None => ::core::unreachable!("durable: internal error: no frame"),
                };
                let mut #reader = #p::frame_reader(&#frame)?;
                match #reader.point() {
                    #(#arms)*
                    #other => return ::core::result::Result::Err(#p::unknown_point(#other)),
                }
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
