//! `ferry diff kustomization NAME`, `ferry build kustomization NAME` and `ferry build DIR`: the
//! agent's own code paths ([`ferry_applier::preview`], [`ferry_applier::reconcile::desired`],
//! the native kustomize engine), run from the user's machine.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use ferry_kustomize::LoadRestrictor;
use ferry_proto::kustomization::Kustomization;
use kube::Api;

use crate::kinds::{Applied, Target};
use crate::{Global, Outcome};

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// `kustomization` (then NAME), or a directory holding kustomization.yaml.
    pub what: String,
    /// The Kustomization to build, with `kustomization`.
    pub name: Option<String>,
    /// For a directory: the build root no path may leave [default: the enclosing Git work
    /// tree, else /].
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// For a directory: LoadRestrictionsRootOnly or LoadRestrictionsNone.
    #[arg(long, default_value = "LoadRestrictionsRootOnly")]
    pub load_restrictor: LoadRestrictor,
}

/// The agent's reconcile context for the Kustomization's namespace, and the Kustomization.
async fn context(
    g: &Global,
    name: &str,
) -> anyhow::Result<(ferry_applier::reconcile::Context, Kustomization)> {
    let Some(server) = g.source_server.as_deref() else {
        bail!(
            "the artifact comes from the source server: pass --source-server URL or set FERRY_SOURCE_SERVER"
        );
    };
    let cluster = crate::kinds::Cluster::connect(g).await?;
    let ctx = ferry_applier::connect::context(
        &cluster.namespace,
        Some(server),
        g.kubeconfig.as_deref(),
        g.cache_dir.as_deref(),
        ferry_proto::ArtifactLimits::default(),
        std::env::var_os("FERRY_SOURCE_TOKEN_FILE")
            .map(std::path::PathBuf::from)
            .as_deref(),
        None,
    )
    .await?;
    let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &cluster.namespace);
    let ks = api
        .get(name)
        .await
        .with_context(|| format!("Kustomization {}/{name}", cluster.namespace))?;
    Ok((ctx, ks))
}

pub async fn diff(g: &Global, target: Target, name: &str) -> anyhow::Result<Outcome> {
    if target.applied("diff")? != Applied::Kustomization {
        bail!("diff works on kustomization");
    }
    let (ctx, ks) = context(g, name).await?;
    let p = ferry_applier::preview::preview(&ctx, &ks).await?;
    eprintln!(
        "► Kustomization {}/{name} at {} ({})",
        ctx.namespace, p.revision, p.digest
    );
    for c in &p.changes {
        println!("{c}");
    }
    if p.changes.is_empty() {
        eprintln!("✔ no changes");
        Ok(Outcome::Ok)
    } else {
        Ok(Outcome::NotReady)
    }
}

pub async fn build(g: &Global, args: &BuildArgs) -> anyhow::Result<Outcome> {
    let cluster_build = matches!(args.what.as_str(), "kustomization" | "ks") && args.name.is_some();
    if !cluster_build {
        if let Some(extra) = &args.name {
            bail!(
                "build DIR takes one argument (got {extra:?} too); for a Kustomization: build kustomization NAME"
            );
        }
        let (yaml, warnings) = ferry_kustomize::cli::build_dir(
            std::path::Path::new(&args.what),
            args.root.as_deref(),
            args.load_restrictor,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        for w in warnings {
            eprintln!("{w}");
        }
        print!("{yaml}");
        return Ok(Outcome::Ok);
    }
    let name = args.name.as_deref().expect("checked by cluster_build");
    let (ctx, ks) = context(g, name).await?;
    let st = ks.status.clone().unwrap_or_default();
    let desired = ferry_applier::reconcile::desired(&ks, &ctx, &st)
        .await
        .map_err(|(e, _)| {
            let e = ferry_applier::reconcile::ReconcileError::from(e);
            anyhow::anyhow!("{}: {e}", e.reason())
        })?;
    eprintln!(
        "► Kustomization {}/{name} at {}",
        ctx.namespace, desired.artifact.revision
    );
    for o in &desired.objects {
        print!("---\n{}", serde_yaml::to_string(o)?);
    }
    Ok(Outcome::Ok)
}
