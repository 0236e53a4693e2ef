//! HelmRepository status, reconcile requests, and chart resolution.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ferry_proto::api::{ChartQuery, HelmChartArtifact, HelmRepositoryList};
use ferry_proto::{SourceKey, SourceKind};
use serde_json::json;

use super::access::{Access, forbidden};
use super::error;
use crate::helm::{FORWARDED_HEADER, Forwarded, ResolveError};
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
    headers: HeaderMap,
    Path((namespace, name, chart)): Path<(String, String, String)>,
    Query(q): Query<ChartQuery>,
) -> Response {
    let key = key(namespace, name);
    if !access.sees(&key) {
        return forbidden();
    }
    let range = q.version.as_deref();
    // With replicas only the repository's poller has its index: ask it (once; a forwarded
    // request is answered here whatever this replica holds). See crate::helm::replicas.
    let holder = c.helm_holder(&key);
    if let Some((holder, url)) = holder.filter(|_| !headers.contains_key(FORWARDED_HEADER)) {
        let authorization = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match c
            .forward_resolve((&holder, &url), &key, &chart, range, authorization)
            .await
        {
            Forwarded::Answer(status, body) if (200..300).contains(&status) => {
                match serde_json::from_slice::<HelmChartArtifact>(&body) {
                    Ok(mut a) => {
                        // Served here too: the holder recorded it before answering.
                        c.follow_helm(&key).await;
                        a.url = c.artifact_url(&a.digest);
                        return Json(a).into_response();
                    }
                    Err(e) => {
                        return registered_or(
                            &c,
                            &key,
                            &chart,
                            range,
                            format!(
                                "replica {holder} answered a resolve of HelmRepository {key} with something else than a chart: {e}"
                            ),
                        );
                    }
                }
            }
            Forwarded::Answer(status, body) if status < 500 => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                return (
                    status,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response();
            }
            Forwarded::Answer(status, body) => {
                let why = String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>();
                return registered_or(
                    &c,
                    &key,
                    &chart,
                    range,
                    format!(
                        "HelmRepository {key} is polled by replica {holder}, which answered {status}: {why}"
                    ),
                );
            }
            Forwarded::Unreachable(message) => {
                return registered_or(&c, &key, &chart, range, message);
            }
        }
    }
    match c.resolve_chart(&key, &chart, range).await {
        Ok(a) => Json(a).into_response(),
        Err(e @ ResolveError::NoIndex { .. }) => {
            registered_or(&c, &key, &chart, range, e.to_string())
        }
        Err(e) => error(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.to_string(),
        ),
    }
}

/// A resolution the repository's record already holds, else 503 with `message`: the chart
/// stays resolvable while the poller is away or has no index yet.
fn registered_or(
    c: &Controller,
    key: &SourceKey,
    chart: &str,
    range: Option<&str>,
    message: String,
) -> Response {
    match c.registered_chart(key, chart, range) {
        Some(a) => Json(a).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, message),
    }
}
