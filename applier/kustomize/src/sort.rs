//! Output order. kustomize's default ("legacy") order puts kinds in a fixed list first
//! (Namespace, CRDs, RBAC, ConfigMaps, Services, workloads…) and webhooks last, everything
//! else by group/version/kind string, then by namespace and name. `sortOptions.order: fifo`
//! keeps the accumulation order; `legacySortOptions` replaces the two lists.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::kustomization::SortOptions;
use crate::resource::{Gvk, ResId, ResMap};

const ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];

const ORDER_LAST: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

fn gvk_string(g: &Gvk) -> String {
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "{}_{}_{}",
        or(&g.group, "~G"),
        or(&g.version, "~V"),
        or(&g.kind, "~K")
    )
}

fn id_string(id: &ResId) -> String {
    let ns = id.namespace.as_deref().unwrap_or("~X");
    let name = if id.name.is_empty() { "~N" } else { &id.name };
    format!("{}|{ns}|{name}", gvk_string(&id.gvk()))
}

/// Is the build ordered by kind (legacy) rather than kept in input order (fifo)?
pub fn is_fifo(opts: &Option<SortOptions>) -> bool {
    opts.as_ref().and_then(|o| o.order.as_deref()) == Some("fifo")
}

/// Sorts in place per `opts` (legacy by default).
pub fn sort(resources: &mut ResMap, opts: &Option<SortOptions>) {
    if is_fifo(opts) {
        return;
    }
    let (first, last): (Vec<String>, Vec<String>) =
        match opts.as_ref().and_then(|o| o.legacy_sort_options.as_ref()) {
            Some(l) => (l.order_first.clone(), l.order_last.clone()),
            None => (
                ORDER_FIRST.iter().map(|s| s.to_string()).collect(),
                ORDER_LAST.iter().map(|s| s.to_string()).collect(),
            ),
        };
    let mut rank: HashMap<String, i64> = HashMap::new();
    for (i, k) in first.iter().enumerate() {
        rank.insert(k.clone(), i as i64 - first.len() as i64);
    }
    for (i, k) in last.iter().enumerate() {
        rank.insert(k.clone(), 1 + i as i64);
    }
    let mut keyed: Vec<(i64, String, String, crate::Resource)> =
        std::mem::take(&mut resources.resources)
            .into_iter()
            .map(|r| {
                let id = r.id();
                (
                    rank.get(&id.kind).copied().unwrap_or(0),
                    gvk_string(&id.gvk()),
                    id_string(&id),
                    r,
                )
            })
            .collect();
    keyed.sort_by(|a, b| match a.0.cmp(&b.0) {
        Ordering::Equal if a.1 != b.1 => a.1.cmp(&b.1),
        Ordering::Equal => a.2.cmp(&b.2),
        o => o,
    });
    resources.resources = keyed.into_iter().map(|k| k.3).collect();
}
