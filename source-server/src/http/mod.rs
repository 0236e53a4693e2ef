//! The HTTP API (axum); routes and shapes are documented in `ferry_proto::api`.
//!
//! - `GET /v1/sources`, `GET /v1/sources/{namespace}/{name}`: JSON status
//! - `POST /v1/sources/{namespace}/{name}/reconcile`: 202, reconcile now (409 when suspended)
//! - `GET|HEAD /v1/artifacts/sha256/{hex}`: the `.tar.gz`, immutable, ETag, 304, Range
//! - `GET /v1/events`: server-sent events, see [`crate::events`]
//! - `GET /v1/buckets`, `GET /v1/buckets/{namespace}/{name}`: JSON status; `POST …/reconcile`
//! - `GET /v1/helmrepositories`, `GET /v1/helmrepositories/{namespace}/{name}`: JSON status;
//!   `POST …/reconcile`: fetch the index now
//! - `GET /v1/helmrepositories/{namespace}/{name}/charts/{chart}?version=<range>`: resolve and
//!   pack a chart version
//! - `GET /v1/config`: documents rejected by the last config load
//! - `GET /`: the read-only status page, see [`page`]
//! - `POST /v1/agents/{namespace}/events`, `PUT /v1/agents/{namespace}/status`: what agents
//!   report; `GET /v1/agents`, `GET /v1/agents/{namespace}`: the index of it
//! - `GET /v1/receivers`: webhook receivers (paths and status, never a token)
//! - `POST /hook/{hex}`: a webhook call, see [`hooks`]
//! - `GET /metrics`, `GET /healthz`, `GET /readyz`

pub mod access;
mod agents;
mod artifacts;
mod buckets;
mod events;
mod helm;
mod hooks;
mod page;
mod sources;
pub mod stream;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use ferry_proto::api::MAX_AGENT_BODY;
use serde_json::json;

use crate::reconcile::Controller;

/// The API; with `tenancy`, every route but the probes, metrics and webhook calls needs a token and answers
/// only what it may see ([`access`]).
pub fn router(controller: Controller, tenancy: Option<Arc<access::Tenancy>>) -> Router {
    let open = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        // Webhook senders carry no Kubernetes token: the hook path and signature are the
        // credential.
        .route("/hook/{digest}", post(hooks::call));
    Router::new()
        .route("/", get(page::index))
        .route("/changes", get(page::changes::stream))
        .route("/v1/sources", get(sources::list))
        .route("/v1/sources/{namespace}/{name}", get(sources::get_one))
        .route(
            "/v1/sources/{namespace}/{name}/reconcile",
            post(sources::reconcile),
        )
        .route(
            "/v1/artifacts/sha256/{hex}",
            get(artifacts::get).head(artifacts::get),
        )
        .route("/v1/buckets", get(buckets::list))
        .route("/v1/buckets/{namespace}/{name}", get(buckets::get_one))
        .route(
            "/v1/buckets/{namespace}/{name}/reconcile",
            post(buckets::reconcile),
        )
        .route("/v1/helmrepositories", get(helm::list))
        .route(
            "/v1/helmrepositories/{namespace}/{name}",
            get(helm::get_one),
        )
        .route(
            "/v1/helmrepositories/{namespace}/{name}/reconcile",
            post(helm::reconcile),
        )
        .route(
            "/v1/helmrepositories/{namespace}/{name}/charts/{chart}",
            get(helm::resolve),
        )
        .route("/v1/events", get(events::stream))
        .route("/v1/config", get(sources::config))
        .route("/v1/agents", get(agents::list))
        .route("/v1/agents/{namespace}", get(agents::get_one))
        .route(
            "/v1/agents/{namespace}/events",
            post(agents::events).layer(DefaultBodyLimit::max(MAX_AGENT_BODY)),
        )
        .route(
            "/v1/agents/{namespace}/status",
            put(agents::status).layer(DefaultBodyLimit::max(MAX_AGENT_BODY)),
        )
        .route("/v1/receivers", get(hooks::list))
        .route_layer(axum::middleware::from_fn_with_state(
            tenancy,
            access::authenticate,
        ))
        .merge(open)
        .with_state(controller)
}

/// A JSON error body `{"error": "..."}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

async fn metrics(axum::extract::State(c): axum::extract::State<Controller>) -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        c.metrics().render(),
    )
        .into_response()
}

async fn readyz(axum::extract::State(c): axum::extract::State<Controller>) -> Response {
    if c.is_ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "config not loaded yet").into_response()
    }
}
