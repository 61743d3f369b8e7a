//! [`Failure`]: the error of a workflow or step that needs no error type of its own. Any
//! `std::error::Error` converts into it with `?`; it keeps what the error said (its type
//! name, its message and the messages of its sources) and whether it may be retried, and
//! it is stored like any other outcome.
//!
//! It is deliberately not a `std::error::Error` itself, for the reason `anyhow::Error`
//! is not: the blanket `impl<E: Error> From<E> for Failure` that makes `?` work would
//! then overlap with the standard `impl<T> From<T> for T`. It converts into
//! `Box<dyn Error + Send + Sync>` where one is needed.
//!
//! Stored form (bincode or JSON, as the workflow's codec says): the four fields
//! `type_name`, `message`, `sources`, `terminal`, in this order. Changing them changes the
//! meaning of recorded outcomes, so a new field needs a new format.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An error recorded as text: what a step body or a workflow returns when it does not
/// need its own error type.
///
/// Any [`std::error::Error`] converts into it with `?`, which records the error's type
/// name, its message and the messages of its [`source`](std::error::Error::source)
/// chain; [`Failure::new`] makes one from a message. A step gives up at once on a
/// [terminal](Failure::is_terminal) failure, whatever its retry policy says.
///
/// ```
/// use durable_core::{Failure, FailureExt};
///
/// fn parse(text: &str) -> Result<u32, Failure> {
///     // A parse error is not going to go away on retry: terminal.
///     let n: u32 = text.trim().parse().terminal()?;
///     if n == 0 {
///         return Err(Failure::new("zero is not a quantity"));
///     }
///     Ok(n)
/// }
///
/// let error = parse("ten").unwrap_err();
/// assert!(error.is_terminal());
/// assert!(error.is::<std::num::ParseIntError>());
/// assert_eq!(error.to_string(), "invalid digit found in string");
/// assert_eq!(parse(" 7 ").unwrap(), 7);
/// ```
///
/// `Display` shows the whole chain, outermost first, separated by `: ` (a recorded
/// failure has no live sources for a reporter to walk).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// `std::any::type_name` of the error it was made from; `None` for a message.
    type_name: Option<String>,
    /// The outermost message.
    message: String,
    /// The messages below it, outermost first.
    sources: Vec<String>,
    /// Whether retrying cannot help.
    terminal: bool,
}

impl Failure {
    /// A failure with `message` and no type name.
    pub fn new(message: impl fmt::Display) -> Self {
        Failure {
            type_name: None,
            message: message.to_string(),
            sources: Vec::new(),
            terminal: false,
        }
    }

    /// A [terminal](Failure::is_terminal) failure with `message`: a step that returns it
    /// gives up at once.
    pub fn terminal(message: impl fmt::Display) -> Self {
        Failure::new(message).into_terminal()
    }

    /// A failure recording `error` and its source chain, for an error known only as a
    /// trait object (for example `&*anyhow_error`, or a `Box<dyn Error>`'s contents).
    /// Its type name is not known, so it is recorded as `None`.
    pub fn from_dyn_error(error: &(dyn std::error::Error + 'static)) -> Self {
        Failure {
            type_name: None,
            message: error.to_string(),
            sources: sources_of(error),
            terminal: false,
        }
    }

    /// This failure, marked [terminal](Failure::is_terminal).
    pub fn into_terminal(mut self) -> Self {
        self.terminal = true;
        self
    }

    /// Whether retrying cannot help: a step whose body returns a terminal failure gives
    /// up at once, whatever its retry policy or strategy says.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Wraps this failure in a higher-level message: `context` becomes the message and
    /// the old message the first source. The type name and terminal flag stay.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        let inner = std::mem::replace(&mut self.message, context.to_string());
        self.sources.insert(0, inner);
        self
    }

    /// The outermost message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The messages of the sources below the outermost one, outermost first.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Every message, outermost first: the message, then the sources.
    pub fn chain(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.message.as_str()).chain(self.sources.iter().map(String::as_str))
    }

    /// The type of the error it was made from, as `std::any::type_name` spelt it when it
    /// was recorded (for example `"std::num::ParseIntError"`); `None` for a failure made
    /// from a message.
    pub fn type_name(&self) -> Option<&str> {
        self.type_name.as_deref()
    }

    /// Whether it was made from an error of type `E`. Compares type names: a best
    /// effort, since `std::any::type_name` is not guaranteed to spell a type the same way
    /// in every compiler version.
    pub fn is<E: ?Sized + 'static>(&self) -> bool {
        self.type_name.as_deref() == Some(std::any::type_name::<E>())
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Failure>();
};

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for source in &self.sources {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl Failure {
    /// Records `error`: its type name, its message and its source chain. The `From`
    /// impl that makes `?` work (beside [`StepError`](crate::StepError), which it treats
    /// apart) calls this.
    pub(crate) fn record<E: std::error::Error + 'static>(error: &E) -> Failure {
        Failure {
            type_name: Some(std::any::type_name::<E>().to_owned()),
            message: error.to_string(),
            sources: sources_of(error),
            terminal: false,
        }
    }
}

