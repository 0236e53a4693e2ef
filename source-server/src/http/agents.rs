//! What agents report: their events (`POST /v1/agents/{namespace}/events`) and the state of
//! their namespace (`PUT /v1/agents/{namespace}/status`), and the index of it
//! (`GET /v1/agents`, `GET /v1/agents/{namespace}`). Shapes in `ferry_proto::api`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ferry_proto::api::{AgentList, AgentReport, EventBatch};

use super::access::{Access, forbidden};
use super::error;
use crate::notification::ReportError;
use crate::reconcile::Controller;

pub(super) async fn list(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
) -> Json<AgentList> {
    let mut list = c.agents().list();
    list.agents.retain(|a| access.sees_namespace(&a.namespace));
    Json(list)
}

pub(super) async fn get_one(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
    Path(namespace): Path<String>,
) -> Response {
    if !access.sees_namespace(&namespace) {
        return forbidden();
    }
    match c.agents().get(&namespace) {
        Some(v) => Json(v).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no agent has reported namespace {namespace}"),
        ),
    }
}

pub(super) async fn events(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
    Path(namespace): Path<String>,
    body: Result<Json<EventBatch>, JsonRejection>,
) -> Response {
    // A tenant reports for its own namespace only.
    if !access.sees_namespace(&namespace) {
        return forbidden();
    }
    let batch = match body {
        Ok(Json(b)) => b,
        Err(e) => return rejected(&namespace, e),
    };
    match c.notifications().agent_events(&namespace, batch) {
        Ok(n) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "accepted": n })),
        )
            .into_response(),
        Err(e) => refused(e),
    }
}

pub(super) async fn status(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
    Path(namespace): Path<String>,
    body: Result<Json<AgentReport>, JsonRejection>,
) -> Response {
    if !access.sees_namespace(&namespace) {
        return forbidden();
    }
    let report = match body {
        Ok(Json(r)) => r,
        Err(e) => return rejected(&namespace, e),
    };
    if let Err(message) = crate::notification::check_name(&namespace) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, message);
    }
    match c.agents().report(&namespace, report) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(e),
    }
}

fn rejected(namespace: &str, e: JsonRejection) -> Response {
    error(
        e.status(),
        format!("agent report for namespace {namespace}: {}", e.body_text()),
    )
}

fn refused(e: ReportError) -> Response {
    let status = match e {
        ReportError::TooMany { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ReportError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    };
    error(status, e.to_string())
}
