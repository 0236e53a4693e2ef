//! `ferry-applier diff`: what the next reconcile of one Kustomization would change, without
//! changing anything. Exit code 0: no changes; 1: changes (like `kubectl diff`); 2: error.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use ferry_applier::preview::preview;
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
    /// A file holding the token sent to the source server (a projected ServiceAccount token
    /// with the source server's audience; re-read as it rotates). Needed when the source server
    /// runs with tenancy (cluster mode).
    #[arg(long, env = "FERRY_SOURCE_TOKEN_FILE")]
    pub source_token_file: Option<PathBuf>,
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
        let ctx = ferry_applier::connect::context(
            &args.namespace,
            Some(&args.source_server),
            args.kubeconfig.as_deref(),
            args.cache_dir.as_deref(),
            args.limits.limits(),
            args.source_token_file.as_deref(),
            None,
        )
        .await?;
        let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &args.namespace);
        let ks = api
            .get(&args.kustomization)
            .await
            .with_context(|| format!("Kustomization {}/{}", args.namespace, args.kustomization))?;
        let p = preview(&ctx, &ks).await?;
        writeln!(
            out,
            "Kustomization {}/{} at {} ({})",
            args.namespace, args.kustomization, p.revision, p.digest
        )?;
        for c in &p.changes {
            writeln!(out, "{c}")?;
        }
        if p.changes.is_empty() {
            writeln!(out, "no changes")?;
        }
        Ok(!p.changes.is_empty())
    })
}
