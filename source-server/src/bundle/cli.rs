//! The `export`, `import` and `keygen` commands, defined once for `ferry-source-server` and the
//! `ferry` CLI (which flattens the same arguments and calls the same functions): same flags,
//! same help, same output.

use std::path::PathBuf;

use ferry_proto::{ArtifactLimits, limits};

use super::{
    BundleError, ExportOptions, ImportLimits, ImportOptions, SigningKey, VerifyingKey, export,
    generate_key, import,
};
use crate::storage::{Storage, StorageLocation};

/// `export`: write a bundle of the store's sources and artifacts.
#[derive(Clone, Debug, clap::Args)]
pub struct ExportArgs {
    /// The store to export from: a directory, or s3://bucket/prefix (credentials, region and
    /// endpoint from the AWS_* environment variables).
    #[arg(long, env = "FERRY_STORAGE", default_value = "./ferry-data")]
    pub storage: StorageLocation,
    /// Export only this source, as NAMESPACE/NAME (repeatable; default: every source).
    #[arg(long = "source", value_name = "NS/NAME")]
    pub sources: Vec<String>,
    /// Incremental: leave out the artifacts named by this earlier bundle (or its index.json),
    /// which the destination already has.
    #[arg(long, value_name = "BUNDLE_OR_INDEX")]
    pub since: Option<PathBuf>,
    /// Sign the index with this ed25519 private key (a file written by `keygen`).
    #[arg(long, value_name = "KEY_FILE")]
    pub sign_key: Option<PathBuf>,
    /// Where to write the bundle (a tar).
    #[arg(long)]
    pub out: PathBuf,
    /// Largest uncompressed artifact, in bytes (stored artifacts are checked against their
    /// digest on the way out).
    #[arg(long, env = "FERRY_MAX_ARTIFACT_SIZE", default_value_t = limits::DEFAULT_MAX_TOTAL_SIZE)]
    pub max_artifact_size: u64,
}

/// `import`: verify a bundle and add it to a store.
#[derive(Clone, Debug, clap::Args)]
pub struct ImportArgs {
    /// The bundle file.
    pub bundle: PathBuf,
    /// The store to import into: a directory, or s3://bucket/prefix.
    #[arg(long, env = "FERRY_STORAGE", default_value = "./ferry-data")]
    pub storage: StorageLocation,
    /// Refuse the bundle unless its index is signed by this ed25519 public key (a file written
    /// by `keygen`).
    #[arg(long, value_name = "KEY_FILE")]
    pub verify_key: Option<PathBuf>,
    /// Largest bundle file, in bytes.
    #[arg(long, default_value_t = super::import::DEFAULT_MAX_BUNDLE_SIZE)]
    pub max_bundle_size: u64,
    /// Largest uncompressed artifact, in bytes (as the server's flag: what it would serve).
    #[arg(long, env = "FERRY_MAX_ARTIFACT_SIZE", default_value_t = limits::DEFAULT_MAX_TOTAL_SIZE)]
    pub max_artifact_size: u64,
}

/// `keygen`: write an ed25519 key pair for signing bundles.
#[derive(Clone, Debug, clap::Args)]
pub struct KeygenArgs {
    /// Writes PREFIX.key (private, mode 0600) and PREFIX.pub; existing files are not replaced.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
}

/// S3 storage speaks TLS through rustls; the process picks its crypto provider once (a no-op
/// when the binary already did).
fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Runs `export`; returns the lines to print (the identity first).
pub async fn run_export(args: ExportArgs) -> Result<String, BundleError> {
    install_tls_provider();
    let storage = Storage::open(&args.storage)?;
    let opts = ExportOptions {
        sources: args.sources,
        since: args.since,
        sign_key: args.sign_key.as_deref().map(SigningKey::read).transpose()?,
        limits: ArtifactLimits {
            max_total_size: args.max_artifact_size,
            ..ArtifactLimits::default()
        },
    };
    let e = export(&storage, &opts, &args.out).await?;
    Ok(format!(
        "{}\nwrote {}: {} sources, {} artifacts ({} included), {} bytes{}",
        e.identity,
        args.out.display(),
        e.sources,
        e.artifacts,
        e.included,
        e.bytes,
        if e.signed { ", signed" } else { "" }
    ))
}

/// Runs `import`; returns the lines to print (the identity first, then one per source).
pub async fn run_import(args: ImportArgs) -> Result<String, BundleError> {
    install_tls_provider();
    let storage = Storage::open(&args.storage)?;
    let opts = ImportOptions {
        verify_key: args
            .verify_key
            .as_deref()
            .map(VerifyingKey::read)
            .transpose()?,
        limits: ImportLimits {
            max_bundle_size: args.max_bundle_size,
            artifact: ArtifactLimits {
                max_total_size: args.max_artifact_size,
                ..ArtifactLimits::default()
            },
        },
    };
    let i = import(&storage, &args.bundle, &opts).await?;
    let mut out = format!(
        "{}\nimported {} into {}: {} artifacts written, {} already present",
        i.identity,
        args.bundle.display(),
        args.storage,
        i.written,
        i.present
    );
    for (key, artifact, changed) in &i.sources {
        let what = artifact.as_ref().map_or_else(
            || "no artifact".to_string(),
            |a| format!("{} ({})", a.revision, a.digest),
        );
        out.push_str(&format!(
            "\n{} {key}: {what}{}",
            key.kind,
            if *changed { "" } else { ", unchanged" }
        ));
    }
    Ok(out)
}

/// Runs `keygen`; returns the lines to print.
pub fn run_keygen(args: KeygenArgs) -> Result<String, BundleError> {
    let (private, public) = generate_key(&args.out)?;
    Ok(format!(
        "wrote {} (private: --sign-key, keep it secret) and {} (public: --verify-key)",
        private.display(),
        public.display()
    ))
}
