//! Places: where each local's value is at every step of each block (a Rust local, or its
//! slot), and so what the expansion emits to move it: takes and declarations where a
//! block starts or a scope that hid a local closes, parks where a local is hidden while
//! it is still needed, renamed pattern bindings, and the puts of each jump.
//!
//! A local can be named only while no other binding of its name hides it; a jump that
//! must save a hidden local cannot name it, so it is saved (parked) where it is hidden:
//! after the initializer of the `let` that hides it, or, for a pattern, at the start of
//! the arm whose binding is renamed for the purpose.

use std::collections::{BTreeMap, BTreeSet};

use super::ir::{Bring, Cfg, Code, Enter, GotoId, Places, RegionId, Tail};
use super::liveness::{region_flows, Flow};
use crate::ctxt::Ctxt;

// Input: the CFG with liveness.
// Output: `cfg.places`; errors for locals that must be saved where they cannot be named.
pub(super) fn places(cx: &Ctxt, cfg: &mut Cfg) {
    let mut places = Places {
        start: vec![Vec::new(); cfg.blocks.len()],
        puts: vec![Vec::new(); cfg.gotos.len()],
        ..Places::default()
    };
    let mut reported = BTreeSet::new();
    for b in cfg.emission_order() {
        let block = &cfg.blocks[b];
        let mut walk = Walk {
            cfg,
            cx,
            places: &mut places,
            reported: &mut reported,
        };
        let flows = region_flows(cfg, block.root);
        let mut state = State {
            scopes: block.start.clone(),
            local: BTreeSet::new(),
            unassigned: BTreeSet::new(),
            moved: BTreeMap::new(),
        };
        let mut start = Vec::new();
        for level in &block.start {
            let mut brings = Vec::new();
            for &x in level {
                if cfg.bindings[x].saveable() && state.visible(cfg, x) {
                    brings.extend(state.bring(x, &flows[0]));
                }
            }
            start.push(brings);
        }
        walk.places.start[b] = start;
        walk.region(block.root, state);
    }
    places.mut_marks = mut_marks(cfg);
    places.loose = loose(cfg, &places);
    places.elided = elided(cfg, &places);
    cfg.places = places;
}

/// Where the walk of one block is.
#[derive(Clone)]
struct State {
    /// The scopes open here, as the lowering had them.
    scopes: Vec<Vec<usize>>,
    /// Locals whose value is in a Rust local here (not in their slot).
    local: BTreeSet<usize>,
    /// Locals declared without their value (assigned before they are read), whose slot
    /// still holds it.
    unassigned: BTreeSet<usize>,
    /// Locals with fields moved out on this path: where (`(region, index, move)`).
    moved: BTreeMap<usize, Vec<(RegionId, usize, usize)>>,
}

impl State {
    /// Whether `x` can be named here: no later binding of its name hides it.
    fn visible(&self, cfg: &Cfg, x: usize) -> bool {
        let name = &cfg.bindings[x].ident;
        self.scopes
            .iter()
            .flatten()
            .rev()
            .find(|&&y| cfg.bindings[y].ident == *name)
            == Some(&x)
    }

    /// Brings `x` into the Rust scope where it becomes nameable: taken from its slot if it
    /// is read before it is assigned, declared if it is only assigned.
    fn bring(&mut self, x: usize, flow: &Flow) -> Option<Bring> {
        if flow.read.contains(&x) {
            self.local.insert(x);
            Some(Bring::Take(x))
        } else if flow.assigned.contains(&x) {
            self.unassigned.insert(x);
            Some(Bring::Declare(x))
        } else {
            None
        }
    }
}

struct Walk<'a> {
    cfg: &'a Cfg,
    cx: &'a Ctxt,
    places: &'a mut Places,
    reported: &'a mut BTreeSet<usize>,
}

