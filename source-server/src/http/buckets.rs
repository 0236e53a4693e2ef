//! Bucket status and reconcile requests.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ferry_proto::api::BucketList;
use ferry_proto::{SourceKey, SourceKind};

use super::access::{Access, forbidden};
use super::error;
use super::sources::{ReconcileQuery, request_reconcile};
use crate::reconcile::Controller;

fn key(namespace: String, name: String) -> SourceKey {
    SourceKey::of(SourceKind::Bucket, namespace, name)
}

pub(super) async fn list(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
) -> Json<BucketList> {
    let mut buckets = c.buckets();
    buckets.retain(|b| access.sees(&key(b.namespace.clone(), b.name.clone())));
    Json(BucketList { buckets })
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
    match c.bucket(&key) {
        Some(v) => Json(v).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("Bucket {key} not found")),
    }
}

pub(super) async fn reconcile(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<ReconcileQuery>,
) -> Response {
    request_reconcile(&c, &access, key(namespace, name), q)
}
