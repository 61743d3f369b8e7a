//! HTTP endpoints for a [`durable_core::Engine`]: complete, fail and heartbeat callbacks
//! from outside (a person clicking a link, a payment provider's webhook), and inspect
//! executions. Built on axum; embeds in an application's router in one line, or serves
//! on its own on `127.0.0.1`.
//!
//! # Example
//!
//! ```no_run
//! use durable_core::{durable, CallbackError, Ctx, Engine, MemoryStore};
//!
//! #[durable]
//! async fn approve(ctx: Ctx, amount: u64) -> Result<bool, CallbackError> {
//!     let cb = ctx.create_callback::<bool>("approval").await?;
//!     println!("curl -X POST -H 'Content-Type: application/json' -d true \
//!               http://127.0.0.1:8787/callbacks/{}/complete", cb.id());
//!     ctx.wait_callback(&cb).await
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::builder(MemoryStore::new()).register(approve).open().await?;
//! engine.start(approve, "expense-1", 250).await?;
//! durable_http::Api::new(engine).serve().await?;
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//!
//! Paths are relative to where the router is mounted. Bodies are JSON
//! (`Content-Type: application/json`), at most [`Api::body_limit`] bytes.
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /callbacks/{id}/complete` | the result: any JSON value, decoded into the type the workflow awaits | `200 {"callback": "succeeded"}` |
//! | `POST /callbacks/{id}/fail` | the error: any JSON value (the workflow gets it in `CallbackError::Failed`) | `200 {"callback": "failed"}` |
//! | `POST /callbacks/{id}/heartbeat` | none (ignored) | `200 {"callback": "pending"}` |
//! | `GET /executions/{id}` | | `200` the execution's [`Description`](durable_core::Description) |
//! | `GET /executions?status=&workflow=&parent=&after=&limit=` | | `200 {"executions": [summary...], "next": id or null}` |
//! | `POST /executions/{id}/cancel` | none, or `{"reason": "..."}` | `200 {"execution": id, "cancelled": true}` (`false`: it had finished already) |
//!
//! The callback endpoints are authorised by the id itself (128 random bits). When one
//! answers `200`, the completion is durable. The inspection endpoints (`GET`) are served
//! only with an [`Api::inspection_token`], and require `Authorization: Bearer <token>`;
//! so does `cancel` ([`Engine::cancel`](durable_core::Engine::cancel): the execution and
//! every unfinished execution it started; the reason defaults to
//! [`DEFAULT_CANCEL_REASON`]).
//!
//! `GET /executions` takes any of: `status` (`running`, `suspended`, `completed`,
//! `failed`, `parked`, `cancelled`), `workflow` (a workflow name), `parent` (an execution id: its
//! children), `after` (an execution id: the page after it, the previous page's `next`)
//! and `limit` (1 to 1000, default 100). A summary is
//! `{"id", "workflow", "status", "created_at", "updated_at", "wake_at", "message",
//! "parent"}`, times in milliseconds since the Unix epoch. An execution id in a path is
//! percent-encoded.
//!
//! # Errors
//!
//! Every error answer has the body `{"error": {"code": "...", "message": "..."}}`; none is
//! a 500. Messages never repeat a callback id.
//!
//! | status | code | when |
//! |---|---|---|
//! | 400 | `invalid_json` | the body is empty or not one valid JSON value (for `cancel`: a non-empty body that is not `{"reason": "..."}`) |
//! | 400 | `invalid_body` | the body could not be read |
//! | 400 | `invalid_path` | a path parameter is not valid UTF-8 |
//! | 400 | `invalid_query` | an unknown query parameter, status or a `limit` out of range |
//! | 401 | `unauthorized` | an inspection or cancel request without the right bearer token (with `WWW-Authenticate: Bearer`) |
//! | 404 | `callback_not_found` | no callback has this id |
//! | 404 | `execution_not_found` | no execution has this id |
//! | 404 | `not_found` | no such endpoint (also the inspection endpoints without a token) |
//! | 405 | `method_not_allowed` | the endpoint exists for another method |
//! | 409 | `callback_already_completed` | the callback was already completed, failed or cancelled |
//! | 410 | `callback_timed_out` | the callback's timeout or heartbeat timeout has passed |
//! | 410 | `execution_finished` | the callback's execution has finished without it |
//! | 413 | `payload_too_large` | the body exceeds the body limit or the engine's value limit |
//! | 415 | `unsupported_media_type` | a `complete`, `fail` or non-empty `cancel` body not sent as JSON |
//! | 422 | `execution_unreadable` | the execution's stored state cannot be read |
//! | 503 | `unavailable` | the engine has shut down or its store failed |
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod api;
mod auth;
mod body;
mod callbacks;
mod control;
mod error;
mod inspect;
mod reply;

pub use api::{Api, DEFAULT_ADDR, DEFAULT_BODY_LIMIT};
pub use control::DEFAULT_CANCEL_REASON;
pub use inspect::{DEFAULT_PAGE, MAX_PAGE};

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Api>();
};
