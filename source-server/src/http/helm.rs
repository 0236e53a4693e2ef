//! HelmRepository status, reconcile requests, and chart resolution.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ferry_proto::api::{ChartQuery, HelmRepositoryList};
use ferry_proto::{SourceKey, SourceKind};
use serde_json::json;

use super::access::{Access, forbidden};
use super::error;
use crate::reconcile::{Controller, TriggerError};

fn key(namespace: String, name: String) -> SourceKey {
    SourceKey::of(SourceKind::HelmRepository, namespace, name)
}

pub(super) async fn list(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
) -> Json<HelmRepositoryList> {
    let mut repositories = c.helm_repositories();
    repositories.retain(|v| access.sees(&key(v.namespace.clone(), v.name.clone())));
    Json(HelmRepositoryList { repositories })
}

pub(super) async fn get_one(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let key = key(namespace, name);
    if !access.sees(&key) {
        return forbidden();
    }
    match c.helm_repository(&key) {
        Some(v) => Json(v).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("HelmRepository {key} not found"),
        ),
    }
}

pub(super) async fn reconcile(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let key = key(namespace, name);
    if !access.sees(&key) {
        return forbidden();
    }
    match c.trigger_helm(&key) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({ "message": format!("reconcile of HelmRepository {key} requested") })),
        )
            .into_response(),
        Err(TriggerError::Suspended) => error(
            StatusCode::CONFLICT,
            format!("HelmRepository {key} is suspended (spec.suspend: true)"),
        ),
        Err(TriggerError::InvalidSpec(message)) => error(StatusCode::CONFLICT, message),
        Err(TriggerError::NotFound) => error(
            StatusCode::NOT_FOUND,
            format!("HelmRepository {key} not found"),
        ),
    }
}

pub(super) async fn resolve(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
    Path((namespace, name, chart)): Path<(String, String, String)>,
    Query(q): Query<ChartQuery>,
) -> Response {
    let key = key(namespace, name);
    if !access.sees(&key) {
        return forbidden();
    }
    match c.resolve_chart(&key, &chart, q.version.as_deref()).await {
        Ok(a) => Json(a).into_response(),
        Err(e) => error(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.to_string(),
        ),
    }
}
