//! `ferry get`: tables of sources, Kustomizations and HelmReleases, Flux's columns.

use kube::api::ListParams;
use serde_json::Value;

use crate::kinds::{Applied, Cluster, Listing};
use crate::sources::{SourceKind, SourceServer};
use crate::table::{self, age, ready, suspended};
use crate::{Global, Outcome, Output};

pub async fn run(g: &Global, what: Listing, all: bool, output: Output) -> anyhow::Result<Outcome> {
    let mut items: Vec<Value> = Vec::new();
    let mut sections: Vec<(String, Vec<Vec<String>>)> = Vec::new();
    if matches!(what, Listing::Sources | Listing::All) {
        let server = SourceServer::new(g)?;
        let namespace = match &g.namespace {
            Some(ns) => ns.clone(),
            // Sources have no kubeconfig of their own: the default namespace is the context's.
            None if all => String::new(),
            None => Cluster::connect(g).await?.namespace,
        };
        let mut rows = Vec::new();
        for kind in [SourceKind::GitRepository, SourceKind::HelmRepository] {
            for v in server.list(kind).await? {
                let ns = v["namespace"].as_str().unwrap_or_default().to_string();
                if !all && ns != namespace {
                    continue;
                }
                let (status, message) = ready(&v["status"]);
                let mut row = vec![
                    format!(
                        "{}/{}",
                        kind.name().to_lowercase(),
                        v["name"].as_str().unwrap_or_default()
                    ),
                    v["status"]["artifact"]["revision"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    suspended(&v["spec"]),
                    status,
                    message,
                ];
                if all {
                    row.insert(0, ns);
                }
                rows.push(row);
                items.push(v);
            }
        }
        sections.push(("sources".into(), rows));
    }
    if matches!(
        what,
        Listing::Kustomizations | Listing::Helmreleases | Listing::All
    ) {
        let cluster = Cluster::connect(g).await?;
        let kinds: &[Applied] = match what {
            Listing::Kustomizations => &[Applied::Kustomization],
            Listing::Helmreleases => &[Applied::HelmRelease],
            _ => &[Applied::Kustomization, Applied::HelmRelease],
        };
        for &kind in kinds {
            let list = match cluster.api(kind, all).list(&ListParams::default()).await {
                Ok(l) => l,
                // `all` lists what is there: a cluster without the HelmRelease CRD has none.
                Err(kube::Error::Api(e)) if e.code == 404 && what == Listing::All => continue,
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("listing {}s (is the CRD installed?)", kind.kind())));
                }
            };
            let mut rows = Vec::new();
            for o in list {
                let v = serde_json::to_value(&o)?;
                let (status, message) = ready(&v["status"]);
                let revision = v["status"]["lastAppliedRevision"]
                    .as_str()
                    .or(v["status"]["lastAttemptedRevision"].as_str())
                    .unwrap_or_default()
                    .to_string();
                let mut row = vec![
                    o.metadata.name.clone().unwrap_or_default(),
                    revision,
                    suspended(&v["spec"]),
                    status,
                    message,
                    age(v["metadata"]["creationTimestamp"].as_str()),
                ];
                if what == Listing::All {
                    row[0] = format!("{}/{}", kind.kind().to_lowercase(), row[0]);
                }
                if all {
                    row.insert(0, o.metadata.namespace.clone().unwrap_or_default());
                }
                rows.push(row);
                items.push(v);
            }
            sections.push((kind.kind().to_string(), rows));
        }
    }
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&items)?),
        Output::Yaml => {
            for i in &items {
                print!("---\n{}", serde_yaml::to_string(i)?);
            }
        }
        Output::Table => {
            let mut printed = false;
            for (what_kind, rows) in &sections {
                if rows.is_empty() {
                    continue;
                }
                if printed {
                    println!();
                }
                printed = true;
                let mut header = vec!["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"];
                if what_kind != "sources" {
                    header.push("AGE");
                }
                if all {
                    header.insert(0, "NAMESPACE");
                }
                table::print(&header, rows);
            }
            if !printed {
                let scope = if all {
                    "any namespace".to_string()
                } else {
                    format!(
                        "namespace {}",
                        g.namespace.as_deref().unwrap_or("(the context's)")
                    )
                };
                eprintln!("no objects found in {scope}");
            }
        }
    }
    Ok(Outcome::Ok)
}
