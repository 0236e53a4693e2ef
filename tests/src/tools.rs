//! Locating the real client binaries tests drive: kubectl v1.35.2 and helm v4.1.4, installed
//! by `tests/scripts/install-tools.sh` into `<repo>/.tools/bin` (or named by `FERRY_KUBECTL` /
//! `FERRY_HELM`). A missing binary is an error that says how to install it — never a skip.
//! `/usr/bin/kubectl` is deliberately not used: it is an older version with an old kustomize.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error(
    "{tool} not found at {path} (set {env} or run tests/scripts/install-tools.sh to install it)"
)]
pub struct ToolMissing {
    pub tool: &'static str,
    pub env: &'static str,
    pub path: PathBuf,
}

/// The workspace root (parent of the `tests` package).
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

fn locate(tool: &'static str, env: &'static str) -> Result<PathBuf, ToolMissing> {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/bin").join(tool));
    if path.is_file() {
        Ok(path)
    } else {
        Err(ToolMissing { tool, env, path })
    }
}

pub fn kubectl() -> Result<PathBuf, ToolMissing> {
    locate("kubectl", "FERRY_KUBECTL")
}

pub fn helm() -> Result<PathBuf, ToolMissing> {
    locate("helm", "FERRY_HELM")
}

/// The result of running a client binary.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// kubectl or helm bound to one kubeconfig, with its own `HOME` (kubectl caches discovery
/// under `$HOME/.kube/cache`; helm keeps config and caches there too), so tests never share
/// state or touch the user's files.
#[derive(Debug)]
pub struct Client {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
    envs: Vec<(String, String)>,
}

impl Client {
    pub fn kubectl(kubeconfig: &std::path::Path) -> Result<Self, ToolMissing> {
        Self::new(kubectl()?, kubeconfig)
    }

    pub fn helm(kubeconfig: &std::path::Path) -> Result<Self, ToolMissing> {
        Self::new(helm()?, kubeconfig)
    }

    fn new(bin: PathBuf, kubeconfig: &std::path::Path) -> Result<Self, ToolMissing> {
        let home = tempfile::tempdir().map_err(|_| ToolMissing {
            tool: "a temporary HOME",
            env: "TMPDIR",
            path: std::env::temp_dir(),
        })?;
        Ok(Self {
            bin,
            kubeconfig: kubeconfig.to_path_buf(),
            home,
            envs: Vec::new(),
        })
    }

    /// The private HOME (for files the test writes, e.g. manifests).
    pub fn home(&self) -> &std::path::Path {
        self.home.path()
    }

    /// Writes `text` to `name` in the private HOME and returns the path, for `-f`.
    pub fn write_manifest(&self, name: &str, text: &str) -> String {
        let p = self.home().join(name);
        std::fs::write(&p, text).expect("write manifest into the private HOME");
        p.to_string_lossy().into_owned()
    }

    /// An extra environment variable for every run (e.g. `KUBE_EDITOR`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// The command, ready to run (for tests that need to stream output).
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.bin);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", self.home.path().join(".cache/helm"))
            .env("HELM_CONFIG_HOME", self.home.path().join(".config/helm"))
            .env("HELM_DATA_HOME", self.home.path().join(".local/share/helm"))
            .current_dir(self.home.path())
            .kill_on_drop(true);
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c
    }

    /// Runs to completion (bounded by `limit`), with `stdin` as input.
    pub async fn run_with(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        limit: std::time::Duration,
    ) -> Run {
        use tokio::io::AsyncWriteExt;
        let mut c = self.command(args);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = match c.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Run {
                    code: None,
                    stdout: String::new(),
                    stderr: format!("spawning {}: {e}", self.bin.display()),
                };
            }
        };
        if let Some(mut w) = child.stdin.take() {
            let input = stdin.unwrap_or("").to_string();
            let _ = w.write_all(input.as_bytes()).await;
        }
        match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(Ok(out)) => Run {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            Ok(Err(e)) => Run {
                code: None,
                stdout: String::new(),
                stderr: format!("waiting for {}: {e}", self.bin.display()),
            },
            Err(_) => Run {
                code: None,
                stdout: String::new(),
                stderr: format!(
                    "{} {args:?} did not finish within {limit:?}",
                    self.bin.display()
                ),
            },
        }
    }

    /// Runs with no input and a 60 s bound.
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, None, std::time::Duration::from_secs(60))
            .await
    }

    /// Runs and panics with both outputs unless it succeeded; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args).await;
        assert!(
            r.success(),
            "{} {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            self.bin.display(),
            r.code,
            r.stdout,
            r.stderr
        );
        r.stdout
    }
}

/// A fresh plain-HTTP test cluster and a kubectl pointed at it (the usual start of a kubectl test).
pub async fn cluster_with_kubectl() -> (ferry_testcluster::TestCluster, Client) {
    let cluster =
        ferry_testcluster::TestCluster::start(ferry_testcluster::ClusterOptions::default())
            .await
            .expect("test cluster starts");
    let kubectl = Client::kubectl(cluster.kubeconfig_path()).expect("kubectl installed");
    (cluster, kubectl)
}
