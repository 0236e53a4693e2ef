//! The read-only status page, `GET /`: every source the server mirrors (revision, digest, last
//! artifact, conditions) and every agent that reports to it, server-rendered.
//!
//! One renderer serves both the whole page and, with `?part=content`, the part that changes: the
//! page's little script re-fetches that part whenever the server's own event stream announces an
//! artifact (and every few seconds, for agents' reports), so what the page shows and what a
//! reload shows can never disagree. Everything is inline — no CDN, no external fonts — so the
//! page works air-gapped. Every value is escaped by `maud` (source messages carry text from Git
//! servers and repositories).

mod agents;
pub(super) mod changes;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use ferry_proto::SourceKind;
use ferry_proto::condition::{Condition, ConditionStatus, find_condition};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use super::access::Access;
use crate::SourceKey;
use crate::reconcile::Controller;

const CSS: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// `?part=content` returns only the live part of the page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PageQuery {
    part: Option<String>,
}

pub(super) async fn index(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
    Query(q): Query<PageQuery>,
) -> Response {
    let now = Utc::now();
    let content = content(&c, &access, now);
    if q.part.as_deref() == Some("content") {
        return no_store(Html(content.into_string()));
    }
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Ferry source server" }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "Ferry" }
                div #live { "loading…" }
                div #content { (content) }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    };
    no_store(Html(page.into_string()))
}

/// The page for a viewer without a (valid) token: a form that keeps the token in the
/// `ferry_token` cookie (read requests only; see `access`) and reloads.
pub(super) fn login() -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Ferry source server" }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "Ferry" }
                p { "This server shows each viewer what its Kubernetes token may see. Paste a token (e.g. "
                    code { "kubectl create token NAME --audience ferry-source-server" } "):" }
                form #login {
                    input #token type="password" size="60" autocomplete="off";
                    " "
                    button type="submit" { "Show" }
                }
                script { (PreEscaped(LOGIN_SCRIPT)) }
            }
        }
    };
    let mut resp = no_store(Html(page.into_string()));
    *resp.status_mut() = http::StatusCode::UNAUTHORIZED;
    resp
}

const LOGIN_SCRIPT: &str = r#"document.getElementById("login").addEventListener("submit", function (e) {
  e.preventDefault();
  var t = document.getElementById("token").value.trim();
  document.cookie = "ferry_token=" + encodeURIComponent(t) + "; path=/; SameSite=Strict";
  location.reload();
});"#;

fn no_store(body: impl IntoResponse) -> Response {
    ([(http::header::CACHE_CONTROL, "no-store")], body).into_response()
}

/// The part of the page the script replaces: what the viewer may see.
fn content(c: &Controller, access: &Access, now: DateTime<Utc>) -> Markup {
    let mut sources = c.sources();
    sources.retain(|v| access.sees(&v.key()));
    let mut buckets = c.buckets();
    buckets.retain(|b| access.sees(&SourceKey::of(SourceKind::Bucket, &b.namespace, &b.name)));
    let mut agents = c.agents().list().agents;
    agents.retain(|a| access.sees_namespace(&a.namespace));
    let mut events = c.notifications().recent();
    events.retain(|e| access.sees_namespace(&e.event.involved_object.namespace));
    let mut repositories = c.helm_repositories();
    repositories.retain(|r| {
        access.sees(&SourceKey::of(
            SourceKind::HelmRepository,
            &r.namespace,
            &r.name,
        ))
    });
    html! {
        h2 { "Sources" }
        @if sources.is_empty() && repositories.is_empty() && buckets.is_empty() {
            p.empty { "No sources configured." }
        } @else {
            table #sources {
                thead { tr {
                    th { "Kind" } th { "Namespace/Name" } th { "Ready" } th { "Revision" }
                    th { "Digest" } th { "Artifact since" } th { "Message" }
                } }
                tbody {
                    @for s in &sources {
                        (source_row(
                            &s.kind, &s.namespace, &s.name, &s.status.conditions,
                            s.status.artifact.as_ref().map(|a| (a.revision.to_string(), Some(a.digest.to_string()), Some(a.last_update_time))),
                            now,
                        ))
                    }
                    @for b in &buckets {
                        (source_row(
                            &b.kind, &b.namespace, &b.name, &b.status.conditions,
                            b.status.artifact.as_ref().map(|a| (a.revision.to_string(), Some(a.digest.to_string()), Some(a.last_update_time))),
                            now,
                        ))
                    }
                    @for r in &repositories {
                        (source_row(
                            &r.kind, &r.namespace, &r.name, &r.status.conditions,
                            r.status.artifact.as_ref().map(|a| (a.revision.to_string(), None, None)),
                            now,
                        ))
                    }
                }
            }
        }
        (agents::section(&agents, &events, now))
    }
}

type ArtifactCells = (String, Option<String>, Option<DateTime<Utc>>);

fn source_row(
    kind: &str,
    namespace: &str,
    name: &str,
    conditions: &[Condition],
    artifact: Option<ArtifactCells>,
    now: DateTime<Utc>,
) -> Markup {
    let (revision, digest, since) = artifact.unwrap_or_default();
    html! {
        tr data-source=(format!("{kind}/{namespace}/{name}")) {
            td { (kind) }
            td { (namespace) "/" (name) }
            (ready_cell(conditions))
            td.revision { code { (revision) } }
            td { @if let Some(d) = digest { code { (short_digest(&d)) } } }
            td { @if let Some(t) = since { (age(now, t)) } }
            td.message { (ready_message(conditions)) }
        }
    }
}

fn ready_cell(conditions: &[Condition]) -> Markup {
    let status = find_condition(conditions, "Ready")
        .map(|c| match c.status {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        })
        .unwrap_or("Unknown");
    html! { td.ready.(format!("ready-{status}")) { (status) } }
}

fn ready_message(conditions: &[Condition]) -> String {
    find_condition(conditions, "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// `sha256:` and the first 12 hex digits, as `docker images` shortens ids.
fn short_digest(d: &str) -> &str {
    d.get(..19).unwrap_or(d)
}

/// Like kubectl's AGE column: the largest unit, `45s`, `3m`, `5h`, `2d`.
pub(crate) fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let s = (now - then).num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_the_largest_unit_like_kubectl() {
        let t = DateTime::<Utc>::from_timestamp(1_000_000, 0).expect("valid time");
        let at = |s| t + chrono::Duration::seconds(s);
        assert_eq!(age(at(59), t), "59s");
        assert_eq!(age(at(61), t), "1m");
        assert_eq!(age(at(7200), t), "2h");
        assert_eq!(age(at(3 * 86400), t), "3d");
        assert_eq!(age(t, at(5)), "0s");
    }
}
