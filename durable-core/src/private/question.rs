//! The user's `?`, spelled out so that the macro can route its early exit out of the state
//! machine (`core::ops::Try` is unstable).

use std::convert::Infallible;
use std::ops::ControlFlow;

/// The `?` operator, spelled out so the macro can route its early exit out of the
/// state machine (`core::ops::Try` is unstable).
pub trait Try {
    /// The value `?` produces.
    type Output;
    /// What `?` propagates.
    type Residual;
    /// Splits into continue or break.
    fn branch(self) -> ControlFlow<Self::Residual, Self::Output>;
}

impl<T, E> Try for Result<T, E> {
    type Output = T;
    type Residual = Result<Infallible, E>;
    fn branch(self) -> ControlFlow<Self::Residual, T> {
        match self {
            Ok(v) => ControlFlow::Continue(v),
            Err(e) => ControlFlow::Break(Err(e)),
        }
    }
}

impl<T> Try for Option<T> {
    type Output = T;
    type Residual = Option<Infallible>;
    fn branch(self) -> ControlFlow<Self::Residual, T> {
        match self {
            Some(v) => ControlFlow::Continue(v),
            None => ControlFlow::Break(None),
        }
    }
}

/// Builds the function's return value from what `?` propagates.
pub trait FromResidual<R> {
    /// Converts the residual.
    fn from_residual(residual: R) -> Self;
}

impl<T, E, F: From<E>> FromResidual<Result<Infallible, E>> for Result<T, F> {
    fn from_residual(residual: Result<Infallible, E>) -> Self {
        match residual {
            Err(e) => Err(From::from(e)),
            Ok(never) => match never {},
        }
    }
}

impl<T> FromResidual<Option<Infallible>> for Option<T> {
    fn from_residual(_: Option<Infallible>) -> Self {
        None
    }
}