fn sources_of(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut sources = Vec::new();
    let mut next = error.source();
    while let Some(source) = next {
        sources.push(source.to_string());
        next = source.source();
    }
    sources
}

/// A [`Failure`] seen as a `std::error::Error`, with its recorded sources as the chain.
#[derive(Debug)]
struct FailureError {
    message: String,
    source: Option<Box<FailureError>>,
}

impl fmt::Display for FailureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FailureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as _)
    }
}

impl From<Failure> for FailureError {
    fn from(failure: Failure) -> Self {
        let mut chain = std::iter::once(failure.message)
            .chain(failure.sources)
            .collect::<Vec<_>>();
        let mut error = FailureError {
            message: chain.pop().unwrap_or_default(),
            source: None,
        };
        while let Some(message) = chain.pop() {
            error = FailureError {
                message,
                source: Some(Box::new(error)),
            };
        }
        error
    }
}

/// For `main() -> Result<(), Box<dyn Error + Send + Sync>>` and other places that want a
/// `std::error::Error`: the recorded messages become the error's source chain.
impl From<Failure> for Box<dyn std::error::Error + Send + Sync + 'static> {
    fn from(failure: Failure) -> Self {
        Box::new(FailureError::from(failure))
    }
}

/// See the `Box<dyn Error + Send + Sync>` conversion.
impl From<Failure> for Box<dyn std::error::Error + 'static> {
    fn from(failure: Failure) -> Self {
        Box::new(FailureError::from(failure))
    }
}

/// Turns the error of a `Result` into a [`Failure`] on the way, with `?`:
/// `.terminal()?` marks it terminal, `.context(..)?` adds a higher-level message.
///
/// ```
/// use durable_core::{Failure, FailureExt};
///
/// fn read_config(path: &str) -> Result<String, Failure> {
///     std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))
/// }
///
/// let error = read_config("/no/such/file").unwrap_err();
/// assert!(error.to_string().starts_with("cannot read /no/such/file: "));
/// assert!(error.is::<std::io::Error>());
/// ```
pub trait FailureExt<T> {
    /// The error as a [terminal](Failure::is_terminal) failure: a step that returns it
    /// gives up at once.
    fn terminal(self) -> Result<T, Failure>;

    /// The error as a failure with `context` as its outer message.
    fn context(self, context: impl fmt::Display) -> Result<T, Failure>;

    /// Like [`context`](FailureExt::context), computing the message only on error.
    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, Failure>;
}

impl<T, E: Into<Failure>> FailureExt<T> for Result<T, E> {
    fn terminal(self) -> Result<T, Failure> {
        self.map_err(|e| e.into().into_terminal())
    }

    fn context(self, context: impl fmt::Display) -> Result<T, Failure> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, Failure> {
        self.map_err(|e| e.into().context(context()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn records_type_message_and_sources() {
        let failure = Failure::from(Outer(Inner));
        assert!(failure.is::<Outer>());
        assert_eq!(failure.message(), "outer");
        assert_eq!(failure.sources(), ["inner"]);
        assert_eq!(failure.to_string(), "outer: inner");
        assert!(!failure.is_terminal());
    }

    #[test]
    fn converts_back_into_a_std_error_with_its_chain() {
        let failure = Failure::from(Outer(Inner)).context("while charging");
        let boxed: Box<dyn std::error::Error + Send + Sync> = failure.into();
        let chain: Vec<String> =
            std::iter::successors(Some(&*boxed as &dyn std::error::Error), |e| e.source())
                .map(|e| e.to_string())
                .collect();
        assert_eq!(chain, ["while charging", "outer", "inner"]);
    }

    #[test]
    fn round_trips_through_both_codecs() {
        let failure = Failure::from(Outer(Inner)).into_terminal();
        let json = serde_json::to_string(&failure).unwrap();
        assert_eq!(serde_json::from_str::<Failure>(&json).unwrap(), failure);
        let bytes = crate::Codec::Bincode.encode_value(&failure).unwrap();
        assert_eq!(crate::decode_value::<Failure>(&bytes).unwrap(), failure);
    }
}