impl Walk<'_> {
    fn region(&mut self, r: RegionId, mut state: State) {
        let cfg = self.cfg;
        let flows = region_flows(cfg, r);
        let region = &cfg.regions[r];
        for (i, (code, fx)) in region.code.iter().enumerate() {
            let after = &flows[i + 1];
            for &g in &fx.jumps {
                self.puts(g, &state);
            }
            for (k, mv) in fx.moves.iter().enumerate() {
                state.moved.entry(mv.binding).or_default().push((r, i, k));
            }
            for x in fx.kills.iter().chain(&fx.declares) {
                state.moved.remove(x);
            }
            match code {
                Code::Open => state.scopes.push(Vec::new()),
                Code::Close => {
                    let closed = state.scopes.pop().unwrap_or_default();
                    for y in &closed {
                        state.local.remove(y);
                        state.unassigned.remove(y);
                    }
                    let mut restores = Vec::new();
                    for y in closed {
                        if let Some(x) = cfg.bindings[y].hides {
                            if !state.local.contains(&x) && state.visible(cfg, x) {
                                restores.extend(state.bring(x, after));
                            }
                        }
                    }
                    if !restores.is_empty() {
                        self.places.restores.insert((r, i), restores);
                    }
                }
                _ => {
                    for &x in &fx.kills {
                        if state.unassigned.remove(&x) {
                            state.local.insert(x);
                        }
                    }
                    for &d in &fx.declares {
                        if let Some(h) = cfg.bindings[d].hides {
                            if state.local.contains(&h) && after.live.contains(&h) {
                                state.local.remove(&h);
                                self.places.parks.entry((r, i)).or_default().push(h);
                                self.saved_after_moves(h, None, &state);
                            }
                        }
                        if let Some(scope) = state.scopes.last_mut() {
                            scope.push(d);
                        }
                        state.local.insert(d);
                    }
                    if !matches!(code, Code::Let { .. }) && self.places.parks.contains_key(&(r, i))
                    {
                        // Only a `let` can hide a local; nothing else declares a name the
                        // user can reuse.
                        self.places.parks.remove(&(r, i));
                    }
                }
            }
        }
        for &g in &region.tail_fx.jumps {
            self.puts(g, &state);
        }
        match &region.tail {
            Some(Tail::Goto(g)) => self.puts(*g, &state),
            Some(Tail::If {
                binds,
                then_r,
                else_r,
                ..
            }) => {
                self.branch(*then_r, binds, false, state.clone());
                self.region(*else_r, state);
            }
            Some(Tail::Match { arms, .. }) => {
                for arm in arms {
                    self.branch(arm.region, &arm.binds, arm.guarded, state.clone());
                }
            }
            Some(Tail::Next {
                binds, some, none, ..
            }) => {
                self.branch(*some, binds, false, state.clone());
                self.region(*none, state);
            }
            Some(Tail::Finish(_)) | Some(Tail::Diverged) | None => {}
        }
    }

    // Input: a sub-region whose pattern declares `binds` (an arm, an `if let` branch, a
    // loop body).
    // Output: a binding that hides a local still needed is renamed, and the local parked
    // where the region starts; then the region walked.
    fn branch(&mut self, r: RegionId, binds: &[usize], guarded: bool, mut state: State) {
        let cfg = self.cfg;
        let live = region_flows(cfg, r)
            .into_iter()
            .next()
            .map(|f| f.live)
            .unwrap_or_default();
        let mut enter = Vec::new();
        for &d in binds {
            if let Some(h) = cfg.bindings[d].hides {
                if state.local.contains(&h) && live.contains(&h) {
                    if guarded {
                        self.shadowed(h, "in a `match` arm with a guard, whose pattern binds it before the guard runs");
                    }
                    state.local.remove(&h);
                    self.saved_after_moves(h, None, &state);
                    self.places.renamed.insert(d);
                    enter.push(Enter::Park(h));
                    enter.push(Enter::Rebind(d));
                }
            }
        }
        if !enter.is_empty() {
            self.places.enter.insert(r, enter);
        }
        state.scopes.push(binds.to_vec());
        state.local.extend(binds.iter().copied());
        self.region(r, state);
    }

    // Input: a jump and the state where it is.
    // Output: its puts: the locals live at its target whose value is here in a Rust
    // local; an error for one that is hidden there by a binding of verbatim code.
    fn puts(&mut self, g: GotoId, state: &State) {
        let cfg = self.cfg;
        let goto = &cfg.gotos[g];
        let puts: Vec<usize> = cfg.live_in[goto.target]
            .iter()
            .copied()
            .filter(|x| state.local.contains(x))
            .collect();
        for &x in &puts {
            let nameable = goto
                .visible
                .iter()
                .rev()
                .find(|&&v| cfg.bindings[v].ident == cfg.bindings[x].ident)
                == Some(&x);
            if !nameable {
                self.shadowed(x, "by a binding of the code around the jump");
            }
            self.saved_after_moves(x, Some(goto.target), state);
        }
        self.places.puts[g] = puts;
    }

    // Input: a local saved into its slot (by a jump to `target`, or parked), and the state.
    // Output: the moves out of its fields on this path recorded for checking (the point
    // named in the message: the target's, or the first that saves the local).
    fn saved_after_moves(&mut self, x: usize, target: Option<usize>, state: &State) {
        let cfg = self.cfg;
        let Some(moves) = state.moved.get(&x) else {
            return;
        };
        let point = target
            .and_then(|t| match cfg.blocks[t].kind {
                super::ir::BlockKind::Point(p) => Some(p),
                _ => None,
            })
            .or_else(|| (0..cfg.points.len()).find(|&p| cfg.frame(p).contains(&x)));
        if let Some(point) = point {
            for &at in moves {
                self.places.moved.entry(at).or_insert(point);
            }
        }
    }

    fn shadowed(&mut self, x: usize, how: &str) {
        if self.reported.insert(x) {
            let name = self.cfg.bindings[x].name();
            self.cx.error_spanned_by(
                &self.cfg.bindings[x].ident,
                format!("`{name}` must be saved across a durable point where another `{name}` shadows it ({how}); rename one of them"),
            );
        }
    }
}

