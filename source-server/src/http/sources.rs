//! Source status and reconcile requests.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ferry_proto::api::SourceList;
use serde_json::json;

use super::access::{Access, forbidden};
use super::error;
use crate::SourceKey;
use crate::reconcile::{Controller, TriggerError};

pub(super) async fn list(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
) -> Json<SourceList> {
    let mut sources = c.sources();
    sources.retain(|v| access.sees(&v.key()));
    Json(SourceList { sources })
}

pub(super) async fn get_one(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let key = SourceKey::new(namespace, name);
    if !access.sees(&key) {
        return forbidden();
    }
    match c.source(&key) {
        Some(v) => Json(v).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("source {key} not found")),
    }
}

/// `?requestedAt=<token>`: echoed in `status.lastHandledReconcileAt` once done (default: now).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReconcileQuery {
    pub(super) requested_at: Option<String>,
}

pub(super) async fn reconcile(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<ReconcileQuery>,
) -> Response {
    request_reconcile(&c, &access, SourceKey::new(namespace, name), q)
}

/// A reconcile request of a GitRepository or a Bucket.
pub(super) fn request_reconcile(
    c: &Controller,
    access: &Access,
    key: SourceKey,
    q: ReconcileQuery,
) -> Response {
    if !access.sees(&key) {
        return forbidden();
    }
    if q.requested_at.as_ref().is_some_and(|t| t.len() > 128) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("reconcile of {key}: requestedAt is longer than 128 bytes"),
        );
    }
    let token = q
        .requested_at
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| chrono::Utc::now().to_rfc3339());
    match c.trigger(&key, &token) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({
                "message": format!("reconcile of {} {key} requested", key.kind),
                "requestedAt": token,
            })),
        )
            .into_response(),
        Err(TriggerError::NotFound) => error(
            StatusCode::NOT_FOUND,
            format!("{} {key} not found", key.kind),
        ),
        Err(TriggerError::InvalidSpec(message)) => error(StatusCode::CONFLICT, message),
        Err(TriggerError::Suspended) => error(
            StatusCode::CONFLICT,
            format!("{} {key} is suspended (spec.suspend: true)", key.kind),
        ),
    }
}

/// Rejected documents; a tenant sees those of its own namespace only.
pub(super) async fn config(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
) -> Response {
    let mut errors = c.config_errors();
    if let Some(ns) = access.tenant() {
        errors.retain(|e| e.object.split('/').nth(1) == Some(ns));
    } else if !access.sees_all() {
        errors.clear();
    }
    Json(json!({ "errors": errors })).into_response()
}
