//! The page's agents section: per namespace, each Kustomization and HelmRelease as its agent
//! last reported it (Ready, applied revision, drift, message), with its inventory and its
//! recent events (the history the server heard of) folded below.

use chrono::{DateTime, Utc};
use ferry_proto::ConditionStatus;
use ferry_proto::api::{AgentView, ObjectSummary, ReportedEvent};
use maud::{Markup, html};

use super::age;

/// Events shown per object, newest first.
const HISTORY: usize = 10;

pub(super) fn section(
    agents: &[AgentView],
    events: &[ReportedEvent],
    now: DateTime<Utc>,
) -> Markup {
    html! {
        h2 { "Agents" }
        @if agents.is_empty() {
            p.empty { "No agent has reported yet." }
        } @else {
            table #agents {
                thead { tr {
                    th { "Namespace" } th { "Kind/Name" } th { "Ready" } th { "Applied revision" }
                    th { "Drift" } th { "Message" }
                } }
                tbody {
                    @for a in agents {
                        @for o in &a.objects {
                            (object_row(&a.namespace, o, events, now))
                        }
                    }
                }
            }
        }
    }
}

fn object_row(ns: &str, o: &ObjectSummary, events: &[ReportedEvent], now: DateTime<Utc>) -> Markup {
    let ready = match o.ready {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    };
    let history: Vec<&ReportedEvent> = events
        .iter()
        .rev()
        .filter(|e| {
            let io = &e.event.involved_object;
            io.kind == o.kind && io.name == o.name && io.namespace == ns
        })
        .take(HISTORY)
        .collect();
    let objects: usize = o.inventory.groups.iter().map(|g| g.names.len()).sum();
    html! {
        tr data-object=(format!("{}/{ns}/{}", o.kind, o.name)) {
            td { (ns) }
            td { (o.kind) "/" (o.name) @if o.suspended { " (suspended)" } }
            td.ready.(format!("ready-{ready}")) { (ready) }
            td.revision { code { (o.last_applied_revision.as_deref().unwrap_or("")) } }
            td.drift { @match o.drifted { Some(0) => "none", Some(n) => (n), None => "" } }
            td.message {
                (o.message)
                details {
                    summary { (objects) " objects, " (history.len()) " recent events" }
                    @if !o.inventory.groups.is_empty() {
                        ul.inventory {
                            @for g in &o.inventory.groups {
                                @for n in &g.names {
                                    li { code { (g.kind) " " (g.namespace.as_deref().unwrap_or(ns)) "/" (n) } }
                                }
                            }
                        }
                    }
                    @if !history.is_empty() {
                        ul.history {
                            @for e in &history {
                                li { (age(now, e.event.timestamp)) " ago — " (e.event.reason) ": " (e.event.message) }
                            }
                        }
                    }
                }
            }
        }
    }
}