// Input: the CFG and the puts decided.
// Output: the `let x;` statements whose block never touches what they declare (the
// blocks that assign those locals declare them again, with the same type).
fn elided(cfg: &Cfg, places: &Places) -> BTreeSet<(RegionId, usize)> {
    let mut touched = vec![BTreeSet::new(); cfg.blocks.len()];
    for region in &cfg.regions {
        let arms = match &region.tail {
            Some(Tail::Match { arms, .. }) => arms.iter().map(|a| &a.fx).collect(),
            _ => Vec::new(),
        };
        for fx in region
            .code
            .iter()
            .map(|(_, fx)| fx)
            .chain([&region.tail_fx])
            .chain(arms)
        {
            touched[region.block].extend(fx.reads.iter().chain(&fx.kills).chain(&fx.mutates));
        }
    }
    for (g, puts) in places.puts.iter().enumerate() {
        touched[cfg.gotos[g].from].extend(puts.iter().copied());
    }
    let mut elided = BTreeSet::new();
    for (r, region) in cfg.regions.iter().enumerate() {
        for (i, (code, fx)) in region.code.iter().enumerate() {
            // One binding: its type, if written, is kept for the blocks that declare it.
            if let (Code::Let { init: None, .. }, [d]) = (code, fx.declares.as_slice()) {
                if !touched[region.block].contains(d) {
                    elided.insert((r, i));
                }
            }
        }
    }
    elided
}

// Input: the CFG and the takes decided.
// Output: the takes whose local the block reads only through mentions in macro
// arguments.
fn loose(cfg: &Cfg, places: &Places) -> BTreeSet<(usize, usize)> {
    let mut read = vec![BTreeSet::new(); cfg.blocks.len()];
    let mut mentioned = vec![BTreeSet::new(); cfg.blocks.len()];
    for region in &cfg.regions {
        let arms = match &region.tail {
            Some(Tail::Match { arms, .. }) => arms.iter().map(|a| &a.fx).collect(),
            _ => Vec::new(),
        };
        let fxs = region
            .code
            .iter()
            .map(|(_, fx)| fx)
            .chain([&region.tail_fx])
            .chain(arms);
        for fx in fxs {
            read[region.block].extend(fx.reads.difference(&fx.mentions).copied());
            mentioned[region.block].extend(fx.mentions.iter().copied());
        }
    }
    let takes =
        places
            .start
            .iter()
            .enumerate()
            .flat_map(|(b, levels)| levels.iter().flatten().map(move |t| (b, *t)))
            .chain(places.restores.iter().flat_map(|(&(r, _), brings)| {
                brings.iter().map(move |t| (cfg.regions[r].block, *t))
            }));
    takes
        .filter_map(|(b, t)| match t {
            Bring::Take(x) if !read[b].contains(&x) && mentioned[b].contains(&x) => Some((b, x)),
            _ => None,
        })
        .collect()
}

// Input: the CFG.
// Output: the `mut` locals that only blocks other than the one declaring them mutate.
fn mut_marks(cfg: &Cfg) -> BTreeSet<usize> {
    let mut mutated_in: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); cfg.bindings.len()];
    for region in &cfg.regions {
        let fxs = region
            .code
            .iter()
            .map(|(_, fx)| fx)
            .chain(std::iter::once(&region.tail_fx));
        for fx in fxs {
            for &x in &fx.mutates {
                mutated_in[x].insert(region.block);
            }
        }
        if let Some(Tail::Match { arms, .. }) = &region.tail {
            for arm in arms {
                for &x in &arm.fx.mutates {
                    mutated_in[x].insert(region.block);
                }
            }
        }
    }
    cfg.declared_in
        .iter()
        .filter(|(&x, &home)| {
            cfg.bindings[x].kind == super::ir::BindingKind::User
                && cfg.bindings[x].mutable
                && !mutated_in[x].contains(&home)
                && mutated_in[x].iter().any(|&b| b != home)
        })
        .map(|(&x, _)| x)
        .collect()
}
