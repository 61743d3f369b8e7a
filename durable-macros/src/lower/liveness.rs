//! Liveness: which bindings are live where each block starts, from the effects of each
//! piece of code (a whole assignment kills a local, it does not read it).

use std::collections::BTreeSet;

use super::ir::{BlockId, Cfg, Effects, RegionId, Tail};

type Set = BTreeSet<usize>;

/// What is known of the bindings at one place in a block, looking forward.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Flow {
    /// May be read later, here or after a jump.
    pub live: Set,
    /// May be read later in this block before it is assigned.
    pub read: Set,
    /// May be assigned whole later in this block.
    pub assigned: Set,
}

// Input: the CFG.
// Output: `live_in` for every block, by backward dataflow to a fixpoint.
pub(super) fn liveness(cfg: &mut Cfg) {
    let n = cfg.blocks.len();
    cfg.live_in = vec![Set::new(); n];
    loop {
        let mut changed = false;
        for b in (0..n).rev() {
            let live = region_flows(cfg, cfg.blocks[b].root)
                .into_iter()
                .next()
                .map(|f| f.live)
                .unwrap_or_default();
            if live != cfg.live_in[b] {
                cfg.live_in[b] = live;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// The flow before each piece of `r`'s code, and last, at its tail.
pub(super) fn region_flows(cfg: &Cfg, r: RegionId) -> Vec<Flow> {
    let region = &cfg.regions[r];
    let mut flow = tail_flow(cfg, r);
    let mut flows = vec![flow.clone()];
    for (_, fx) in region.code.iter().rev() {
        flow = through(cfg, fx, &flow);
        flows.push(flow.clone());
    }
    flows.reverse();
    flows
}

/// The flow at the start of region `r`.
fn start(cfg: &Cfg, r: RegionId) -> Flow {
    region_flows(cfg, r).into_iter().next().unwrap_or_default()
}

/// The flow before code with effects `fx`, given the flow after it.
fn through(cfg: &Cfg, fx: &Effects, after: &Flow) -> Flow {
    let gone = |set: &Set| -> Set {
        set.iter()
            .copied()
            .filter(|b| !fx.kills.contains(b) && !fx.declares.contains(b))
            .collect()
    };
    let mut live = gone(&after.live);
    for &g in &fx.jumps {
        live.extend(target_live(cfg, g));
    }
    live.extend(fx.reads.iter().copied());
    let mut read = gone(&after.read);
    read.extend(fx.reads.iter().copied());
    let mut assigned: Set = after
        .assigned
        .iter()
        .copied()
        .filter(|b| !fx.declares.contains(b))
        .collect();
    assigned.extend(fx.kills.iter().copied());
    Flow {
        live,
        read,
        assigned,
    }
}

fn target_live(cfg: &Cfg, g: usize) -> impl Iterator<Item = usize> + '_ {
    let target: BlockId = cfg.gotos[g].target;
    cfg.live_in[target].iter().copied()
}

/// The flow at `r`'s tail, before the tail's own expressions.
fn tail_flow(cfg: &Cfg, r: RegionId) -> Flow {
    let region = &cfg.regions[r];
    let minus = |mut f: Flow, binds: &[usize]| {
        for b in binds {
            f.live.remove(b);
            f.read.remove(b);
            f.assigned.remove(b);
        }
        f
    };
    let after = match &region.tail {
        Some(Tail::Goto(g)) => Flow {
            live: target_live(cfg, *g).collect(),
            ..Flow::default()
        },
        Some(Tail::If {
            binds,
            then_r,
            else_r,
            ..
        }) => union(minus(start(cfg, *then_r), binds), start(cfg, *else_r)),
        Some(Tail::Match { arms, .. }) => {
            let mut all = Flow::default();
            for arm in arms {
                let mut f = start(cfg, arm.region);
                // The guard reads after the pattern binds.
                f.live.extend(arm.fx.reads.iter().copied());
                f.read.extend(arm.fx.reads.iter().copied());
                all = union(all, minus(f, &arm.binds));
            }
            all
        }
        Some(Tail::Next {
            binds, some, none, ..
        }) => union(minus(start(cfg, *some), binds), start(cfg, *none)),
        Some(Tail::Finish(_)) | Some(Tail::Diverged) | None => Flow::default(),
    };
    through(cfg, &region.tail_fx, &after)
}

fn union(mut a: Flow, b: Flow) -> Flow {
    a.live.extend(b.live);
    a.read.extend(b.read);
    a.assigned.extend(b.assigned);
    a
}
