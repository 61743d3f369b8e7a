//! The lowered workflow: what `lower` hands `expand`. Plain data (blocks, regions, jumps,
//! points, bindings and their liveness) with the user's code held as [`Frag`]s; it names no
//! runtime path and holds no placeholder tokens, so the expansion alone decides how each
//! construct is spelled.

use std::collections::BTreeSet;

use proc_macro2::{Delimiter, Span, TokenStream};
use syn::Ident;

pub type BlockId = usize;
pub type BindingId = usize;
pub type RegionId = usize;
pub type GotoId = usize;
pub type PointId = usize;

/// What a binding is, which decides whether it can live in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    /// A user's local with a value where it is declared.
    User,
    /// A user's `let x;`: may not cross a block boundary.
    Uninit,
    /// The context parameter: never saved, re-bound in every block that names it.
    Ctx,
    /// The saveable iterator of a lowered `for` loop.
    Iter,
    /// The destination of an `if`/`match`/`loop`/block used as a value: it only ever
    /// lives in its slot, written just before a jump and taken just after it.
    Dest,
    /// A binding inside a statement that is kept verbatim: never crosses a boundary.
    Internal,
}

/// One binding.
#[derive(Clone, Debug)]
pub struct Binding {
    /// The identifier emitted for it (the user's own for user locals).
    pub ident: Ident,
    /// The kind.
    pub kind: BindingKind,
    /// The name shown for a generated binding (`for i` for a loop's iterator).
    pub label: Option<String>,
    /// Where errors about a generated binding point (a loop's iterable), with the
    /// user's hygiene, so rustc shows the user's code rather than the expansion.
    pub at: Option<Span>,
    /// The index of the workflow parameter this binding is (`order` in `order: Order`):
    /// its type is checked as the workflow input.
    pub param: Option<usize>,
}

impl Binding {
    /// Its name as the user reads it (in frames and messages).
    pub fn name(&self) -> String {
        if let Some(label) = &self.label {
            return label.clone();
        }
        let s = self.ident.to_string();
        s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
    }

    pub(super) fn saveable(&self) -> bool {
        matches!(
            self.kind,
            BindingKind::User | BindingKind::Uninit | BindingKind::Iter
        )
    }
}

/// What starts a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Block 0: decodes the input.
    Entry,
    /// A durable point's block: the resume target of that point.
    Point(PointId),
    /// A join, a loop header or a loop exit.
    Plain,
}

/// A basic block of the state machine.
pub struct Block {
    /// What starts it.
    pub kind: BlockKind,
    /// Its code.
    pub root: RegionId,
    /// The scopes open where it starts, outermost first, each with the bindings
    /// declared in it by then.
    pub start: Vec<Vec<BindingId>>,
    /// Start order: the emitted block number. `None`: never started (unreachable).
    pub seq: Option<u32>,
    /// Bindings its code mentions.
    pub uses: BTreeSet<BindingId>,
    /// Bindings its code declares.
    pub defs: BTreeSet<BindingId>,
    /// Its jumps.
    pub gotos: Vec<GotoId>,
    /// Whether it names the context parameter.
    pub mentions_ctx: bool,
}

/// A straight-line run of code inside a block, ending in a tail.
pub struct Region {
    /// The block it belongs to.
    pub block: BlockId,
    /// Its code, in order.
    pub code: Vec<Code>,
    /// How it ends. `None` only while it is being built.
    pub tail: Option<Tail>,
}

/// One piece of region code.
pub enum Code {
    /// A statement of the user's, kept as written except where it leaves the machine.
    Stmt(Frag),
    /// Puts a value into a destination binding's slot.
    Put(BindingId, Frag),
    /// Opens a lexical scope.
    Open,
    /// Closes the innermost open scope.
    Close,
    /// Block 0: decode the input and bind the parameters.
    Input,
    /// `ctx.op(..).await;` as a statement: the outcome is dropped where the user can see
    /// an unused `#[must_use]` outcome.
    Discard(PointId),
    /// A lowered `for` loop's iterable made into its saveable iterator `iter`.
    LoopIter { iter: BindingId, iterable: Frag },
    /// A place control never reaches (the exit of a loop no `break` leaves).
    Unreachable,
}

/// How a region ends.
pub enum Tail {
    /// Jump to a block.
    Goto(GotoId),
    /// Branch; both regions belong to the same block.
    If {
        cond: Frag,
        then_r: RegionId,
        else_r: RegionId,
    },
    /// Branch on patterns (guards included in the patterns).
    Match {
        scrut: Frag,
        arms: Vec<(Frag, RegionId)>,
    },
    /// The next item of a lowered `for` loop's iterator, bound to `pat` in `some`, or
    /// `none` when there is none left.
    Next {
        iter: BindingId,
        pat: Frag,
        some: RegionId,
        none: RegionId,
    },
    /// Leave the machine with the workflow's value.
    Finish(Frag),
    /// The code before always diverges.
    Diverged,
}

