//! One delivery attempt: an event encoded for a Provider's type and posted to its address.
//!
//! - `generic`: the event as JSON (Flux's event shape), header `Gotk-Component: <reporting
//!   controller>`, plus the Secret's `headers`;
//! - `generic-hmac`: the same, and `X-Signature: sha256=<hex HMAC-SHA256 of the body>` keyed by
//!   the Secret's `token`, so the receiver can check who sent it;
//! - `slack`: Flux's Slack message — one attachment coloured `good`/`danger` by severity,
//!   author `<kind>/<name>.<namespace>`, the message as text, each metadata entry a field;
//!   `username` (default the reporting controller) and `channel`; with a `token`, `Authorization:
//!   Bearer` and, for `chat.postMessage`, Slack's `"ok": false` counted as a failure.
//!
//! Redirects are not followed (the address is what the operator configured). Only the start of
//! a response is read.

use std::time::Duration;

use ferry_proto::ProviderType;
use ferry_proto::api::{Event, Severity};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::config::alerts::DesiredProvider;

/// Slack's API endpoint, whose answers are 200 with `"ok": false` on errors.
const SLACK_POST_MESSAGE: &str = "https://slack.com/api/chat.postMessage";

/// Most of a response read (error text, Slack's answer).
const MAX_RESPONSE: usize = 64 << 10;

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No answer: connection refused or reset, DNS, or the Provider's timeout.
    #[error("Provider {provider}: {address}: {why}")]
    Transport {
        /// `namespace/name`.
        provider: String,
        /// Where it was sent.
        address: String,
        /// The failure, with its causes.
        why: String,
    },
    /// The receiver answered with an error status.
    #[error("Provider {provider}: {address}: HTTP {status}: {body}")]
    Status {
        /// `namespace/name`.
        provider: String,
        /// Where it was sent.
        address: String,
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// Slack answered `"ok": false`.
    #[error("Provider {provider}: Slack refused the message: {error}")]
    Slack {
        /// `namespace/name`.
        provider: String,
        /// Slack's `error`.
        error: String,
    },
}

impl DeliveryError {
    /// Trying again may help: no answer, a server error, or "too many requests".
    pub fn retryable(&self) -> bool {
        match self {
            DeliveryError::Transport { .. } => true,
            DeliveryError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            DeliveryError::Slack { .. } => false,
        }
    }
}

/// The HTTP client of all deliveries.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with a connect timeout and no redirects can be built")
}

/// `sha256=<hex>` of `body` keyed by `key`: the `X-Signature` of `generic-hmac`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The body a Provider of `type_` posts for `event`.
pub fn body(p: &DesiredProvider, event: &Event) -> Vec<u8> {
    let value = match p.type_ {
        ProviderType::Generic | ProviderType::GenericHmac => json!(event),
        ProviderType::Slack => slack(p, event),
    };
    serde_json::to_vec(&value).expect("JSON values serialize")
}

fn slack(p: &DesiredProvider, event: &Event) -> serde_json::Value {
    let color = match event.severity {
        Severity::Error => "danger",
        Severity::Info => "good",
    };
    let obj = &event.involved_object;
    let fields: Vec<_> = event
        .metadata
        .iter()
        .map(|(k, v)| json!({"title": k, "value": v, "short": false}))
        .collect();
    let mut payload = json!({
        "username": p.username.clone().unwrap_or_else(|| event.reporting_controller.clone()),
        "icon_url": "",
        "icon_emoji": "",
        "attachments": [{
            "color": color,
            "author_name": format!("{}/{}.{}", obj.kind.to_lowercase(), obj.name, obj.namespace),
            "text": event.message,
            "mrkdwn_in": ["text"],
            "fields": fields,
        }],
    });
    if let Some(channel) = &p.channel {
        payload["channel"] = json!(channel);
    }
    payload
}

