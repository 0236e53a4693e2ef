//! `ferry-applier helm-template RELEASE CHART_DIR`: render a chart directory exactly as the
//! agent renders a HelmRelease (the chart read through the artifact checks, values merged like
//! `valuesFrom`, the real `helm template` under the agent's limits, hooks split out, tenancy,
//! labels) and print what the agent would apply, one JSON object per line:
//! `{"part": "crd"|"hook"|"object"|"cluster-scoped", "object": {...}}`. `cluster-scoped` are
//! objects the agent refuses (it may only apply objects in its namespace), printed as rendered.
//! What `applier/bench/helm-conformance.sh` compares with `helm template`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use ferry_applier::helm::desired::{Assemble, ClusterScoped, assemble};
use ferry_applier::helm::{HelmConfig, render, values};
use ferry_applier::render::{Scope, ScopeResolver};
use ferry_proto::helmrelease::CrdsPolicy;
use serde_json::{Map, Value, json};

#[derive(Debug, clap::Args)]
pub struct HelmTemplateArgs {
    /// Release name (`helm template`'s first argument).
    pub release: String,
    /// The chart's directory (with Chart.yaml; dependencies vendored in charts/).
    pub chart: PathBuf,
    /// The release's (and agent's) namespace.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Values files, merged in order as `valuesFrom` entries are.
    #[arg(long = "values", short = 'f')]
    pub values: Vec<PathBuf>,
    /// `--kube-version` for helm (the agent passes the API server's).
    #[arg(long, default_value = "v1.35.2")]
    pub kube_version: String,
    /// `--api-versions` for helm, comma-separated (the agent passes discovery's).
    #[arg(long, value_delimiter = ',')]
    pub api_versions: Vec<String>,
    /// CRD policy of `crds/` (`install.crds`).
    #[arg(long, default_value = "Create", value_parser = parse_crds)]
    pub crds: CrdsPolicy,
    /// The `helm` binary (v4).
    #[arg(long, env = "FERRY_HELM", default_value = "helm")]
    pub helm_binary: PathBuf,
    /// How long helm may run (`spec.timeout`), seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

fn parse_crds(s: &str) -> Result<CrdsPolicy, String> {
    serde_json::from_value(json!(s)).map_err(|_| format!("{s:?}: Skip, Create or CreateReplace"))
}

/// Offline scopes: Kubernetes' built-in kinds; other custom resources than the chart's own
/// (which [`assemble`] knows from `crds/`) count as namespaced.
struct BuiltinScopes;

impl ScopeResolver for BuiltinScopes {
    fn scope(&self, api_version: &str, kind: &str) -> Option<Scope> {
        let group = ferry_proto::GroupVersion::parse(api_version).group;
        Some(ferry_proto::gvk::builtin_scope(group, kind).unwrap_or(Scope::Namespaced))
    }
}

pub fn run(args: &HelmTemplateArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let tree = read_chart(&args.chart)?;
    let mut merged = Map::new();
    for f in &args.values {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        values::merge(
            &mut merged,
            values::parse_yaml(&f.display().to_string(), &text)?,
        );
    }
    let launcher = std::env::current_exe().context("locating ferry-applier's own binary")?;
    let config = HelmConfig::new(super::run::resolve_helm(&args.helm_binary), launcher);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let text = rt.block_on(render::template(
        &config,
        &render::Request {
            tree: &tree,
            chart_dir: "",
            release: &args.release,
            namespace: &args.namespace,
            values: &merged,
            kube_version: &args.kube_version,
            api_versions: &args.api_versions,
            is_upgrade: false,
            timeout: Duration::from_secs(args.timeout),
            lookup: false,
        },
    ))?;
    let a = assemble(
        &Assemble {
            text: &text,
            tree: &tree,
            chart_dir: "",
            values: &merged,
            post_renderers: &[],
            crds: args.crds,
            namespace: &args.namespace,
            release: &args.release,
            owner: &ferry_applier::helm::owner(&args.release),
            cluster_scoped: ClusterScoped::SetAside,
        },
        &BuiltinScopes,
    )
    .map_err(anyhow::Error::msg)?;
    let parts = a
        .crds
        .iter()
        .map(|o| ("crd", serde_json::to_value(o)))
        .chain(
            a.hook_objects
                .iter()
                .map(|o| ("hook", serde_json::to_value(o))),
        )
        .chain(
            a.objects
                .iter()
                .map(|o| ("object", serde_json::to_value(o))),
        )
        .chain(
            a.cluster_scoped
                .iter()
                .map(|o| ("cluster-scoped", Ok(o.clone()))),
        );
    for (part, object) in parts {
        let object: Value = object.context("serialising an object")?;
        serde_json::to_writer(&mut *out, &json!({"part": part, "object": object}))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// The chart directory as an artifact: packed into a tar and read back through the same
/// checks as a downloaded artifact (paths, entry types, sizes).
fn read_chart(dir: &Path) -> anyhow::Result<ferry_applier::fetch::ArtifactTree> {
    if !dir.join("Chart.yaml").is_file() {
        anyhow::bail!("{}: no Chart.yaml", dir.display());
    }
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(true);
    b.append_dir_all(".", dir)
        .with_context(|| format!("reading chart {}", dir.display()))?;
    let tar = b.into_inner().context("packing the chart")?;
    let digest = ferry_proto::Digest::of(&tar);
    ferry_applier::fetch::ArtifactTree::from_reader(
        digest,
        std::io::Cursor::new(tar),
        &ferry_proto::ArtifactLimits::default(),
    )
    .with_context(|| format!("chart {}", dir.display()))
}
