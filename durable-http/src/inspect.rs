//! `GET /executions` and `GET /executions/{id}`: inspection, behind the bearer token.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use durable_core::{ExecutionRecord, ListFilter, Status, Timestamp};
use serde::{Deserialize, Serialize};

use crate::api::Shared;
use crate::auth::has_bearer;
use crate::error::ApiError;
use crate::reply;

/// Page size of `GET /executions` when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;

/// Largest `limit` accepted by `GET /executions`.
pub const MAX_PAGE: usize = 1000;

/// Refuses a request without the inspection token.
pub(crate) fn check_token(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    match &shared.token {
        Some(token) if has_bearer(headers, token) => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

pub(crate) async fn describe(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    check_token(&shared, &headers)?;
    let Path(id) = path.map_err(|e| ApiError::invalid_path(e.body_text()))?;
    let description = shared
        .engine
        .describe(&id)
        .await
        .map_err(ApiError::engine)?;
    reply::ok(&description)
}

/// The query of `GET /executions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    status: Option<String>,
    workflow: Option<String>,
    parent: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

/// One execution in a list: its record without the frame and output bytes.
#[derive(Serialize)]
struct Summary {
    id: String,
    workflow: String,
    status: Status,
    created_at: Timestamp,
    updated_at: Timestamp,
    wake_at: Option<Timestamp>,
    message: Option<String>,
    parent: Option<String>,
}

impl From<ExecutionRecord> for Summary {
    fn from(record: ExecutionRecord) -> Self {
        Summary {
            id: record.id,
            workflow: record.workflow,
            status: record.status,
            created_at: record.created_at,
            updated_at: record.updated_at,
            wake_at: record.wake_at,
            message: record.message,
            parent: record.parent.map(|p| p.execution),
        }
    }
}

/// The answer of `GET /executions`.
#[derive(Serialize)]
struct Page {
    executions: Vec<Summary>,
    /// The `after` of the next page, `null` on the last one.
    next: Option<String>,
}

fn status(name: &str) -> Result<Status, ApiError> {
    [
        Status::Running,
        Status::Suspended,
        Status::Completed,
        Status::Failed,
        Status::Parked,
        Status::Cancelled,
    ]
    .into_iter()
    .find(|s| s.as_str().eq_ignore_ascii_case(name))
    .ok_or_else(|| {
        ApiError::invalid_query(format!(
            "unknown status {name:?}: expected running, suspended, completed, failed, parked or cancelled"
        ))
    })
}

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    check_token(&shared, &headers)?;
    let Query(query) = query.map_err(|e| ApiError::invalid_query(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid_query(format!(
            "`limit` must be 1 to {MAX_PAGE}, got {limit}"
        )));
    }
    let mut filter = ListFilter::all().limit(limit);
    if let Some(name) = &query.status {
        filter = filter.status(status(name)?);
    }
    if let Some(workflow) = query.workflow {
        filter = filter.workflow(workflow);
    }
    if let Some(parent) = query.parent {
        filter = filter.parent(parent);
    }
    if let Some(after) = query.after {
        filter = filter.after(after);
    }
    let records = shared
        .engine
        .executions(&filter)
        .await
        .map_err(ApiError::engine)?;
    let next = (records.len() == limit)
        .then(|| records.last().map(|r| r.id.clone()))
        .flatten();
    let executions = records.into_iter().map(Summary::from).collect();
    reply::ok(&Page { executions, next })
}
