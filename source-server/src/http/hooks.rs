//! `POST /hook/<hex>` (webhook calls) and `GET /v1/receivers`.
//!
//! A call is looked up in memory ([`crate::receiver`]); an unknown path is answered 404 with a
//! constant body before anything is read. Then, in order: suspended (503), headers over the
//! limit (431), body over the limit (413) or not received in time (408), authentication (401),
//! an event the receiver does not want or GitHub's `ping` (200, `ignored`), a delivery id seen
//! within the replay window (200, `duplicate`), over the rate (429 with `Retry-After`), and
//! finally the sources are asked to fetch (200, or 500 naming what could not be asked).
//! Asking is cheap and coalesces: a source that is fetching when asked fetches once more
//! afterwards, however often it was asked meanwhile.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::{Bytes, BytesMut};
use ferry_proto::api::{HookOutcome, HookReply, ReceiverList};
use ferry_proto::{ReceiverType, SourceKind};
use futures::StreamExt as _;

use super::access::Access;
use crate::receiver::{Admission, HookLimits, MAX_DELIVERY_ID, verify};
use crate::reconcile::{Controller, TriggerError};

/// A tenant sees its own namespace's receivers only — not those of shared namespaces: a
/// hook path is a credential for the sources it fetches.
pub(super) async fn list(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
) -> Json<ReceiverList> {
    let mut receivers = c.receivers();
    receivers.retain(|r| access.sees_namespace(&r.namespace));
    Json(ReceiverList { receivers })
}

/// The same answer for every unknown path, so it tells nothing about which paths exist.
const NOT_FOUND_BODY: &str = "no receiver at this path\n";

