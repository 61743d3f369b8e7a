//! `POST /executions/{id}/cancel`: an operator's action, behind the bearer token.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::api::Shared;
use crate::body;
use crate::error::ApiError;
use crate::inspect::check_token;
use crate::reply;

/// The reason recorded when a cancel request gives none.
pub const DEFAULT_CANCEL_REASON: &str = "cancelled over HTTP";

/// The body of a cancel request (optional).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelRequest {
    reason: Option<String>,
}

/// The answer: whether this request cancelled it (`false`: it had finished already).
#[derive(Serialize)]
struct CancelAnswer<'a> {
    execution: &'a str,
    cancelled: bool,
}

pub(crate) async fn cancel(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_token(&shared, &headers)?;
    let Path(id) = path.map_err(|e| ApiError::invalid_path(e.body_text()))?;
    let raw = body::within_limit(body, shared.body_limit)?;
    let reason = if raw.is_empty() {
        None
    } else {
        let json = body::json(&headers, Ok(raw), shared.body_limit)?;
        let request: CancelRequest = serde_json::from_slice(&json).map_err(|e| {
            ApiError::invalid_json(format!(
                "the body must be {{\"reason\": \"...\"}} or empty: {e}"
            ))
        })?;
        request.reason
    };
    let reason = reason.unwrap_or_else(|| DEFAULT_CANCEL_REASON.to_owned());
    let cancelled = shared
        .engine
        .cancel(&id, &reason)
        .await
        .map_err(ApiError::engine)?;
    reply::ok(&CancelAnswer {
        execution: &id,
        cancelled,
    })
}
