//! Shared harness of the `e2e_*` tests: a real Git upstream, the real source server and agent
//! binaries as separate processes, and a Kubernetes API: the test server by default, the real
//! control plane ([`RealCluster`]) with `FERRY_CLUSTER=real` (each test gets its own). Tests that
//! need what only the test server has (fault injection, request audit) ask for it with
//! [`Env::on_test_server`].
//!
//! The binaries must be built first (`cargo build -p ferry-applier -p ferry-source-server`);
//! they are looked up next to the test executable (or in `FERRY_BIN_DIR`), and a missing or
//! stale binary fails the test with that command in the message — never a silent skip.
//!
//! **Waiting.** Wait for what the action itself produces, never for a state that may hold from
//! before it (CI runs on a loaded 2-core machine, where every window opens sometimes):
//! - A Git push does not change the generation, and `Ready=True` (`ReconciliationSucceeded`,
//!   `UpgradeSucceeded`) stays from the previous revision until the new one is recorded: wait
//!   for `lastAppliedRevision` / `lastAttemptedRevision` of the pushed commit, or a new
//!   HelmRelease `history[0]`. Any `Ready=False` may also be an earlier failure (e.g.
//!   `ArtifactFailed` before the source server had an artifact): wait for the reason meant.
//! - The agent writes a successful reconcile's status last (objects, prune and its Event come
//!   first), but a failure's status *before* its Warning Event: wait for the Event itself.
//! - The source server publishes an artifact in its status before it counts that reconcile in
//!   its metrics; a metric threshold is relative to a value read after the earlier step.

#![allow(dead_code)]

pub mod sources;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use ferry_proto::helmrelease::HelmRelease;
use ferry_proto::kustomization::Kustomization;
use ferry_testcluster::audit::Audit;
use ferry_testcluster::cluster::{ClusterOptions, TestCluster};
use ferry_testcluster::faults::Faults;
use ferry_tests::realcluster::{self, RealCluster};
use ferry_tests::upstream::Upstream;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt, ResourceExt};
use serde_json::{Value, json};

pub const NS: &str = "team-a";

/// Path of a workspace binary, checked to be newer than its sources.
pub fn bin(name: &str) -> Result<PathBuf> {
    let dir = match std::env::var_os("FERRY_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe()?;
            // target/<profile>/deps/<test> → target/<profile>
            exe.parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .context("test executable has no grandparent directory")?
        }
    };
    let path = dir.join(name);
    let hint = "build it first: cargo build -p ferry-applier -p ferry-source-server -p ferry-ctl (same target dir), or set FERRY_BIN_DIR";
    let meta = std::fs::metadata(&path)
        .with_context(|| format!("{} not found; {hint}", path.display()))?;
    let built = meta.modified()?;
    let root = ferry_tests::tools::repo_root();
    let crates: &[&str] = match name {
        "ferry-applier" => &[
            "applier/src",
            "applier/kustomize/src",
            "proto/src",
            "store/src",
        ],
        "ferry" => &[
            "applier/ctl/src",
            "applier/src",
            "applier/kustomize/src",
            "source-server/src",
            "proto/src",
            "store/src",
        ],
        _ => &["source-server/src", "proto/src", "store/src"],
    };
    for c in crates {
        if let Some((file, t)) = newest(&root.join(c))
            && t > built
        {
            if std::env::var_os("FERRY_E2E_ALLOW_STALE").is_some() {
                eprintln!(
                    "warning: {} is older than {}",
                    path.display(),
                    file.display()
                );
                continue;
            }
            bail!(
                "{} is older than {}; {hint}",
                path.display(),
                file.display()
            );
        }
    }
    Ok(path)
}

fn newest(dir: &Path) -> Option<(PathBuf, SystemTime)> {
    let mut best: Option<(PathBuf, SystemTime)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(p);
            } else if let Ok(t) = m.modified()
                && best.as_ref().is_none_or(|(_, b)| t > *b)
            {
                best = Some((p, t));
            }
        }
    }
    best
}

