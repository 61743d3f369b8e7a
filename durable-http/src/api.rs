//! [`Api`]: the router builder, and serving it on its own.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use durable_core::Engine;
use tokio::net::TcpListener;

use crate::error::ApiError;
use crate::{callbacks, control, inspect};

/// Where [`Api::serve`] listens unless told otherwise: the loopback interface only.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8787));

/// The default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// What the handlers share.
pub(crate) struct Shared {
    pub engine: Engine,
    /// The inspection endpoints' bearer token; without one they are not served.
    pub token: Option<Vec<u8>>,
    pub body_limit: usize,
}

/// The HTTP endpoints of an [`Engine`]: build one, then embed its [`router`](Api::router)
/// in an application's router or [`serve`](Api::serve) it on its own.
///
/// ```no_run
/// # async fn run(engine: durable_core::Engine) -> std::io::Result<()> {
/// use axum::routing::get;
///
/// let api = durable_http::Api::new(engine).inspection_token("a long random secret");
/// // Next to the application's own routes, in one line:
/// let app: axum::Router = axum::Router::new()
///     .route("/health", get(|| async { "ok" }))
///     .nest("/durable", api.clone().router());
/// # let _ = app;
/// // Or on its own, on 127.0.0.1:8787:
/// api.serve().await
/// # }
/// ```
#[derive(Clone)]
pub struct Api {
    engine: Engine,
    token: Option<String>,
    body_limit: usize,
    addr: SocketAddr,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("inspection", &self.token.is_some())
            .field("body_limit", &self.body_limit)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// The endpoints of `engine`: the callback endpoints only, until an
    /// [`inspection_token`](Api::inspection_token) is set.
    pub fn new(engine: Engine) -> Self {
        Api {
            engine,
            token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            addr: DEFAULT_ADDR,
        }
    }

    /// Serves the inspection endpoints (`GET /executions`, `GET /executions/{id}`) to
    /// requests that carry `Authorization: Bearer <token>`. Choose a long random token;
    /// it is compared in constant time. An empty token serves nothing.
    pub fn inspection_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into()).filter(|t| !t.is_empty());
        self
    }

    /// The largest request body accepted, in bytes (default 1 MiB); a larger one gets
    /// `413`. Callback payloads are also held to the engine's
    /// [`max_value_bytes`](durable_core::EngineBuilder::max_value_bytes).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The address [`serve`](Api::serve) binds (default [`DEFAULT_ADDR`],
    /// `127.0.0.1:8787`). Binding another interface exposes the endpoints to the
    /// network: put TLS in front of them.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// The endpoints as an axum [`Router`], to [`nest`](Router::nest) in an application's
    /// router (`app.nest("/durable", api.router())`) or serve as it is. Unknown paths and
    /// methods under it get JSON errors too.
    pub fn router(self) -> Router {
        let shared = Arc::new(Shared {
            engine: self.engine,
            token: self.token.map(String::into_bytes),
            body_limit: self.body_limit,
        });
        let mut router = Router::new()
            .route("/callbacks/{id}/complete", post(callbacks::complete))
            .route("/callbacks/{id}/fail", post(callbacks::fail))
            .route("/callbacks/{id}/heartbeat", post(callbacks::heartbeat));
        if shared.token.is_some() {
            router = router
                .route("/executions", get(inspect::list))
                .route("/executions/{id}", get(inspect::describe))
                .route("/executions/{id}/cancel", post(control::cancel));
        }
        router
            .fallback(|| async { ApiError::not_found() })
            .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
            .layer(DefaultBodyLimit::max(shared.body_limit))
            .with_state(shared)
    }

    /// Binds [`addr`](Api::addr) and serves the endpoints until the process ends.
    pub async fn serve(self) -> io::Result<()> {
        let listener = TcpListener::bind(self.addr).await?;
        self.serve_on(listener).await
    }

    /// Serves the endpoints on `listener` until the process ends.
    pub async fn serve_on(self, listener: TcpListener) -> io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Serves the endpoints on `listener` until `shutdown` completes, then finishes the
    /// requests in flight and returns.
    pub async fn serve_until(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}
