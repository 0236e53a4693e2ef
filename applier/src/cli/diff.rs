//! `ferry-applier diff`: what the next reconcile of one Kustomization would change, without
//! changing anything. Exit code 0: no changes; 1: changes (like `kubectl diff`); 2: error.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use ferry_applier::apply::ApplyOptions;
use ferry_applier::prune::{entry_id, inventory_of};
use ferry_proto::kustomization::Kustomization;
use kube::Api;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The namespace of the Kustomization (the agent's namespace).
    #[arg(long, env = "FERRY_NAMESPACE")]
    pub namespace: String,
    /// The Kustomization to diff.
    #[arg(long)]
    pub kustomization: String,
    /// Source server base URL, e.g. http://ferry-source-server.ferry-system:9090.
    #[arg(long, env = "FERRY_SOURCE_SERVER")]
    pub source_server: String,
    /// Kubeconfig file; default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account.
    #[arg(long, env = "FERRY_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Artifact cache directory (shared with the agent's when on the same machine).
    #[arg(long, env = "FERRY_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub limits: super::run::LimitArgs,
}

/// Returns whether there are differences.
pub fn run(args: &DiffArgs, out: &mut dyn Write) -> anyhow::Result<bool> {
    super::run::init_logs(super::run::LogFormat::Text);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let ctx = super::run::context(
            &args.namespace,
            &args.source_server,
            args.kubeconfig.as_ref(),
            args.cache_dir.as_ref(),
            args.limits.limits(),
        )
        .await?;
        let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &args.namespace);
        let ks = api
            .get(&args.kustomization)
            .await
            .with_context(|| format!("Kustomization {}/{}", args.namespace, args.kustomization))?;
        let st = ks.status.clone().unwrap_or_default();
        let desired = ferry_applier::reconcile::desired(&ks, &ctx, &st)
            .await
            .map_err(|(e, _)| {
                let e = ferry_applier::reconcile::ReconcileError::from(e);
                anyhow::anyhow!("{}: {e}", e.reason())
            })?;
        writeln!(
            out,
            "Kustomization {}/{} at {} ({})",
            args.namespace, args.kustomization, desired.artifact.revision, desired.artifact.digest
        )?;
        let ids: Vec<_> = desired
            .objects
            .iter()
            .filter_map(|o| ferry_applier::apply::ObjectId::of(o).ok())
            .map(|(id, version)| ferry_applier::apply::Change {
                id,
                version,
                action: ferry_applier::apply::Action::Unchanged,
            })
            .collect();
        let drift = ctx
            .applier
            .drift(desired.objects, &ApplyOptions::default())
            .await?;
        let mut changed = false;
        for d in &drift {
            changed = true;
            if d.missing {
                writeln!(out, "{} created", d.id)?;
            } else {
                writeln!(out, "{} configured: {}", d.id, d.fields.join(", "))?;
            }
        }
        if ks.spec.prune {
            let new = inventory_of(
                &ferry_applier::apply::ChangeSet { changes: ids },
                &args.namespace,
            );
            for e in st.inventory.unwrap_or_default().minus(&new) {
                changed = true;
                writeln!(out, "{} deleted", entry_id(&e, &args.namespace).0)?;
            }
        }
        if !changed {
            writeln!(out, "no changes")?;
        }
        Ok(changed)
    })
}
