//! What a batch gives: [`BatchResult`], one [`BatchItem`] per input item in input order.

use serde::{Deserialize, Serialize};

use crate::error::StepError;
use crate::ops::child::ChildError;
use crate::record::CompletionReason;

/// How one item of a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ItemStatus {
    /// It succeeded: [`BatchItem::value`] holds its value.
    Succeeded,
    /// It failed: [`BatchItem::error`] says why.
    Failed,
    /// It was in flight when the batch completed early, and was cancelled.
    Cancelled,
    /// The batch completed before it started.
    NotStarted,
}

/// Why an item of a batch failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ItemError {
    /// A step item gave up (its attempts ran out, its error was terminal...).
    #[error("{0}")]
    Step(StepError),
    /// A child item gave no output, or the child workflow returned `Err` (its output is
    /// then in [`BatchItem::value`]).
    #[error("{0}")]
    Child(ChildError),
}

/// One item of a [`BatchResult`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem<T> {
    /// Its index in the input.
    pub index: usize,
    /// How it ended.
    pub status: ItemStatus,
    /// Its value: a step item's `Ok` value, a child item's output (also when the child
    /// workflow returned `Err`, which counts as a failure).
    pub value: Option<T>,
    /// Why it failed.
    pub error: Option<ItemError>,
    /// Its place in the order in which the batch saw items settle, from 0; `None` for
    /// an item cancelled or not started. The same after any restart: it is committed.
    pub completion_order: Option<u64>,
    /// The child execution that ran it, for a child item that started.
    pub execution: Option<String>,
}

/// The outcome of a batch ([`Ctx::map`](crate::Ctx::map), [`Ctx::parallel`](crate::Ctx::parallel)):
/// every item in input order, with its status and value or error, and why the batch
/// completed.
///
/// A batch's failures do not fail the workflow by themselves:
/// [`into_result`](BatchResult::into_result) or [`values`](BatchResult::values) turn
/// them into an error for `?`.
///
/// ```
/// # use durable_core::{durable, BatchError, Completion, Ctx};
/// #[durable]
/// async fn lengths(ctx: Ctx, words: Vec<String>) -> Result<Vec<usize>, BatchError> {
///     let batch = ctx
///         .map("measure", words, |word: String| async move { Ok(word.len()) })
///         .max_in_flight(10)
///         .completion(Completion::all_succeed())
///         .await;
///     batch.values()
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult<T> {
    items: Vec<BatchItem<T>>,
    reason: CompletionReason,
}

impl<T> BatchResult<T> {
    pub(crate) fn new(items: Vec<BatchItem<T>>, reason: CompletionReason) -> Self {
        BatchResult { items, reason }
    }

    /// Why the batch completed.
    pub fn completion_reason(&self) -> CompletionReason {
        self.reason
    }

    /// Every item, in input order.
    pub fn items(&self) -> &[BatchItem<T>] {
        &self.items
    }

    /// Every item, in input order, by value.
    pub fn into_items(self) -> Vec<BatchItem<T>> {
        self.items
    }

    /// How many items the batch had.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch had no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items with `status`, in input order.
    pub fn with_status(&self, status: ItemStatus) -> impl Iterator<Item = &BatchItem<T>> {
        self.items.iter().filter(move |item| item.status == status)
    }

    /// How many items have `status`.
    pub fn count(&self, status: ItemStatus) -> usize {
        self.with_status(status).count()
    }

    /// The succeeded items' values, in input order.
    pub fn succeeded(&self) -> impl Iterator<Item = &T> {
        self.with_status(ItemStatus::Succeeded)
            .filter_map(|item| item.value.as_ref())
    }

    /// The failed items' indexes and errors, in input order.
    pub fn failures(&self) -> impl Iterator<Item = (usize, &ItemError)> {
        self.with_status(ItemStatus::Failed)
            .filter_map(|item| item.error.as_ref().map(|e| (item.index, e)))
    }

    /// Whether any item failed.
    pub fn has_failures(&self) -> bool {
        self.count(ItemStatus::Failed) > 0
    }

    /// The items' indexes in the order the batch saw them settle.
    pub fn completion_order(&self) -> Vec<usize> {
        let mut settled: Vec<(u64, usize)> = self
            .items
            .iter()
            .filter_map(|item| item.completion_order.map(|order| (order, item.index)))
            .collect();
        settled.sort_unstable();
        settled.into_iter().map(|(_, index)| index).collect()
    }

    /// The batch itself if no item failed, otherwise a [`BatchError`] listing the
    /// failures (cancelled and unstarted items are not failures: a policy that completed
    /// early meant them to stop).
    pub fn into_result(self) -> Result<Self, BatchError> {
        let failures: Vec<(usize, ItemError)> = self
            .failures()
            .map(|(index, error)| (index, error.clone()))
            .collect();
        if failures.is_empty() {
            Ok(self)
        } else {
            Err(BatchError {
                total: self.items.len(),
                reason: self.reason,
                failures,
            })
        }
    }

    /// Every item's value in input order, if every item succeeded; otherwise a
    /// [`BatchError`] with the failures (and a count of the items that did not run to
    /// the end).
    pub fn values(self) -> Result<Vec<T>, BatchError> {
        let total = self.items.len();
        let reason = self.reason;
        let mut failures = Vec::new();
        let mut values = Vec::with_capacity(total);
        let mut unfinished = 0;
        for item in self.items {
            match (item.status, item.value, item.error) {
                (ItemStatus::Succeeded, Some(value), _) => values.push(value),
                (ItemStatus::Failed, _, Some(error)) => failures.push((item.index, error)),
                _ => unfinished += 1,
            }
        }
        if failures.is_empty() && unfinished == 0 {
            return Ok(values);
        }
        // Failures, or completed early on enough successes: not every value is there.
        Err(BatchError {
            total,
            reason,
            failures,
        })
    }
}

/// A batch with failures (or, from [`BatchResult::values`], one that completed before
/// every item succeeded): what `?` on a batch result gives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchError {
    /// How many items the batch had.
    pub total: usize,
    /// Why it completed.
    pub reason: CompletionReason,
    /// The failed items' indexes and errors, in input order.
    pub failures: Vec<(usize, ItemError)>,
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.failures.first() {
            None => write!(
                f,
                "the batch completed ({}) before all of its {} items succeeded",
                self.reason.as_str(),
                self.total
            ),
            Some((index, error)) => write!(
                f,
                "{} of {} items failed ({}); the first, item {index}: {error}",
                self.failures.len(),
                self.total,
                self.reason.as_str()
            ),
        }
    }
}

impl std::error::Error for BatchError {}
