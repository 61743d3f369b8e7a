//! The HTTP endpoints over real HTTP on loopback, with a real client (reqwest): the
//! callback endpoints, the inspection endpoints, and one test per row of the error table.

use std::sync::Arc;
use std::time::Duration;

use durable_core::{
    durable, CallbackError, Ctx, Engine, EngineBuilder, ExecutionRecord, MemoryStore, PointState,
    Position, Status, Store, TestClock, Timestamp,
};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Client, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::oneshot;

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const TOKEN: &str = "inspection-token-0123456789";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Decision {
    approved: bool,
}

#[durable]
async fn approval(ctx: Ctx, amount: u64) -> Result<(u64, Decision), CallbackError> {
    let cb = ctx
        .create_callback::<Decision>("approval")
        .timeout(Duration::from_secs(3600))
        .await?;
    let decision = ctx.wait_callback(&cb).await?;
    Ok((amount, decision))
}

#[durable]
async fn abandon(ctx: Ctx) -> Result<String, CallbackError> {
    let cb = ctx.create_callback::<String>("ignored").await?;
    Ok(cb.name().to_owned())
}

/// An engine served over HTTP on a loopback port; shut down when dropped.
struct Server {
    base: String,
    engine: Engine,
    store: Arc<MemoryStore>,
    clock: TestClock,
    client: Client,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

struct Options {
    token: Option<&'static str>,
    body_limit: usize,
    max_value_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            token: Some(TOKEN),
            body_limit: durable_http::DEFAULT_BODY_LIMIT,
            max_value_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Server {
    async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    async fn start_with(options: Options) -> Self {
        let store = Arc::new(MemoryStore::new());
        let clock = TestClock::new(START);
        let engine = EngineBuilder::with_store(store.clone())
            .register(approval)
            .register(abandon)
            .clock(clock.clone())
            .max_value_bytes(options.max_value_bytes)
            .open()
            .await
            .unwrap();
        let mut api = durable_http::Api::new(engine.clone()).body_limit(options.body_limit);
        if let Some(token) = options.token {
            api = api.inspection_token(token);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(api.serve_until(listener, async {
            let _ = stopped.await;
        }));
        Server {
            base,
            engine,
            store,
            clock,
            client: Client::new(),
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// Starts an approval and returns its callback id once it waits.
    async fn waiting(&self, execution: &str) -> String {
        self.engine.start(approval, execution, 100).await.unwrap();
        loop {
            let record = self.store.load(execution).await.unwrap().unwrap();
            if record.status == Status::Suspended {
                let ops = self.store.operations(execution, None, 10).await.unwrap();
                return ops[0].token.clone().unwrap();
            }
            tokio::task::yield_now().await;
        }
    }

    async fn post(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut request = self.client.post(format!("{}{path}", self.base)).body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        Reply::of(request.send().await.expect("the request is answered")).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post(path, Some("application/json"), body.to_string())
            .await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        Reply::of(request.send().await.expect("the request is answered")).await
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap().unwrap();
        }
        self.engine.shutdown().await;
    }
}

/// A response, read whole.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    content_type: Option<String>,
    www_authenticate: Option<String>,
    body: Value,
}

impl Reply {
    async fn of(response: reqwest::Response) -> Self {
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned())
        };
        let content_type = header(CONTENT_TYPE);
        let www_authenticate = header(WWW_AUTHENTICATE);
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "the body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Reply {
            status,
            content_type,
            www_authenticate,
            body,
        }
    }

    /// Checks an error answer: its status, JSON type and code.
    fn error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type.as_deref(), Some("application/json"));
        assert_eq!(self.body["error"]["code"], code, "{self:?}");
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{self:?}"
        );
    }
}

#[tokio::test]
async fn a_completion_over_http_finishes_the_workflow() {
    let server = Server::start().await;
    let id = server.waiting("e1").await;
    let reply = server
        .post_json(
            &format!("/callbacks/{id}/complete"),
            &json!({"approved": true}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"callback": "succeeded"}));
    let result = server.engine.handle(approval, "e1").result().await.unwrap();
    assert_eq!(result, Ok((100, Decision { approved: true })));
    server.stop().await;
}

