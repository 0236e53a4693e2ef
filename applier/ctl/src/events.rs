//! `ferry events`: the Kubernetes Events about Ferry's objects, oldest first, `flux events`'
//! columns.

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;

use crate::kinds::Cluster;
use crate::table::{self, age, first_line};
use crate::{Global, Outcome};

/// Kinds whose Events are Ferry's.
const KINDS: &[&str] = &[
    "Kustomization",
    "HelmRelease",
    "GitRepository",
    "HelmRepository",
];

pub async fn run(g: &Global, for_object: Option<&str>, all: bool) -> anyhow::Result<Outcome> {
    let filter = match for_object {
        Some(s) => {
            let Some((kind, name)) = s.split_once('/') else {
                anyhow::bail!("--for {s:?}: expected Kind/name, e.g. Kustomization/app");
            };
            Some((kind.to_ascii_lowercase(), name.to_string()))
        }
        None => None,
    };
    let cluster = Cluster::connect(g).await?;
    let api: Api<Event> = if all {
        Api::all(cluster.client.clone())
    } else {
        Api::namespaced(cluster.client.clone(), &cluster.namespace)
    };
    let mut events: Vec<Event> = api
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|e| {
            let kind = e.involved_object.kind.as_deref().unwrap_or_default();
            let name = e.involved_object.name.as_deref().unwrap_or_default();
            KINDS.contains(&kind)
                && filter
                    .as_ref()
                    .is_none_or(|(k, n)| kind.eq_ignore_ascii_case(k) && name == n)
        })
        .collect();
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
            .unwrap_or_default()
    };
    events.sort_by_key(when);
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let mut row = vec![
                age(Some(&when(e))),
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                format!(
                    "{}/{}",
                    e.involved_object.kind.as_deref().unwrap_or_default(),
                    e.involved_object.name.as_deref().unwrap_or_default()
                ),
                first_line(e.message.as_deref().unwrap_or_default()),
            ];
            if let Some(n) = e.count.filter(|n| *n > 1) {
                row[2] = format!("{} (x{n})", row[2]);
            }
            if all {
                row.insert(0, e.metadata.namespace.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    let mut header = vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"];
    if all {
        header.insert(0, "NAMESPACE");
    }
    table::print(&header, &rows);
    Ok(Outcome::Ok)
}
