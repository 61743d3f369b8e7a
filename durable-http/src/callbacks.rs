//! `POST /callbacks/{id}/complete|fail|heartbeat`: authorised by the id itself.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;

use crate::api::Shared;
use crate::body;
use crate::error::ApiError;
use crate::reply;

/// The answer to an accepted request: the callback's state after it.
#[derive(Serialize)]
struct Accepted {
    callback: &'static str,
}

fn accepted(state: &'static str) -> Result<Response, ApiError> {
    reply::ok(&Accepted { callback: state })
}

fn id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|e| ApiError::invalid_path(e.body_text()))
}

pub(crate) async fn complete(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = id(path)?;
    let json = body::json(&headers, body, shared.body_limit)?;
    shared
        .engine
        .complete_callback_json(&id, &json)
        .await
        .map_err(ApiError::completion)?;
    accepted("succeeded")
}

pub(crate) async fn fail(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = id(path)?;
    let json = body::json(&headers, body, shared.body_limit)?;
    shared
        .engine
        .fail_callback_json(&id, &json)
        .await
        .map_err(ApiError::completion)?;
    accepted("failed")
}

pub(crate) async fn heartbeat(
    State(shared): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = id(path)?;
    // The body is ignored, but still held to the limit.
    body::within_limit(body, shared.body_limit)?;
    shared
        .engine
        .heartbeat_callback(&id)
        .await
        .map_err(ApiError::completion)?;
    accepted("pending")
}
