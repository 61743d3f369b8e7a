//! The lowered workflow: what `lower` hands `expand`. Plain data (blocks, regions, jumps,
//! points, bindings, their liveness and where each one's value is) with the user's code
//! held as [`Frag`]s; it names no runtime path and holds no placeholder tokens, so the
//! expansion alone decides how each construct is spelled.

use std::collections::{BTreeMap, BTreeSet};

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
    /// A user's local.
    User,
    /// The context parameter: never saved, re-bound in every block that names it.
    Ctx,
    /// The saveable iterator of a lowered `for` loop.
    Iter,
    /// An operand evaluated before a durable point later in the same expression, kept
    /// until the expression is complete.
    Temp,
    /// The destination of an `if`/`match`/`loop`/block used as a value: it only ever
    /// lives in its slot, written just before a jump and taken just after it.
    Dest,
    /// A binding inside a statement that is kept verbatim: never crosses a boundary.
    Internal,
}

/// One binding.
#[derive(Clone)]
pub struct Binding {
    /// The identifier emitted for it (the user's own for user locals).
    pub ident: Ident,
    /// The kind.
    pub kind: BindingKind,
    /// The name shown for a generated binding (`for i` for a loop's iterator).
    pub label: Option<String>,
    /// Where errors about a generated binding point (a loop's iterable, a temporary's
    /// expression), with the user's hygiene, so rustc shows the user's code.
    pub at: Option<Span>,
    /// The index of the workflow parameter this binding is (`order` in `order: Order`):
    /// its type is checked as the workflow input.
    pub param: Option<usize>,
    /// Declared `mut` (by value).
    pub mutable: bool,
    /// The binding of the same name it hides where it is declared.
    pub hides: Option<BindingId>,
    /// Declared with a string literal (or a choice of them) or a `&` type: a borrow
    /// that the macro can tell cannot be saved.
    pub borrowed: Option<Borrowed>,
    /// Declared without a value (`let x;`): assigned later, once.
    pub deferred: bool,
    /// The type it is declared with (`let x: T;`), for blocks that declare it again.
    pub ty: Option<syn::Type>,
}

/// What the macro can see of a binding that is a borrow.
#[derive(Clone, Copy, Debug)]
pub enum Borrowed {
    /// `let s = "literal";`, or `if`/`match` arms that are all string literals.
    StaticStr,
    /// `let r: &T = ..;`.
    Reference,
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

