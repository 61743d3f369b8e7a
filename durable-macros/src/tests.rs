//! Unit tests of lowering, liveness and expansion on parsed fns.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::Workflow;
use crate::ctxt::Ctxt;
use crate::lower::{self, Cfg};

fn lowered(item: TokenStream) -> (Cfg, Result<(), String>) {
    let cx = Ctxt::new();
    let wf = Workflow::from_item(syn::parse2(item).expect("test input parses"));
    crate::check::check_signature(&cx, &wf);
    crate::check::check_body(&cx, &wf);
    let cfg = lower::lower(&cx, &wf, &quote!(::durable_core));
    let result = cx.check().map_err(|e| {
        e.into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    });
    (cfg, result)
}

fn cfg(item: TokenStream) -> Cfg {
    let (cfg, result) = lowered(item);
    if let Err(e) = result {
        panic!("unexpected errors: {e}");
    }
    cfg
}

fn errors(item: TokenStream) -> String {
    match lowered(item).1 {
        Ok(()) => panic!("expected errors"),
        Err(e) => e,
    }
}

/// The locals saved at each point, by name.
fn frames(cfg: &Cfg) -> Vec<Vec<String>> {
    (0..cfg.points.len())
        .map(|p| cfg.frame(p).into_iter().map(|b| cfg.bindings[b].name()).collect())
        .collect()
}

/// The expansion, formatted by rustfmt when it is available (for reading in failures).
pub fn expansion(args: TokenStream, item: TokenStream) -> String {
    let text = crate::expand::durable(args, item).to_string();
    let formatted = std::process::Command::new("rustfmt")
        .args(["--edition", "2021"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take()?.write_all(text.as_bytes()).ok()?;
            let out = child.wait_with_output().ok()?;
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        });
    formatted.unwrap_or(text)
}

#[test]
fn show_expansion() {
    if let Ok(path) = std::env::var("DURABLE_SHOW") {
        let src = std::fs::read_to_string(path).unwrap();
        let item: TokenStream = src.parse().unwrap();
        println!("{}", expansion(TokenStream::new(), item));
    }
}

#[test]
fn live_locals_at_each_point() {
    let cfg = cfg(quote! {
        async fn order(ctx: Ctx, order: Order) -> Result<Receipt, E> {
            let inventory = ctx.step("reserve", || reserve(&order.items)).await?;
            let payment = ctx.step("charge", || charge(order.amount)).await?;
            Ok(Receipt { order_id: order.id, payment, inventory })
        }
    });
    assert_eq!(frames(&cfg), vec![vec!["order"], vec!["order", "inventory"]]);
}
