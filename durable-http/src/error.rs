//! The JSON error responses, one per row of the error table in the crate docs.
//!
//! Every error is a 4xx (or 503 when the engine or its store cannot serve), with the body
//! `{"error": {"code": "...", "message": "..."}}`. Messages never repeat a callback id.

use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use durable_core::{CompletionError, Error};
use serde::Serialize;

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }

    pub fn invalid_path(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_path", message)
    }

    pub fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", message)
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON, sent with `Content-Type: application/json`",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the limit of {limit} bytes"),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint requires `Authorization: Bearer <inspection token>`",
        )
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not accept this method",
        )
    }

    /// A value this crate could not write as JSON (a workflow's local or output whose
    /// `Serialize` refuses JSON, such as a map with non-string keys).
    pub fn unserializable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "execution_unreadable",
            message,
        )
    }

    fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// A refused completion, failure or heartbeat.
    pub fn completion(error: CompletionError) -> Self {
        let message = error.to_string();
        let (status, code) = match error {
            CompletionError::NotFound => (StatusCode::NOT_FOUND, "callback_not_found"),
            CompletionError::AlreadyCompleted { .. } => {
                (StatusCode::CONFLICT, "callback_already_completed")
            }
            CompletionError::TimedOut { .. } => (StatusCode::GONE, "callback_timed_out"),
            CompletionError::ExecutionFinished { .. } => (StatusCode::GONE, "execution_finished"),
            CompletionError::InvalidPayload { .. } => (StatusCode::BAD_REQUEST, "invalid_json"),
            CompletionError::TooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            CompletionError::ShutDown | CompletionError::Store(_) => {
                return Self::unavailable(message)
            }
            // A refusal this build does not know yet: the request cannot be served.
            _ => return Self::unavailable(message),
        };
        Self::new(status, code, message)
    }

    /// A failed inspection.
    pub fn engine(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::NotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "execution_not_found", message)
            }
            // The execution exists but its stored state cannot be read: nothing the
            // client can change, and not a fault of this server's code either.
            Error::Corrupt { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "execution_unreadable",
                message,
            ),
            Error::Invalid { .. } => Self::invalid_query(message),
            _ => Self::unavailable(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Detail {
                code: self.code,
                message: &self.message,
            },
        };
        // Serializing two strings cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