pub(super) async fn call(
    State(c): State<Controller>,
    Path(digest): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("{}{digest}", ferry_proto::receiver::WEBHOOK_PATH_PREFIX);
    let Some(entry) = c.hook(&path) else {
        c.metrics().hook_unknown();
        return (StatusCode::NOT_FOUND, NOT_FOUND_BODY).into_response();
    };
    let r = &entry.desired;
    let name = format!("Receiver {}/{}", r.key.namespace_or_empty(), r.key.name);
    let full = |outcome: HookOutcome,
                message: String,
                triggered: Vec<String>,
                requested_at: Option<String>| {
        c.metrics().hook(&r.key, outcome);
        let status = match outcome {
            HookOutcome::Accepted | HookOutcome::Ignored | HookOutcome::Duplicate => StatusCode::OK,
            HookOutcome::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            HookOutcome::Unauthorized => StatusCode::UNAUTHORIZED,
            HookOutcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HookOutcome::BadRequest => StatusCode::BAD_REQUEST,
            HookOutcome::Suspended => StatusCode::SERVICE_UNAVAILABLE,
            HookOutcome::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        };
        match outcome {
            HookOutcome::Accepted => {
                tracing::info!(receiver = %r.key, sources = ?triggered, "webhook accepted");
            }
            HookOutcome::Ignored | HookOutcome::Duplicate => {
                tracing::debug!(receiver = %r.key, %message, "webhook ignored");
            }
            _ => tracing::warn!(receiver = %r.key, %message, "webhook refused"),
        }
        let reply = HookReply {
            outcome,
            message,
            triggered,
            requested_at,
        };
        (status, Json(reply)).into_response()
    };
    let answer = |outcome, message, triggered| full(outcome, message, triggered, None);
    let limits = c.hook_limits();
    if r.spec.suspend {
        return answer(
            HookOutcome::Suspended,
            format!("{name} is suspended (spec.suspend: true)"),
            vec![],
        );
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > limits.max_header_bytes {
        c.metrics().hook(&r.key, HookOutcome::BadRequest);
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "{name}: headers are {header_bytes} bytes, the limit is {}\n",
                limits.max_header_bytes
            ),
        )
            .into_response();
    }
    let body = match read_body(body, &headers, limits).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let message = format!("{name}: the body is over {} bytes", limits.max_body);
            return answer(HookOutcome::TooLarge, message, vec![]);
        }
        Err(BodyError::Timeout) => {
            c.metrics().hook(&r.key, HookOutcome::BadRequest);
            let message = format!(
                "{name}: the body was not received within {:?}\n",
                limits.read_timeout
            );
            return (StatusCode::REQUEST_TIMEOUT, message).into_response();
        }
        Err(BodyError::Read(e)) => {
            let message = format!("{name}: reading the body: {e}");
            return answer(HookOutcome::BadRequest, message, vec![]);
        }
    };
    let ty = r.spec.type_;
    if let Err(e) = verify::verify(ty, &r.token.0, &headers, &body) {
        return answer(HookOutcome::Unauthorized, format!("{name}: {e}"), vec![]);
    }
    let event_header = match ty {
        ReceiverType::Github => Some("x-github-event"),
        ReceiverType::Gitlab => Some("x-gitlab-event"),
        ReceiverType::Generic | ReceiverType::GenericHmac => None,
    };
    if let Some(h) = event_header {
        let event = headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("");
        if ty == ReceiverType::Github && event == "ping" {
            let message = format!("{name}: ping answered; nothing to fetch");
            return answer(HookOutcome::Ignored, message, vec![]);
        }
        let events = &r.spec.events;
        if !events.is_empty() && !events.iter().any(|e| e.eq_ignore_ascii_case(event)) {
            let message = format!(
                "{name}: event {:?} is not in spec.events {events:?}; nothing to fetch",
                truncate(event)
            );
            return answer(HookOutcome::Ignored, message, vec![]);
        }
    }
    let delivery_header = match ty {
        ReceiverType::Github => Some("x-github-delivery"),
        ReceiverType::Gitlab => Some("x-gitlab-event-uuid"),
        ReceiverType::GenericHmac => Some("x-delivery-id"),
        ReceiverType::Generic => None,
    };
    let delivery = match delivery_header.and_then(|h| headers.get(h).map(|v| (h, v))) {
        None => None,
        Some((h, v)) => match v.to_str() {
            Ok(id) if !id.is_empty() && id.len() <= MAX_DELIVERY_ID => Some(id),
            _ => {
                let message =
                    format!("{name}: {h} is not a delivery id (1 to {MAX_DELIVERY_ID} characters)");
                return answer(HookOutcome::BadRequest, message, vec![]);
            }
        },
    };
    match entry.admit(delivery, limits) {
        Admission::Admitted => {}
        Admission::Duplicate(ago) => {
            let message = format!(
                "{name}: delivery {:?} was already handled {}s ago (replay window {}s); \
                 nothing triggered again",
                delivery.unwrap_or_default(),
                ago.as_secs(),
                limits.replay_window.as_secs()
            );
            return answer(HookOutcome::Duplicate, message, vec![]);
        }
        Admission::Limited(wait) => {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let message = format!(
                "{name}: over the rate of {} calls per second (burst {}); retry in {secs}s",
                limits.per_second, limits.burst
            );
            let mut resp = answer(HookOutcome::RateLimited, message, vec![]);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            return resp;
        }
    }
    let requested_at = chrono::Utc::now().to_rfc3339();
    let (mut triggered, mut failed, mut skipped) = (vec![], vec![], vec![]);
    for key in &r.targets {
        let target = format!("{}/{key}", key.kind);
        let result = match key.kind {
            SourceKind::HelmRepository => c.trigger_helm(key),
            _ => c.trigger(key, &requested_at),
        };
        match result {
            Ok(()) => triggered.push(target),
            Err(TriggerError::Suspended) => skipped.push(format!("{target} (suspended)")),
            Err(TriggerError::NotFound) => failed.push(format!("{target} does not exist")),
            Err(TriggerError::InvalidSpec(m)) => failed.push(m),
        }
    }
    let mut message = format!("{name}: {} source(s) asked to fetch", triggered.len());
    if !skipped.is_empty() {
        message.push_str(&format!("; skipped: {}", skipped.join(", ")));
    }
    if !failed.is_empty() {
        message.push_str(&format!("; failed: {}", failed.join("; ")));
        return full(HookOutcome::Failed, message, triggered, Some(requested_at));
    }
    full(
        HookOutcome::Accepted,
        message,
        triggered,
        Some(requested_at),
    )
}

enum BodyError {
    TooLarge,
    Timeout,
    Read(axum::Error),
}

/// The body, at most `max_body` bytes, within `read_timeout`. A body over the limit is still
/// read and discarded up to twice the limit (a declared `Content-Length` beyond that is refused
/// before reading), so that a sender still writing gets the 413 instead of a reset connection;
/// beyond that the connection is cut.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limits: &HookLimits,
) -> Result<Bytes, BodyError> {
    let drain_limit = limits.max_body.saturating_mul(2);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > drain_limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf = BytesMut::new();
        let mut seen = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(BodyError::Read)?;
            seen = seen.saturating_add(chunk.len());
            if seen > drain_limit {
                return Err(BodyError::TooLarge);
            }
            if seen <= limits.max_body {
                buf.extend_from_slice(&chunk);
            }
        }
        if seen > limits.max_body {
            return Err(BodyError::TooLarge);
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(limits.read_timeout, read)
        .await
        .map_err(|_| BodyError::Timeout)?
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}