#[tokio::test]
async fn a_failure_over_http_reaches_the_workflow() {
    let server = Server::start().await;
    let id = server.waiting("e1").await;
    let reply = server
        .post_json(
            &format!("/callbacks/{id}/fail"),
            &json!({"reason": "no budget"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"callback": "failed"}));
    let error = server
        .engine
        .handle(approval, "e1")
        .result()
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        error.sender_error::<Value>(),
        Some(json!({"reason": "no budget"}))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_heartbeat_over_http_is_recorded() {
    let server = Server::start().await;
    let id = server.waiting("e1").await;
    server.clock.advance(Duration::from_secs(60));
    let reply = server
        .post(&format!("/callbacks/{id}/heartbeat"), None, "")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"callback": "pending"}));
    let op = server.store.operation_by_token(&id).await.unwrap().unwrap();
    assert_eq!(
        op.heartbeat_at,
        Some(START.saturating_add(Duration::from_secs(60)))
    );
    server.stop().await;
}

#[tokio::test]
async fn describe_and_list_over_http_with_the_token() {
    let server = Server::start().await;
    let id = server.waiting("e1").await;
    server.waiting("e2").await;
    let reply = server.get("/executions/e1", Some(TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["id"], "e1");
    assert_eq!(reply.body["status"], "Suspended");
    assert_eq!(reply.body["callbacks"][0]["name"], "approval");
    assert_eq!(reply.body["callbacks"][0]["state"], "pending");
    assert_eq!(reply.body["callbacks"][0]["id"], id.as_str());

    let page = server
        .get(
            "/executions?status=suspended&workflow=approval&limit=1",
            Some(TOKEN),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert_eq!(page.body["executions"][0]["id"], "e1");
    assert_eq!(page.body["executions"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["next"], "e1");
    let next = server
        .get("/executions?status=suspended&after=e1&limit=1", Some(TOKEN))
        .await;
    assert_eq!(next.body["executions"][0]["id"], "e2");
    let last = server
        .get("/executions?status=suspended&after=e2", Some(TOKEN))
        .await;
    assert_eq!(last.body, json!({"executions": [], "next": null}));
    let none = server
        .get("/executions?status=completed", Some(TOKEN))
        .await;
    assert_eq!(none.body["executions"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn the_router_nests_next_to_an_applications_routes() {
    let store = MemoryStore::new();
    let engine = Engine::builder(store)
        .register(approval)
        .open()
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .nest("/durable", durable_http::Api::new(engine.clone()).router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::new();
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    let unknown = client
        .post(format!("{base}/durable/callbacks/cb_unknown/heartbeat"))
        .send()
        .await
        .unwrap();
    Reply::of(unknown)
        .await
        .error(StatusCode::NOT_FOUND, "callback_not_found");
    served.abort();
    engine.shutdown().await;
}

// The error table, one test per row.

#[tokio::test]
async fn malformed_json_is_400_invalid_json() {
    let server = Server::start().await;
    let id = server.waiting("e1").await;
    for body in ["{\"approved\": tru", "", "1 2"] {
        server
            .post(
                &format!("/callbacks/{id}/complete"),
                Some("application/json"),
                body,
            )
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_json");
    }
    assert!(server
        .store
        .operation_by_token(&id)
        .await
        .unwrap()
        .unwrap()
        .state
        .is_pending());
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_utf8_json_is_400_invalid_json() {
    let server = Server::start().await;
    let id = server.waiting("e1").await;
    server
        .post(
            &format!("/callbacks/{id}/fail"),
            Some("application/json"),
            vec![0xff, 0xfe, 0x00],
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_json");
    server.stop().await;
}

#[tokio::test]
async fn an_invalid_utf8_path_is_400_invalid_path() {
    let server = Server::start().await;
    server
        .post(
            "/callbacks/%FF%FE/complete",
            Some("application/json"),
            "true",
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_path");
    server.stop().await;
}

#[tokio::test]
async fn a_bad_query_is_400_invalid_query() {
    let server = Server::start().await;
    for query in [
        "status=sleeping",
        "limit=0",
        "limit=1001",
        "limit=many",
        "colour=blue",
    ] {
        server
            .get(&format!("/executions?{query}"), Some(TOKEN))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_query");
    }
    server.stop().await;
}

#[tokio::test]
async fn inspection_without_the_right_token_is_401() {
    let server = Server::start().await;
    server.waiting("e1").await;
    for token in [None, Some("wrong"), Some(&TOKEN[..TOKEN.len() - 1])] {
        for path in ["/executions/e1", "/executions"] {
            let reply = server.get(path, token).await;
            reply.error(StatusCode::UNAUTHORIZED, "unauthorized");
            assert_eq!(reply.www_authenticate.as_deref(), Some("Bearer"));
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_callback_is_404_callback_not_found() {
    let server = Server::start().await;
    let id = server.waiting("e1").await;
    let mut forged = id.into_bytes();
    forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for path in [
        format!("/callbacks/{forged}/complete"),
        format!("/callbacks/{forged}/fail"),
        "/callbacks/not-an-id/complete".to_owned(),
    ] {
        server
            .post_json(&path, &json!(true))
            .await
            .error(StatusCode::NOT_FOUND, "callback_not_found");
    }
    server
        .post(&format!("/callbacks/{forged}/heartbeat"), None, "")
        .await
        .error(StatusCode::NOT_FOUND, "callback_not_found");
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_execution_is_404_execution_not_found() {
    let server = Server::start().await;
    server
        .get("/executions/nobody", Some(TOKEN))
        .await
        .error(StatusCode::NOT_FOUND, "execution_not_found");
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_endpoint_is_404_not_found() {
    let server = Server::start().await;
    server
        .get("/nothing/here", None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    server.stop().await;
    // Without an inspection token the inspection endpoints are not served at all.
    let server = Server::start_with(Options {
        token: None,
        ..Options::default()
    })
    .await;
    server.waiting("e1").await;
    server
        .get("/executions/e1", Some(TOKEN))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_method_is_405_method_not_allowed() {
    let server = Server::start().await;
    let id = server.waiting("e1").await;
    let response = server
        .client
        .request(
            Method::GET,
            format!("{}/callbacks/{id}/complete", server.base),
        )
        .send()
        .await
        .unwrap();
    Reply::of(response)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let response = server
        .client
        .request(Method::DELETE, format!("{}/executions/e1", server.base))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    Reply::of(response)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    server.stop().await;
}

#[tokio::test]
async fn a_second_completion_is_409_callback_already_completed() {
    let server = Server::start().await;
    let id = server.waiting("e1").await;
    let first = server
        .post_json(
            &format!("/callbacks/{id}/complete"),
            &json!({"approved": false}),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK);
    for path in ["complete", "fail", "heartbeat"] {
        server
            .post_json(
                &format!("/callbacks/{id}/{path}"),
                &json!({"approved": true}),
            )
            .await
            .error(StatusCode::CONFLICT, "callback_already_completed");
    }
    let result = server.engine.handle(approval, "e1").result().await.unwrap();
    assert_eq!(result, Ok((100, Decision { approved: false })));
    server.stop().await;
}

#[tokio::test]
async fn a_timed_out_callback_is_410_callback_timed_out() {
    let server = Server::start().await;
    let id = server.waiting("e1").await;
    server.clock.advance(Duration::from_secs(3600));
    server
        .post_json(
            &format!("/callbacks/{id}/complete"),
            &json!({"approved": true}),
        )
        .await
        .error(StatusCode::GONE, "callback_timed_out");
    let result = server.engine.handle(approval, "e1").result().await.unwrap();
    assert!(
        matches!(result, Err(CallbackError::TimedOut { .. })),
        "{result:?}"
    );
    server
        .post(&format!("/callbacks/{id}/heartbeat"), None, "")
        .await
        .error(StatusCode::GONE, "callback_timed_out");
    server.stop().await;
}

#[tokio::test]
async fn a_callback_of_a_finished_execution_is_410_execution_finished() {
    let server = Server::start().await;
    server
        .engine
        .start(abandon, "done", ())
        .await
        .unwrap()
        .result()
        .await
        .unwrap()
        .unwrap();
    let ops = server.store.operations("done", None, 10).await.unwrap();
    let id = ops[0].token.clone().unwrap();
    server
        .post_json(&format!("/callbacks/{id}/complete"), &json!("late"))
        .await
        .error(StatusCode::GONE, "execution_finished");
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_body_is_413_payload_too_large() {
    let server = Server::start_with(Options {
        body_limit: 1024,
        ..Options::default()
    })
    .await;
    let id = server.waiting("e1").await;
    let big = json!({"approved": true, "note": "x".repeat(4096)});
    server
        .post_json(&format!("/callbacks/{id}/complete"), &big)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    server
        .post(
            &format!("/callbacks/{id}/heartbeat"),
            None,
            "x".repeat(4096),
        )
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(server
        .store
        .operation_by_token(&id)
        .await
        .unwrap()
        .unwrap()
        .state
        .is_pending());
    server.stop().await;
}

#[tokio::test]
async fn a_payload_over_the_engines_value_limit_is_413_payload_too_large() {
    let server = Server::start_with(Options {
        max_value_bytes: 256,
        ..Options::default()
    })
    .await;
    let id = server.waiting("e1").await;
    let big = json!({"approved": true, "note": "x".repeat(1000)});
    server
        .post_json(&format!("/callbacks/{id}/complete"), &big)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    server.stop().await;
}

#[tokio::test]
async fn a_body_not_sent_as_json_is_415_unsupported_media_type() {
    let server = Server::start().await;
    let id = server.waiting("e1").await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        server
            .post(
                &format!("/callbacks/{id}/complete"),
                content_type,
                "{\"approved\": true}",
            )
            .await
            .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    server.stop().await;
}

#[tokio::test]
async fn requests_after_the_engine_shut_down_are_503_unavailable() {
    let server = Server::start().await;
    let id = server.waiting("e1").await;
    server.engine.shutdown().await;
    server
        .post_json(
            &format!("/callbacks/{id}/complete"),
            &json!({"approved": true}),
        )
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    server.stop().await;
}

#[tokio::test]
async fn an_unreadable_execution_is_422_execution_unreadable() {
    let server = Server::start().await;
    let record = ExecutionRecord {
        status: Status::Suspended,
        position: Some(Position {
            point: 0,
            frame: b"not a frame".to_vec(),
            state: PointState::Waiting { until: START },
        }),
        ..ExecutionRecord::new("broken", "approval", 0, START)
    };
    server.store.create(record, Vec::new()).await.unwrap();
    server
        .get("/executions/broken", Some(TOKEN))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "execution_unreadable");
    server.stop().await;
}

impl Server {
    /// `POST path` with the bearer `token`, if any, and `body` (JSON when not empty).
    async fn post_with_token(&self, path: &str, token: Option<&str>, body: &str) -> Reply {
        let mut request = self.client.post(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if !body.is_empty() {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_owned());
        }
        Reply::of(request.send().await.expect("the request is answered")).await
    }
}

#[tokio::test]
async fn cancel_over_http_with_the_token_stops_the_execution() {
    let server = Server::start().await;
    server.waiting("c1").await;
    server.waiting("c2").await;
    // Without the token: 401, nothing changes.
    let refused = server
        .post_with_token("/executions/c1/cancel", None, "")
        .await;
    refused.error(StatusCode::UNAUTHORIZED, "unauthorized");
    // A body that is not `{"reason": ..}`: 400.
    let bad = server
        .post_with_token("/executions/c1/cancel", Some(TOKEN), r#"{"why": 1}"#)
        .await;
    bad.error(StatusCode::BAD_REQUEST, "invalid_json");
    let record = server.store.load("c1").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Suspended);

    let reply = server
        .post_with_token(
            "/executions/c1/cancel",
            Some(TOKEN),
            r#"{"reason": "duplicate expense"}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({"execution": "c1", "cancelled": true}));
    let record = server.store.load("c1").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Cancelled);
    assert_eq!(record.message.as_deref(), Some("duplicate expense"));
    // Again: it has finished, nothing to do.
    let again = server
        .post_with_token("/executions/c1/cancel", Some(TOKEN), "")
        .await;
    assert_eq!(again.body, json!({"execution": "c1", "cancelled": false}));
    // No body: the default reason.
    let plain = server
        .post_with_token("/executions/c2/cancel", Some(TOKEN), "")
        .await;
    assert_eq!(plain.body["cancelled"], true, "{plain:?}");
    let record = server.store.load("c2").await.unwrap().unwrap();
    assert_eq!(
        record.message.as_deref(),
        Some(durable_http::DEFAULT_CANCEL_REASON)
    );
    let listed = server
        .get("/executions?status=cancelled", Some(TOKEN))
        .await;
    assert_eq!(listed.body["executions"].as_array().unwrap().len(), 2);
    // An unknown execution: 404.
    let unknown = server
        .post_with_token("/executions/nobody/cancel", Some(TOKEN), "")
        .await;
    unknown.error(StatusCode::NOT_FOUND, "execution_not_found");
    server.stop().await;
}
