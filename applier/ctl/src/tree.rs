//! `ferry tree`: what an object applied (its inventory), nested Kustomizations and
//! HelmReleases in the same namespace expanded below themselves.

use std::collections::BTreeSet;

use ferry_proto::kustomization::Inventory;

use crate::kinds::{Applied, Cluster, Target};
use crate::{Global, Outcome};

/// Nesting deeper than this is not expanded (a cycle is caught earlier; this bounds output).
const MAX_DEPTH: usize = 16;

pub async fn run(g: &Global, target: Target, name: &str) -> anyhow::Result<Outcome> {
    let kind = target.applied("tree")?;
    let cluster = Cluster::connect(g).await?;
    println!("{}/{}/{name}", kind.kind(), cluster.namespace);
    let mut seen = BTreeSet::from([(
        kind.kind().to_string(),
        cluster.namespace.clone(),
        name.to_string(),
    )]);
    walk(&cluster, kind, &cluster.namespace, name, "", 0, &mut seen).await?;
    Ok(Outcome::Ok)
}

/// Prints the inventory of `kind ns/name` below `prefix`.
async fn walk(
    cluster: &Cluster,
    kind: Applied,
    ns: &str,
    name: &str,
    prefix: &str,
    depth: usize,
    seen: &mut BTreeSet<(String, String, String)>,
) -> anyhow::Result<()> {
    let obj = serde_json::to_value(cluster.get(kind, name).await?)?;
    let inventory: Inventory = match obj["status"].get("inventory") {
        Some(v) if !v.is_null() => serde_json::from_value(v.clone())?,
        _ => Inventory::default(),
    };
    let objects: Vec<_> = inventory.objects(ns).map(|(o, _)| o).collect();
    for (i, o) in objects.iter().enumerate() {
        let last = i + 1 == objects.len();
        println!("{prefix}{}{o}", if last { "└── " } else { "├── " });
        let nested = match (o.group.as_str(), o.kind.as_str()) {
            ("apply.ferry.dev", "Kustomization") => Some(Applied::Kustomization),
            ("apply.ferry.dev", "HelmRelease") => Some(Applied::HelmRelease),
            _ => None,
        };
        let namespace = o.namespace.clone().unwrap_or_default();
        if let Some(child) = nested
            && namespace == cluster.namespace
            && depth < MAX_DEPTH
            && seen.insert((o.kind.clone(), namespace.clone(), o.name.clone()))
        {
            let below = format!("{prefix}{}", if last { "    " } else { "│   " });
            Box::pin(walk(
                cluster,
                child,
                &namespace,
                &o.name,
                &below,
                depth + 1,
                seen,
            ))
            .await?;
        }
    }
    Ok(())
}
