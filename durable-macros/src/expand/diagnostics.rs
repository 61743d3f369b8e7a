//! Check traits: each value the workflow stores (its input, its output, every local
//! saved in a frame) gets a trait of its own whose `#[diagnostic::on_unimplemented]`
//! message names that value, checked with spans on the user's tokens, so a type that
//! cannot be stored is reported once, where the user wrote it.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use super::machine::codec_ident;
use super::Expander;
use crate::lower::{BindingId, BindingKind, FieldMove, PointId};

impl Expander<'_> {
    /// The check trait of parameter `i`: named after the parameter, numbered when that
    /// is not enough to tell it from the others (`_`, or patterns that read alike).
    fn input_check(&self, i: usize) -> String {
        let workflow = camel(&self.wf.ident.to_string());
        let names: Vec<String> = self
            .wf
            .params
            .iter()
            .map(|p| camel(&param_name(p)))
            .collect();
        let name = &names[i];
        if name.is_empty() || names.iter().filter(|n| *n == name).count() > 1 {
            format!("StorableInput{name}{i}Of{workflow}")
        } else {
            format!("StorableInput{name}Of{workflow}")
        }
    }

    /// Where errors about the workflow input point: the parameter's type, or the whole
    /// parameter list when there are several (the input is their tuple).
    pub(super) fn input_span(&self) -> Span {
        match self.wf.params.as_slice() {
            [one] => syn::spanned::Spanned::span(&one.ty),
            _ => self.wf.item.sig.paren_token.span.join(),
        }
    }

    /// `tokens` located at the output type, so that an output that cannot be stored is
    /// reported once, there.
    pub(super) fn at_output(&self, tokens: TokenStream) -> TokenStream {
        respanned(tokens, syn::spanned::Spanned::span(&self.wf.output))
    }

    // Input: the parameters' and output's types.
    // Output: check traits, one per parameter and one for the output, and the
    // `Workflow::Input` and `Output` types written through them
    // (`<DurableFrame as StorableInputOrderOfShip<Order>>::Stored`, which is `Order`), so that
    // a type that cannot be stored is reported once, on its tokens, with a message that
    // names the parameter, instead of by the `Workflow` trait's bounds.
    pub(super) fn stored_checks(&self) -> (TokenStream, TokenStream, TokenStream) {
        let p = &self.p;
        let workflow = camel(&self.wf.ident.to_string());
        let mut items = TokenStream::new();
        let codec = Ident::new("__durable_codec", Span::mixed_site());
        let mut stored = |ty: &syn::Type,
                          what: &str,
                          check: String,
                          message: String,
                          label: &str| {
            let span = syn::spanned::Spanned::span(ty);
            let check_at = Ident::new(&check, Span::mixed_site().located_at(span));
            let check = Ident::new(&check, Span::mixed_site());
            let notes = [
                format!("{what} must implement `Serialize + DeserializeOwned + Send + 'static`"),
                "derive `serde::Serialize` and `serde::Deserialize` for your types; pass owned data, not borrows, connections or other handles".to_owned(),
            ];
            items.extend(quote! {
                #[diagnostic::on_unimplemented(
                    message = #message,
                    label = #label,
                    #(note = #notes,)*
                )]
                // `pub`: named in the `Workflow` impl's associated types.
                pub trait #check<T> {
                    type Stored;
                    fn #codec(_: &#p::Slot<T>) -> #p::SlotCodec<T>;
                }
                #[diagnostic::do_not_recommend]
                impl<T: #p::Saveable> #check<T> for #p::DurableFrame {
                    type Stored = T;
                    fn #codec(_: &#p::Slot<T>) -> #p::SlotCodec<T> {
                        #p::SlotCodec::new()
                    }
                }
            });
            let frame = respanned(quote!(#p::DurableFrame), span);
            quote_spanned!(span=> <#frame as #check_at<#ty>>::Stored)
        };
        let params: Vec<TokenStream> = self
            .wf
            .params
            .iter()
            .enumerate()
            .map(|(i, param)| {
                let name = param_name(param);
                stored(
                    &param.ty,
                    "workflow inputs are stored with the execution, so they",
                    self.input_check(i),
                    format!(
                        "the workflow input `{}` is stored with the execution, but `{{T}}` cannot be serialized",
                        escape(&name)
                    ),
                    "stored with the execution when it starts",
                )
            })
            .collect();
        let input = match params.len() {
            1 => params.into_iter().collect(),
            _ => {
                let mut group = proc_macro2::Group::new(
                    proc_macro2::Delimiter::Parenthesis,
                    quote!(#(#params,)*),
                );
                group.set_span(self.input_span());
                quote::ToTokens::into_token_stream(group)
            }
        };
        let output = stored(
            &self.wf.output,
            "the workflow output is stored with the execution, so it",
            format!("StorableOutputOf{workflow}"),
            "the workflow output is stored with the execution, but `{T}` cannot be serialized"
                .to_owned(),
            "stored with the execution when it finishes",
        );
        (items, input, output)
    }

    // Input: every local saved in some frame, with the first durable point it crosses.
    // Output: per local, `let __durable_cN = ..;`: the local's codec, obtained through a
    // check trait whose `on_unimplemented` message names the local, the point and its
    // line, spanned on the local. The check's blanket impl is `do_not_recommend`, so a
    // type that fails any of the bounds is reported once, as "`conn` is held across the
    // durable point `ctx.sleep(..)` at line 14, but `PgConnection` cannot be
    // serialized", and the frame code that uses the codec requires nothing more.
    pub(super) fn slot_checks(&self) -> Vec<TokenStream> {
        let cfg = self.cfg;
        let mut first: Vec<(BindingId, PointId)> = Vec::new();
        for pid in 0..cfg.points.len() {
            for b in cfg.frame(pid) {
                if !first.iter().any(|&(x, _)| x == b) {
                    first.push((b, pid));
                }
            }
        }
        first.sort_unstable();
        // Unique in the crate, so that rustc names the trait without a path.
        let workflow = camel(&self.wf.ident.to_string());
        let names: Vec<String> = first
            .iter()
            .map(|&(b, _)| {
                let binding = &cfg.bindings[b];
                let items = if binding.kind == BindingKind::Iter {
                    "Items"
                } else {
                    ""
                };
                format!("Saveable{}{items}In{workflow}", camel(&binding.name()))
            })
            .collect();
        first
            .iter()
            .zip(&names)
            .map(|(&(b, pid), name)| match cfg.bindings[b].param {
                Some(param) => self.param_codec(b, param),
                None if names.iter().filter(|n| *n == name).count() > 1 => {
                    self.local_codec(b, pid, &format!("{name}{b}"))
                }
                None => self.local_codec(b, pid, name),
            })
            .collect()
    }

    // Input: a parameter's binding, saved in a frame.
    // Output: its codec from the input's check, at the input's location: its type is
    // the input's, so an input that cannot be saved is reported once (rustc drops the
    // identical second diagnostic).
    fn param_codec(&self, b: BindingId, param: usize) -> TokenStream {
        let p = &self.p;
        let span = self.input_span();
        let check = Ident::new(
            &self.input_check(param),
            Span::mixed_site().located_at(span),
        );
        let codec = Ident::new("__durable_codec", Span::mixed_site().located_at(span));
        let frame = respanned(quote!(#p::DurableFrame), span);
        let s = located_slot(b, span);
        let c = codec_ident(b);
        quote_spanned!(span=> let #c = <#frame as #check<_>>::#codec(&#s);)
    }

    // Input: a local binding saved in a frame, the first point it crosses, the name of
    // its check trait.
    // Output: `let __durable_cN = { trait; impl; <DurableFrame as Trait<_>>::codec(&slot) };`.
    // A loop's iterator is checked on its items (`LoopIter`), at the iterable.
    fn local_codec(&self, b: BindingId, pid: PointId, trait_name: &str) -> TokenStream {
        let Expander { p, cfg, .. } = self;
        let binding = &cfg.bindings[b];
        let point = &cfg.points[pid];
        let span = binding.at.unwrap_or_else(|| binding.ident.span());
        let at = format!(
            "the durable point `{}` at line {}",
            escape(&point.label),
            point.line
        );
        let name = escape(&binding.name());
        let codec = Ident::new("__durable_codec", Span::mixed_site());
        let used_by_op = point.op_reads.contains(&b);
        let (message, label, notes, method, body) = if binding.kind == BindingKind::Iter {
            (
                format!(
                    "the `{name}` loop keeps its remaining items across {at}, but its items, `{{T}}`, cannot be serialized"
                ),
                "the items this loop has not reached yet are saved in the frame",
                &[
                    "a `for` loop with a durable point in its body saves its remaining items, so they must implement `Serialize + DeserializeOwned + Send + 'static`",
                    "a loop over borrowed items (`for x in &v`, `v.iter()`) cannot cross a durable point: loop over owned items (`for x in v.clone()`) or over indices (`for i in 0..v.len()`)",
                ][..],
                quote!(fn #codec<It: #p::LoopIter<Item = T>>(_: &#p::Slot<It>) -> #p::SlotCodec<It>),
                quote!(<It as #p::LoopIter>::codec()),
            )
        } else if used_by_op {
            (
                format!(
                    "`{name}` is used by the durable operation `{}` at line {}, so it is saved in the frame, but `{{T}}` cannot be serialized",
                    escape(&point.label),
                    point.line
                ),
                "captured by the operation, which runs again when the execution resumes",
                &[
                    "a durable operation (its step body, its arguments) runs again when a pending point resumes after a restart, so the locals it uses are saved with the point and must implement `Serialize + DeserializeOwned + Send + 'static`",
                    "own the value before the point (`.clone()`, `.to_owned()`), or borrow inside the step body from a local that can be saved: `ctx.step(.., || f(&order.items[0].sku))`",
                ][..],
                quote!(fn #codec(_: &#p::Slot<T>) -> #p::SlotCodec<T>),
                quote!(#p::SlotCodec::new()),
            )
        } else if binding.kind == BindingKind::Temp {
            (
                format!("{name} is evaluated before {at} in the same expression, so it is saved in the frame, but `{{T}}` cannot be serialized"),
                "evaluated before the durable point, so it is saved in the frame",
                &[
                    "the operands of an expression evaluated before a durable point in it are saved across the point, so they must implement `Serialize + DeserializeOwned + Send + 'static`",
                    "evaluate this operand after the point (in a statement of its own after `let value = ctx.step(..).await;`), or make it an owned value",
                ][..],
                quote!(fn #codec(_: &#p::Slot<T>) -> #p::SlotCodec<T>),
                quote!(#p::SlotCodec::new()),
            )
        } else {
            (
                format!("`{name}` is held across {at}, but `{{T}}` cannot be serialized"),
                "used after the durable point, so it is saved in the frame",
                &[
                    "a local used after a durable point is saved in the frame, so its type must implement `Serialize + DeserializeOwned + Send + 'static`",
                    "a borrow (`&T`, a lock guard, an iterator over a borrowed collection) cannot be saved: clone or own the data before the point (`.clone()`, `.to_owned()`, `.collect::<Vec<_>>()`), or end the borrow before it",
                    "for your own types, derive `serde::Serialize` and `serde::Deserialize`; connections, files and other handles cannot be saved: open them again after the point",
                ][..],
                quote!(fn #codec(_: &#p::Slot<T>) -> #p::SlotCodec<T>),
                quote!(#p::SlotCodec::new()),
            )
        };
        let check = Ident::new(trait_name, Span::mixed_site());
        // The local's type is the trait's parameter, not its `Self`: with a borrowed
        // local as `Self`, rustc replaces the message by a suggestion to dereference it.
        let check_at = Ident::new(trait_name, Span::mixed_site().located_at(span));
        let codec_at = Ident::new("__durable_codec", Span::mixed_site().located_at(span));
        let frame = respanned(quote!(#p::DurableFrame), span);
        let s = located_slot(b, span);
        let call = quote_spanned!(span=> <#frame as #check_at<_>>::#codec_at(&#s));
        let c = codec_ident(b);
        quote! {
            let #c = {
                #[diagnostic::on_unimplemented(
                    message = #message,
                    label = #label,
                    #(note = #notes,)*
                )]
                trait #check<T> {
                    #method;
                }
                #[diagnostic::do_not_recommend]
                impl<T: #p::Saveable> #check<T> for #p::DurableFrame {
                    #method {
                        #body
                    }
                }
                #call
            };
        }
    }
}

impl Expander<'_> {
    // Input: a field moved out of a local that a point saves afterwards.
    // Output: a check, before the move, that the field is `Copy` (then nothing is moved
    // out), whose message otherwise says to destructure the local first: rustc's own
    // error would be a partial move, with no advice.
    pub(super) fn moved_check(&self, mv: &FieldMove, pid: PointId) -> TokenStream {
        let p = &self.p;
        let binding = &self.cfg.bindings[mv.binding];
        let point = &self.cfg.points[pid];
        let name = escape(&binding.name());
        let place = mv.place.to_string().replace(" . ", ".").replace(' ', "");
        let span = mv
            .place
            .clone()
            .into_iter()
            .next()
            .map_or_else(Span::call_site, |t| t.span());
        let message = format!(
            "`{}` is moved out of `{name}`, which is saved across the durable point `{}` at line {}, but a value moved out of in part cannot be saved",
            escape(&place),
            escape(&point.label),
            point.line
        );
        let field = escape(place.rsplit('.').next().unwrap_or(&place));
        let notes = [
            format!("destructure `{name}` first and keep the parts you need after the point: `let Struct {{{{ {field}, .. }}}} = {name};`"),
            format!("or leave `{name}` whole: clone the field (`{}.clone()`) or borrow it", escape(&place)),
        ];
        let workflow = camel(&self.wf.ident.to_string());
        let check = Ident::new(
            &format!("MovedOutOf{}In{workflow}", camel(&binding.name())),
            Span::mixed_site(),
        );
        let check_at = Ident::new(&check.to_string(), Span::mixed_site().located_at(span));
        let frame = respanned(quote!(#p::DurableFrame), span);
        let place = &mv.place;
        let call = quote_spanned!(span=> <#frame as #check_at<_>>::moved(&#place));
        quote! {
            {
                #[diagnostic::on_unimplemented(
                    message = #message,
                    label = "moved out here",
                    #(note = #notes,)*
                )]
                trait #check<T: ?::core::marker::Sized> {
                    fn moved(_: &T);
                }
                #[diagnostic::do_not_recommend]
                impl<T: ::core::marker::Copy> #check<T> for #p::DurableFrame {
                    fn moved(_: &T) {}
                }
                #call;
            }
        }
    }
}

/// A parameter's name as the user reads it: `order`, `(a, b)`.
fn param_name(param: &crate::ast::Param) -> String {
    let name = match &param.pat {
        syn::Pat::Ident(pi) => pi.ident.to_string(),
        pat => quote!(#pat).to_string().replace(" ,", ","),
    };
    name.strip_prefix("r#").unwrap_or(&name).to_owned()
}

/// `tokens` with every span set to `span`: for paths that must resolve the same from
/// anywhere (absolute, or the user's `crate = ..`) and that errors point at.
pub(super) fn respanned(tokens: TokenStream, span: Span) -> TokenStream {
    use proc_macro2::{Group, TokenTree};
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) => {
                let mut ng = Group::new(g.delimiter(), respanned(g.stream(), span));
                ng.set_span(span);
                TokenTree::Group(ng)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// `holds_connection` → `HoldsConnection`, `for (a, b)` → `ForAB`.
fn camel(text: &str) -> String {
    let text = text.strip_prefix("r#").unwrap_or(text);
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// Text for a `#[diagnostic::on_unimplemented]` format string, braces escaped.
fn escape(text: &str) -> String {
    text.replace('{', "{{").replace('}', "}}")
}

/// Binding `b`'s slot, located at `span` for the errors that point there.
pub(super) fn located_slot(b: BindingId, span: Span) -> syn::Ident {
    format_ident!(
        "__durable_s{}",
        b,
        span = Span::mixed_site().located_at(span)
    )
}