/// A child process whose output goes to a log file; killed (SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log,
        })
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id (to read `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The seed example: a Deployment `my-app`, a Service, and a kustomization.yaml.
pub fn write_seed(up: &Upstream, dir: &str, tag: &str) -> Result<()> {
    up.write(&format!("{dir}/deployment.yaml"), deployment_yaml(tag))?;
    up.write(
        &format!("{dir}/service.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: my-app\nspec:\n  selector:\n    app: my-app\n  ports:\n  - port: 80\n    targetPort: 8080\n",
    )?;
    up.write(
        &format!("{dir}/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- deployment.yaml\n- service.yaml\n",
    )?;
    Ok(())
}

pub fn deployment_yaml(tag: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: my-app\n  labels:\n    app: my-app\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: my-app\n  template:\n    metadata:\n      labels:\n        app: my-app\n    spec:\n      containers:\n      - name: my-app\n        image: my-registry/my-app:{tag}\n        ports:\n        - containerPort: 8080\n"
    )
}

/// The Kubernetes API a test runs against.
pub enum Cluster {
    Test(TestCluster),
    Real(Box<RealCluster>),
}

impl Cluster {
    pub fn kubeconfig_path(&self) -> &Path {
        match self {
            Cluster::Test(c) => c.kubeconfig_path(),
            Cluster::Real(c) => c.kubeconfig_path(),
        }
    }

    pub fn client(&self) -> Result<kube::Client> {
        Ok(match self {
            Cluster::Test(c) => c.client()?,
            Cluster::Real(c) => c.client()?,
        })
    }

    pub fn is_real(&self) -> bool {
        matches!(self, Cluster::Real(_))
    }

    /// The test server, for tests built with [`Env::on_test_server`] or [`Env::with_cluster`].
    pub fn test_server(&self) -> &TestCluster {
        match self {
            Cluster::Test(c) => c,
            Cluster::Real(_) => {
                panic!("this test needs the test server: build its Env with Env::on_test_server")
            }
        }
    }

    /// Fault-injection rules (test server only).
    pub fn faults(&self) -> &Faults {
        self.test_server().faults()
    }

    /// Requests answered per verb and resource (test server only).
    pub fn audit(&self) -> &Audit {
        self.test_server().audit()
    }
}

/// Everything one e2e test runs against.
pub struct Env {
    pub cluster: Cluster,
    pub client: kube::Client,
    pub upstream: Upstream,
    pub work: tempfile::TempDir,
    pub source_port: u16,
    pub source: Option<Proc>,
    pub agent: Option<Proc>,
    /// Sources served: `(name, branch)`.
    pub sources: Vec<(String, String)>,
    /// More documents for the source server's config (e.g. `HelmRepository` objects).
    pub extra_sources: Vec<String>,
    /// The agent's credentials; default: the cluster's admin kubeconfig.
    pub agent_kubeconfig: Option<PathBuf>,
    /// Extra arguments for `ferry-applier run`.
    pub agent_args: Vec<String>,
    /// Where the agent serves `/metrics`.
    pub agent_metrics_port: u16,
    /// The source server's `--storage`; default a directory in [`Env::work`].
    pub source_storage: Option<String>,
    /// More environment for the source server (e.g. the `AWS_*` settings of S3 storage).
    pub source_env: Vec<(String, String)>,
}

impl Env {
    /// API server (the real one with `FERRY_CLUSTER=real`) with the CRDs and namespace
    /// [`NS`], an empty upstream; nothing running yet.
    pub async fn new() -> Result<Self> {
        if realcluster::requested() {
            Self::with(Cluster::Real(Box::new(RealCluster::start().await?))).await
        } else {
            Self::on_test_server().await
        }
    }

    /// Like [`Env::new`], always on the test server: for tests that inject faults or count
    /// requests.
    pub async fn on_test_server() -> Result<Self> {
        Self::with_cluster(ClusterOptions::default()).await
    }

    /// Like [`Env::new`] on a cluster that authenticates and enforces RBAC: the real one with
    /// `FERRY_CLUSTER=real`, else the test server with TLS.
    pub async fn with_rbac() -> Result<Self> {
        if realcluster::requested() {
            return Self::new().await;
        }
        Self::with_cluster(ClusterOptions {
            tls: true,
            ..ClusterOptions::default()
        })
        .await
    }

    /// Like [`Env::new`] on the test server with `opts`.
    pub async fn with_cluster(opts: ClusterOptions) -> Result<Self> {
        Self::with(Cluster::Test(TestCluster::start(opts).await?)).await
    }

    async fn with(cluster: Cluster) -> Result<Self> {
        let client = cluster.client()?;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in [Kustomization::crd(), HelmRelease::crd()] {
            let name = crd.metadata.name.clone().unwrap_or_default();
            crds.create(&PostParams::default(), &crd)
                .await
                .with_context(|| format!("creating CRD {name}"))?;
            // The real server serves a CRD's resource only once it is Established.
            let established = kube::runtime::wait::conditions::is_crd_established();
            tokio::time::timeout(
                Duration::from_secs(30),
                kube::runtime::wait::await_condition(crds.clone(), &name, established),
            )
            .await
            .with_context(|| format!("CRD {name} not Established after 30s"))?
            .with_context(|| format!("waiting for CRD {name}"))?;
        }
        let nss: Api<Namespace> = Api::all(client.clone());
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}}))?,
        )
        .await
        .context("creating the namespace")?;
        Ok(Self {
            cluster,
            client,
            upstream: Upstream::new()?,
            work: tempfile::Builder::new().prefix("ferry-e2e-").tempdir()?,
            source_port: free_port()?,
            source: None,
            agent: None,
            sources: vec![("app".into(), "main".into())],
            extra_sources: vec![],
            agent_kubeconfig: None,
            agent_args: vec![],
            agent_metrics_port: free_port()?,
            source_storage: None,
            source_env: vec![],
        })
    }

    pub fn source_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.source_port)
    }

    /// (Re)starts the source server on its port, mirroring the upstream every second.
    pub fn start_source(&mut self) -> Result<()> {
        let dir = self.work.path();
        let mut config = String::new();
        for (name, branch) in &self.sources {
            config.push_str(&format!(
                "---\napiVersion: source.ferry.dev/v1\nkind: GitRepository\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  url: {}\n  interval: 1s\n  ref:\n    branch: {branch}\n",
                self.upstream.file_url()
            ));
        }
        for doc in &self.extra_sources {
            config.push_str("---\n");
            config.push_str(doc);
        }
        std::fs::write(dir.join("sources.yaml"), config)?;
        let mut cmd = Command::new(bin("ferry-source-server")?);
        // FERRY_CLUSTER=real picks the tests' control plane; the server reads FERRY_CLUSTER as
        // its --cluster flag, so it must not inherit it.
        cmd.env_remove("FERRY_CLUSTER");
        cmd.args(["serve", "--config"])
            .arg(dir.join("sources.yaml"))
            .arg("--storage")
            .arg(
                self.source_storage
                    .clone()
                    .unwrap_or_else(|| dir.join("storage").display().to_string()),
            )
            .arg("--cache")
            .arg(dir.join("mirrors"))
            .args(["--listen", &format!("127.0.0.1:{}", self.source_port)])
            .envs(self.source_env.iter().map(|(k, v)| (k, v)));
        self.source = Some(Proc::spawn(
            "ferry-source-server",
            &mut cmd,
            dir.join("source-server.log"),
        )?);
        Ok(())
    }

    pub fn stop_source(&mut self) {
        if let Some(p) = self.source.take() {
            p.kill();
        }
    }

    /// (Re)starts the agent for [`NS`] (cache kept across restarts).
    pub fn start_agent(&mut self) -> Result<()> {
        self.start_agent_with_env(&[])
    }

    /// Like [`Env::start_agent`], with extra environment variables.
    pub fn start_agent_with_env(&mut self, env: &[(&str, &str)]) -> Result<()> {
        let dir = self.work.path();
        let mut cmd = Command::new(bin("ferry-applier")?);
        cmd.args(["run", "--namespace", NS, "--source-server"])
            .arg(self.source_url())
            .arg("--kubeconfig")
            .arg(
                self.agent_kubeconfig
                    .as_deref()
                    .unwrap_or(self.cluster.kubeconfig_path()),
            )
            .arg("--cache-dir")
            .arg(dir.join("agent-cache"))
            .args([
                "--metrics-addr",
                &format!("127.0.0.1:{}", self.agent_metrics_port),
            ])
            .args(&self.agent_args)
            .env("RUST_LOG", "info,ferry_applier=debug")
            // HelmReleases render with the real helm when installed (tests/scripts/install-tools.sh).
            .envs(ferry_tests::tools::helm().ok().map(|h| ("FERRY_HELM", h)))
            .envs(env.iter().copied());
        self.agent = Some(Proc::spawn(
            "ferry-applier",
            &mut cmd,
            dir.join("agent.log"),
        )?);
        Ok(())
    }

    pub fn kill_agent(&mut self) {
        if let Some(p) = self.agent.take() {
            p.kill();
        }
    }

    /// The sum of the agent's metric `name` over the series whose labels include every one of
    /// `labels` (0 when there is none yet, or the agent does not answer yet).
    pub async fn agent_metric(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
        metric_at(
            &format!("http://127.0.0.1:{}/metrics", self.agent_metrics_port),
            name,
            labels,
        )
        .await
    }

    /// [`Env::agent_metric`] of the source server.
    pub async fn source_metric(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
        metric_at(&format!("{}/metrics", self.source_url()), name, labels).await
    }

    /// Waits until [`Env::agent_metric`] reaches `at_least`.
    pub async fn wait_agent_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        at_least: f64,
        limit: Duration,
    ) -> Result<()> {
        let what = format!("agent metric {name}{labels:?} >= {at_least}");
        self.wait_for(&what, limit, || async {
            Ok((self.agent_metric(name, labels).await? >= at_least).then_some(()))
        })
        .await
    }

    /// The logs of the running processes (for assertion messages).
    pub fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        let control_plane = match &self.cluster {
            Cluster::Real(c) => c.report(),
            Cluster::Test(_) => String::new(),
        };
        format!(
            "--- agent log (tail) ---\n{}\n--- source server log (tail) ---\n{}\n{control_plane}",
            tail(read(&self.work.path().join("agent.log"))),
            tail(read(&self.work.path().join("source-server.log")))
        )
    }

    /// The seed committed, the source server and agent started, Kustomization `app` created
    /// with `spec` and Ready; returns the seed commit.
    pub async fn seeded(&mut self, spec: Value) -> Result<String> {
        write_seed(&self.upstream, "app", "v1.0.0")?;
        let first = self.upstream.commit_push("seed")?;
        self.start_source()?;
        self.start_agent()?;
        self.apply_kustomization("app", spec).await?;
        self.wait_ready(
            "app",
            "True",
            "ReconciliationSucceeded",
            Duration::from_secs(30),
        )
        .await?;
        Ok(first)
    }

    /// Creates or replaces Kustomization `name` with `spec`.
    pub async fn apply_kustomization(&self, name: &str, spec: Value) -> Result<()> {
        let api: Api<Kustomization> = Api::namespaced(self.client.clone(), NS);
        let obj = json!({
            "apiVersion": "apply.ferry.dev/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        });
        api.patch(
            name,
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&obj),
        )
        .await
        .with_context(|| format!("applying Kustomization {name}"))?;
        Ok(())
    }

    /// Deletes Kustomization `name` (no finalizer: gone at once).
    pub async fn delete_kustomization(&self, name: &str) -> Result<()> {
        let api: Api<Kustomization> = Api::namespaced(self.client.clone(), NS);
        api.delete(name, &Default::default())
            .await
            .with_context(|| format!("deleting Kustomization {name}"))?;
        Ok(())
    }

    pub async fn kustomization(&self, name: &str) -> Result<Kustomization> {
        let api: Api<Kustomization> = Api::namespaced(self.client.clone(), NS);
        Ok(api.get(name).await?)
    }

    /// A namespaced object as JSON, `None` when absent.
    pub async fn get(&self, api_version: &str, kind: &str, name: &str) -> Result<Option<Value>> {
        let ferry_proto::GroupVersion { group, version } =
            ferry_proto::GroupVersion::parse(api_version);
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let (ar, _) = kube::discovery::pinned_kind(&self.client, &gvk).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), NS, &ar);
        Ok(match api.get_opt(name).await? {
            Some(o) => Some(serde_json::to_value(o)?),
            None => None,
        })
    }

    /// Waits until the agent has observed the Kustomization's current generation.
    pub async fn wait_observed(&self, name: &str, what: &str, limit: Duration) -> Result<()> {
        self.wait_for(what, limit, || async {
            let ks = self.kustomization(name).await?;
            Ok(
                (ks.status.and_then(|s| s.observed_generation) == ks.metadata.generation)
                    .then_some(()),
            )
        })
        .await
    }

    /// Drift as a person makes it: `kubectl patch deployment NAME` of the replicas (field
    /// manager `kubectl-patch`).
    pub async fn drift_replicas(&self, deployment: &str, replicas: i64) -> Result<()> {
        let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
            kube::Api::namespaced(self.client.clone(), NS);
        let params = kube::api::PatchParams {
            field_manager: Some("kubectl-patch".into()),
            ..Default::default()
        };
        api.patch(
            deployment,
            &params,
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}})),
        )
        .await?;
        Ok(())
    }

    /// Polls `check` every 200 ms until it returns `Some`, failing after `limit` with `what`
    /// and the process logs.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        ferry_tests::poll::until(what, limit, Duration::from_millis(200), check)
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}\n{}", self.logs()))
    }

    /// Waits until the deployment's first container has `image`; returns the object.
    pub async fn wait_image(&self, image: &str, limit: Duration) -> Result<Value> {
        self.wait_for(
            &format!("deployment my-app with image {image}"),
            limit,
            || async {
                let d = self.get("apps/v1", "Deployment", "my-app").await?;
                Ok(d.filter(|d| self::image(d) == image))
            },
        )
        .await
    }

    /// Waits for the Ready condition of Kustomization `name` to have `status` and `reason`.
    pub async fn wait_ready(
        &self,
        name: &str,
        status: &str,
        reason: &str,
        limit: Duration,
    ) -> Result<Kustomization> {
        self.wait_for(
            &format!("Kustomization {name} Ready={status} {reason}"),
            limit,
            || async {
                let ks = self.kustomization(name).await?;
                let ok = ks.status.as_ref().is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == "Ready"
                            && format!("{:?}", c.status) == status
                            && c.reason == reason
                    })
                });
                Ok(ok.then_some(ks))
            },
        )
        .await
    }

    /// `(reason, message)` of every occurrence of an Event about `name` (an Event with
    /// `count: 3` appears three times).
    pub async fn events(&self, name: &str) -> Result<Vec<(String, String)>> {
        let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(self.client.clone(), NS);
        Ok(api
            .list(&Default::default())
            .await?
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            // One entry per occurrence: a repeat is counted on its Event, not written anew.
            .flat_map(|e| {
                let n = usize::try_from(e.count.unwrap_or(1)).unwrap_or(1).max(1);
                std::iter::repeat_n(
                    (
                        e.reason.clone().unwrap_or_default(),
                        e.message.clone().unwrap_or_default(),
                    ),
                    n,
                )
            })
            .collect())
    }
}

/// The sum of metric `name` at `url` over the series whose labels include every one of
/// `labels` (0 when there is none yet, or nothing answers yet).
pub async fn metric_at(url: &str, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
    let Ok(resp) = reqwest::get(url).await else {
        return Ok(0.0);
    };
    let text = resp.text().await?;
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let mut sum = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ").context("a metric line")?,
            None => ("", rest.trim_start()),
        };
        if rest.starts_with([' ', '{']) && wanted.iter().all(|w| labels.contains(w.as_str())) {
            sum += value
                .trim()
                .parse::<f64>()
                .with_context(|| line.to_string())?;
        }
    }
    Ok(sum)
}

/// The spec of the seed Kustomization: `path`, interval 2s, prune on.
pub fn seed_spec(path: &str) -> Value {
    json!({
        "sourceRef": {"kind": "GitRepository", "name": "app"},
        "path": path,
        "interval": "2s",
        "retryInterval": "1s",
        "timeout": "30s",
        "prune": true,
    })
}

/// The image of a Deployment's first container (`""` when absent).
pub fn image(d: &Value) -> String {
    d.pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub fn name_of(v: &Value) -> String {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub fn resource_name(k: &Kustomization) -> String {
    k.name_any()
}