    /// Whether it can cross a block boundary in a slot (and so is subject to liveness).
    pub fn saveable(&self) -> bool {
        matches!(
            self.kind,
            BindingKind::User | BindingKind::Iter | BindingKind::Temp
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
    /// Its jumps.
    pub gotos: Vec<GotoId>,
    /// Whether it names the context parameter.
    pub mentions_ctx: bool,
}

/// What one piece of code does with bindings, in this order: reads, then assigns, then
/// declares.
#[derive(Clone, Debug, Default)]
pub struct Effects {
    /// Bindings it may read (or use in any way other than assigning them whole).
    pub reads: BTreeSet<BindingId>,
    /// Bindings it assigns whole, unconditionally (`x = ..;`).
    pub kills: BTreeSet<BindingId>,
    /// Bindings it declares, in order.
    pub declares: Vec<BindingId>,
    /// Bindings it may mutate (assigns, `&mut`, method receivers, macro arguments).
    pub mutates: BTreeSet<BindingId>,
    /// The jumps out of lowered code inside it (a `break` in verbatim code).
    pub jumps: Vec<GotoId>,
    /// Of `reads`, those seen only as identifiers in macro arguments (which may not be
    /// uses at all).
    pub mentions: BTreeSet<BindingId>,
    /// Fields of locals it may move out (`user.name` in `let name = user.name;`).
    pub moves: Vec<FieldMove>,
}

/// A field of a local moved out, syntactically (the macro cannot see whether it is `Copy`).
#[derive(Clone, Debug)]
pub struct FieldMove {
    /// The local.
    pub binding: BindingId,
    /// The place, as written (`user.name`).
    pub place: TokenStream,
}

/// A straight-line run of code inside a block, ending in a tail.
pub struct Region {
    /// The block it belongs to.
    pub block: BlockId,
    /// Its code, in order.
    pub code: Vec<(Code, Effects)>,
    /// How it ends. `None` only while it is being built.
    pub tail: Option<Tail>,
    /// What the tail's own expressions do (a condition, a scrutinee, a finished value).
    pub tail_fx: Effects,
}

/// One piece of region code.
pub enum Code {
    /// A statement of the user's, kept as written except where it leaves the machine.
    Stmt(Frag),
    /// A `let` of the user's: `head init tail`, where `head` is `let pat: ty =` (or `let
    /// pat` without an initializer) and `tail` is `else { .. };` or `;`. A binding it
    /// hides may have to be parked after `init` and before the pattern binds.
    Let {
        head: Frag,
        init: Option<Frag>,
        tail: Frag,
    },
    /// A temporary: `let t = value;`.
    Temp { binding: BindingId, value: Frag },
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
    /// A value that must diverge (the end of a `let ... else` block with a durable point,
    /// which the lowering moved out of the `let`): rustc checks it as the `let` would.
    Diverge(Frag),
    /// A place control never reaches (the exit of a loop no `break` leaves).
    Unreachable,
}

/// One arm of a lowered `match`.
pub struct Arm {
    /// Its pattern, with the guard.
    pub pat: Frag,
    /// The bindings the pattern declares.
    pub binds: Vec<BindingId>,
    /// Whether it has a guard (which reads the pattern's bindings before the arm's code).
    pub guarded: bool,
    /// The arm's code.
    pub region: RegionId,
    /// What the guard reads.
    pub fx: Effects,
}

/// How a region ends.
pub enum Tail {
    /// Jump to a block.
    Goto(GotoId),
    /// Branch; both regions belong to the same block. `binds`: what an `if let` declares
    /// for `then_r`.
    If {
        cond: Frag,
        binds: Vec<BindingId>,
        then_r: RegionId,
        else_r: RegionId,
    },
    /// Branch on patterns.
    Match { scrut: Frag, arms: Vec<Arm> },
    /// The next item of a lowered `for` loop's iterator, bound to `pat` in `some`, or
    /// `none` when there is none left.
    Next {
        iter: BindingId,
        pat: Frag,
        binds: Vec<BindingId>,
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
    /// Where it is in the user's code (a point's `.await`, a `break`): errors about the
    /// values it saves point there.
    pub span: Span,
}

/// A durable point.
pub struct Point {
    /// Its block.
    pub block: BlockId,
    /// The operation (the expression before `.await`).
    pub op: Frag,
    /// Bindings the operation reads: saved with the point because the operation runs
    /// again when a pending point resumes.
    pub op_reads: BTreeSet<BindingId>,
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

/// User code as the machine runs it: the user's tokens, with the places where it jumps,
/// reads a lowered value or binds a pattern the lowering may rename as pieces.
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
    /// A pattern's binding (with its `mut`, when by value): the user's identifier, or a
    /// fresh one when the binding hides a local that must be parked first.
    Bind(BindingId),
    /// Before the binding of a shorthand field pattern (`Point { x }`): `x:` when the
    /// binding is emitted under a fresh name, nothing otherwise, so that the pattern stays
    /// shorthand (`x: x` would draw `non_shorthand_field_patterns` on the user's code).
    FieldName(BindingId),
}

impl Frag {
    /// A fragment of plain tokens.
    pub fn tokens(tokens: TokenStream) -> Self {
        Frag(vec![Piece::Tokens(tokens)])
    }
}

/// Where a binding's value comes from when it enters a block's scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bring {
    /// Taken from its slot: it is read before it is assigned.
    Take(BindingId),
    /// Declared without a value: it is assigned before it is read.
    Declare(BindingId),
}

/// What happens first in a sub-region (an arm, a branch of an `if let`, a loop body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enter {
    /// Put a hidden local into its slot (it is still needed and its name is about to be
    /// taken by the pattern).
    Park(BindingId),
    /// Bind a renamed pattern binding under its own name.
    Rebind(BindingId),
}

/// Where each binding's value is at each step of each block: decided after liveness.
#[derive(Default)]
pub struct Places {
    /// Per block, per scope level where it starts: what to bring in.
    pub start: Vec<Vec<Vec<Bring>>>,
    /// Per `(region, index)` of a `Code::Let`: hidden locals parked after its initializer.
    pub parks: BTreeMap<(RegionId, usize), Vec<BindingId>>,
    /// Per `(region, index)` of a `Code::Close`: locals it makes visible again and that
    /// come back from their slots (or are declared).
    pub restores: BTreeMap<(RegionId, usize), Vec<Bring>>,
    /// Per sub-region: what happens before its code.
    pub enter: BTreeMap<RegionId, Vec<Enter>>,
    /// Pattern bindings emitted under a fresh name (see [`Piece::Bind`]).
    pub renamed: BTreeSet<BindingId>,
    /// `let x;` statements (by `(region, index)`) left out: their block never touches
    /// the locals they declare, which the blocks that assign them declare again.
    pub elided: BTreeSet<(RegionId, usize)>,
    /// Field moves (by `(region, index, move)`) out of a local that is saved afterwards,
    /// with the point that saves it: checked to be copies, with a message that says to
    /// destructure the local first.
    pub moved: BTreeMap<(RegionId, usize, usize), PointId>,
    /// Per goto: the locals it puts into their slots.
    pub puts: Vec<Vec<BindingId>>,
    /// Locals a block takes whose only reads there are mentions in macro arguments:
    /// rustc may find them unused (and must not say so at the user's declaration).
    pub loose: BTreeSet<(BlockId, BindingId)>,
    /// `mut` locals declared in one block and mutated only in others: marked mutably
    /// borrowed where they are declared, so rustc does not call the user's `mut` needless
    /// (nor the local unused, when other blocks assign it before reading it).
    pub mut_marks: BTreeSet<BindingId>,
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
    /// Where each binding's value is.
    pub places: Places,
    /// The block each saveable binding is declared in.
    pub declared_in: BTreeMap<BindingId, BlockId>,
}

impl Cfg {
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