/// Posts `event` through `p` once, within `p.timeout`.
pub async fn send(
    http: &reqwest::Client,
    p: &DesiredProvider,
    event: &Event,
) -> Result<(), DeliveryError> {
    let provider = p.key.to_string();
    let body = body(p, event);
    let mut req = http
        .post(&p.address)
        .timeout(p.timeout)
        .header(http::header::CONTENT_TYPE, "application/json");
    for (name, value) in &p.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    match p.type_ {
        ProviderType::Generic => {
            req = req.header("Gotk-Component", &event.reporting_controller);
        }
        ProviderType::GenericHmac => {
            let key = p.token.as_ref().map(|t| t.0.as_slice()).unwrap_or_default();
            req = req
                .header("Gotk-Component", &event.reporting_controller)
                .header("X-Signature", signature(key, &body));
        }
        ProviderType::Slack => {
            if let Some(token) = &p.token {
                let token = String::from_utf8_lossy(&token.0);
                req = req.bearer_auth(token.trim());
            }
        }
    }
    let transport = |e: reqwest::Error| DeliveryError::Transport {
        provider: provider.clone(),
        address: p.address.clone(),
        why: crate::helm::fetch::error_chain(&e),
    };
    let mut resp = req.body(body).send().await.map_err(transport)?;
    let status = resp.status();
    let mut answer = Vec::new();
    while answer.len() < MAX_RESPONSE {
        match resp.chunk().await {
            Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
            // The status is what counts; a body cut short does not change it.
            Ok(None) | Err(_) => break,
        }
    }
    if !status.is_success() {
        return Err(DeliveryError::Status {
            provider,
            address: p.address.clone(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&answer[..answer.len().min(512)]).into_owned(),
        });
    }
    if p.type_ == ProviderType::Slack && p.address == SLACK_POST_MESSAGE {
        let ok: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
        if ok.get("ok") != Some(&json!(true)) {
            return Err(DeliveryError::Slack {
                provider,
                error: ok
                    .get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("no `ok` in the answer")
                    .to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerts::{ObjectKey, Token};
    use ferry_proto::api::InvolvedObject;

    fn provider(type_: ProviderType) -> DesiredProvider {
        DesiredProvider {
            key: ObjectKey {
                namespace: "team-a".into(),
                name: "hook".into(),
            },
            type_,
            address: "http://127.0.0.1:1/".into(),
            channel: Some("ops".into()),
            username: None,
            token: Some(Token(b"secret".to_vec())),
            headers: vec![],
            timeout: Duration::from_secs(1),
            suspend: false,
        }
    }

    fn event() -> Event {
        Event {
            involved_object: InvolvedObject {
                kind: "Kustomization".into(),
                namespace: "team-a".into(),
                name: "app".into(),
                ..Default::default()
            },
            severity: Severity::Error,
            timestamp: chrono::Utc::now(),
            message: "kustomize build failed".into(),
            reason: "BuildFailed".into(),
            metadata: [("revision".to_string(), "main@sha1:abc".to_string())].into(),
            reporting_controller: "ferry-applier".into(),
            reporting_instance: String::new(),
        }
    }

    #[test]
    fn the_signature_is_the_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn slack_gets_flux_s_attachment() {
        let slack: serde_json::Value =
            serde_json::from_slice(&body(&provider(ProviderType::Slack), &event())).expect("json");
        assert_eq!(slack["channel"], "ops");
        assert_eq!(slack["username"], "ferry-applier");
        let a = &slack["attachments"][0];
        assert_eq!(a["color"], "danger");
        assert_eq!(a["author_name"], "kustomization/app.team-a");
        assert_eq!(a["text"], "kustomize build failed");
        assert_eq!(a["fields"][0]["title"], "revision");
        let generic: serde_json::Value =
            serde_json::from_slice(&body(&provider(ProviderType::Generic), &event()))
                .expect("json");
        assert_eq!(generic["involvedObject"]["name"], "app");
        assert_eq!(generic["severity"], "error");
    }

    #[test]
    fn only_answers_that_may_change_are_retried() {
        let status = |status| DeliveryError::Status {
            provider: "p".into(),
            address: "a".into(),
            status,
            body: String::new(),
        };
        assert!(status(500).retryable() && status(503).retryable() && status(429).retryable());
        assert!(!status(400).retryable() && !status(404).retryable());
    }
}