/// A jump from one block to another.
pub struct Goto {
    /// The block it leaves.
    pub from: BlockId,
    /// The block it enters.
    pub target: BlockId,
    /// Every binding in scope where it is, outer to inner: only the last of each name
    /// can be named there.
    pub visible: Vec<BindingId>,
    /// The loop or block value it writes (a `break` with a value).
    pub dest: Option<BindingId>,
    /// That value.
    pub value: Option<Frag>,
}

/// A durable point.
pub struct Point {
    /// Its block.
    pub block: BlockId,
    /// The operation (the expression before `.await`).
    pub op: Frag,
    /// The `.await`.
    pub await_span: Span,
    /// The first token of the awaited expression (`ctx`): with `await_span`, where the
    /// user's whole `ctx.op(..).await` is.
    pub start_span: Span,
    /// `ctx.step("charge", ..)`.
    pub label: String,
    /// Source line of the `.await`.
    pub line: u32,
}

/// User code as the machine runs it: the user's tokens, with the places where it leaves
/// the machine, jumps or reads a lowered value as structured pieces.
#[derive(Clone, Debug, Default)]
pub struct Frag(pub Vec<Piece>);

/// One piece of a [`Frag`].
#[derive(Clone, Debug)]
pub enum Piece {
    /// Tokens emitted as they are.
    Tokens(TokenStream),
    /// A delimited group whose contents hold pieces other than tokens.
    Group(Delimiter, Span, Frag),
    /// A `break`/`continue` that leaves lowered code: the jump.
    Jump(GotoId),
    /// The value of a destination binding, taken from its slot.
    Take(BindingId),
    /// The outcome of a point (whose block this is): recorded, or obtained by running
    /// the operation.
    Outcome(PointId),
    /// A value never produced (a construct that never completes normally).
    Unreachable,
}

impl Frag {
    /// A fragment of plain tokens.
    pub fn tokens(tokens: TokenStream) -> Self {
        Frag(vec![Piece::Tokens(tokens)])
    }
}

/// The lowered workflow.
#[derive(Default)]
pub struct Cfg {
    pub blocks: Vec<Block>,
    pub regions: Vec<Region>,
    pub bindings: Vec<Binding>,
    pub points: Vec<Point>,
    pub gotos: Vec<Goto>,
    /// Items declared in the lowered body, hoisted before the machine loop.
    pub items: Vec<syn::Item>,
    /// Destinations that are written somewhere (only those get a slot).
    pub written: BTreeSet<BindingId>,
    /// Bindings live at the start of each block (saveable bindings only).
    pub live_in: Vec<BTreeSet<BindingId>>,
}

impl Cfg {
    /// Bindings a block takes from their slots where it starts.
    pub fn taken(&self, b: BlockId) -> impl Iterator<Item = BindingId> + '_ {
        self.live_in[b].intersection(&self.blocks[b].uses).copied()
    }

    /// Bindings a jump puts into their slots.
    pub fn puts(&self, g: GotoId) -> Vec<BindingId> {
        let goto = &self.gotos[g];
        let from = &self.blocks[goto.from];
        self.live_in[goto.target]
            .iter()
            .copied()
            .filter(|b| {
                from.defs.contains(b)
                    || (from.uses.contains(b) && self.live_in[goto.from].contains(b))
            })
            .collect()
    }

    /// The locals saved at a point, in frame order.
    pub fn frame(&self, p: PointId) -> Vec<BindingId> {
        self.live_in[self.points[p].block].iter().copied().collect()
    }

    /// Every binding that needs a slot, in declaration order.
    pub fn slots(&self) -> BTreeSet<BindingId> {
        let mut all: BTreeSet<BindingId> = self.live_in.iter().flatten().copied().collect();
        all.extend(self.written.iter().copied());
        all
    }

    /// Blocks in emission order (start order); unstarted blocks are left out.
    pub fn emission_order(&self) -> Vec<BlockId> {
        let mut order: Vec<BlockId> = (0..self.blocks.len())
            .filter(|&b| self.blocks[b].seq.is_some())
            .collect();
        order.sort_by_key(|&b| self.blocks[b].seq);
        order
    }

    /// The emitted number of a block.
    pub fn number(&self, b: BlockId) -> u32 {
        self.blocks[b].seq.unwrap_or(u32::MAX - 1)
    }
}
