//! Liveness: which bindings are live where each block starts, and the locals that
//! cannot cross a block boundary.

use std::collections::BTreeSet;

use proc_macro2::Span;

use super::{BindingId, BindingKind, BlockId, Cfg};
use crate::ctxt::Ctxt;

// Input: the CFG.
// Output: `live_in` for every block: standard backward dataflow on binding ids
// (`live_in(B) = (uses(B) ∪ ⋃ live_in(successors)) − defs(B)`), saveable bindings only.
pub(super) fn liveness(cfg: &mut Cfg) {
    let n = cfg.blocks.len();
    let succ: Vec<Vec<BlockId>> = cfg
        .blocks
        .iter()
        .map(|b| b.gotos.iter().map(|&g| cfg.gotos[g].target).collect())
        .collect();
    let mut live: Vec<BTreeSet<BindingId>> = vec![BTreeSet::new(); n];
    let mut changed = true;
    while changed {
        changed = false;
        for b in (0..n).rev() {
            let block = &cfg.blocks[b];
            let mut set: BTreeSet<BindingId> = block
                .uses
                .iter()
                .copied()
                .filter(|&u| cfg.bindings[u].saveable())
                .collect();
            for &s in &succ[b] {
                set.extend(live[s].iter().copied());
            }
            set.retain(|x| !block.defs.contains(x));
            if set != live[b] {
                live[b] = set;
                changed = true;
            }
        }
    }
    cfg.live_in = live;
}

// Input: the CFG with liveness.
// Output: errors for locals that must cross a boundary but cannot: declared without a
// value, or shadowed where a jump has to save them.
pub(super) fn check_slots(cx: &Ctxt, cfg: &Cfg) {
    let mut reported = BTreeSet::new();
    for set in &cfg.live_in {
        for &b in set {
            let binding = &cfg.bindings[b];
            if binding.kind == BindingKind::Uninit && reported.insert(b) {
                let name = binding.name();
                cx.error_spanned_by(
                    &binding.ident,
                    format!("give `{name}` an initial value: locals that cross a durable point must be initialised where they are declared"),
                );
            }
        }
    }
    for g in 0..cfg.gotos.len() {
        for b in cfg.puts(g) {
            let binding = &cfg.bindings[b];
            let nameable = cfg.gotos[g]
                .visible
                .iter()
                .rev()
                .find(|&&v| cfg.bindings[v].ident == binding.ident)
                == Some(&b);
            if !nameable && reported.insert(b) {
                let name = binding.name();
                cx.error_spanned_by(
                    &binding.ident,
                    format!("`{name}` must be saved across a durable point where another `{name}` shadows it; rename one of them"),
                );
            }
        }
    }
    if let Some(entry) = cfg.live_in.first() {
        if !entry.is_empty() {
            let names: Vec<String> = entry.iter().map(|&b| cfg.bindings[b].name()).collect();
            cx.error_at(
                Span::call_site(),
                format!("durable: internal error: locals {names:?} are used before they are declared; please report this bug"),
            );
        }
    }
}
