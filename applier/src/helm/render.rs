//! Rendering with the real `helm` as a child process: `helm template` on a chart copied out of
//! the verified artifact into a private temporary directory, nothing else.
//!
//! The child gets an empty environment (no `KUBECONFIG`, no in-cluster service account
//! variables, `HOME` and Helm's cache/config/data directories inside the temporary directory),
//! so it cannot reach the cluster (unless `spec.lookup` hands it the agent's own credentials) or
//! a repository: a chart whose dependencies are not vendored in
//! `charts/` fails with helm's own message instead of downloading them. It runs with resource
//! limits (address space, CPU seconds, written file size, open files) that the agent binary's
//! hidden `helm-exec` subcommand sets on itself before it execs helm (the workspace forbids the
//! `unsafe` a `pre_exec` hook needs), its output is read up to a bound, and it is killed when
//! `spec.timeout` passes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::fetch::ArtifactTree;

/// Where `helm` is and how far it may go.
#[derive(Clone, Debug)]
pub struct HelmConfig {
    /// The `helm` binary (`--helm-binary`, `FERRY_HELM`, or `helm` on `PATH`).
    pub binary: PathBuf,
    /// The agent's own binary, whose [`LAUNCHER_SUBCOMMAND`] starts helm under the limits.
    pub launcher: PathBuf,
    /// Largest rendered manifest accepted (bytes of `helm template`'s output).
    pub max_output: usize,
    /// Address-space limit of the child (bytes).
    pub max_memory: u64,
    /// How helm reaches the cluster for `spec.lookup` (the agent's own credentials); `None`:
    /// lookups are refused.
    pub cluster: Option<ClusterAccess>,
}

/// The agent's own credentials, handed to helm only for `spec.lookup`.
#[derive(Clone, Debug)]
pub enum ClusterAccess {
    /// The kubeconfig file the agent runs with (`--kubeconfig`).
    Kubeconfig(PathBuf),
    /// In a Pod: the service account's, found by helm from these variables
    /// (`KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`) and the mounted token.
    InCluster(Vec<(String, String)>),
}

impl HelmConfig {
    pub fn new(binary: PathBuf, launcher: PathBuf) -> Self {
        Self {
            binary,
            launcher,
            max_output: 64 << 20,
            max_memory: 2 << 30,
            cluster: None,
        }
    }
}

/// Stderr kept for the error message.
const MAX_STDERR: usize = 16 << 10;

/// Why `helm template` gave no manifest. Nothing is applied.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The chart directory is not in the artifact.
    #[error("chart {path:?} is not a directory of the artifact (no Chart.yaml)")]
    NoChart { path: String },
    /// The temporary directory could not be prepared.
    #[error("preparing the chart for helm: {0}")]
    Io(#[from] std::io::Error),
    /// `helm` could not be started.
    #[error("starting {binary}: {source}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    /// helm refused the chart (a template error, a missing dependency...): its own words.
    #[error("helm template failed: {0}")]
    Helm(String),
    /// helm ran past `spec.timeout` and was killed.
    #[error("helm template did not finish within {0:?} and was killed")]
    Timeout(Duration),
    /// `spec.lookup` without credentials to hand to helm.
    #[error("spec.lookup: the agent has no cluster credentials to give helm")]
    NoClusterAccess,
    /// The manifest is larger than allowed.
    #[error("helm template's output is over {0} bytes")]
    TooLarge(usize),
}

/// What `helm template` is asked.
pub struct Request<'a> {
    /// The verified artifact and the chart's directory in it (`charts/app`, no `./`).
    pub tree: &'a ArtifactTree,
    pub chart_dir: &'a str,
    pub release: &'a str,
    pub namespace: &'a str,
    /// Merged values, written as JSON (a YAML subset) to a private file.
    pub values: &'a serde_json::Map<String, serde_json::Value>,
    /// `v1.35.2`, from the API server.
    pub kube_version: &'a str,
    /// Every `group/version` and `group/version/Kind` discovery knows.
    pub api_versions: &'a [String],
    pub is_upgrade: bool,
    pub timeout: Duration,
    /// `spec.lookup`: helm may read the cluster with [`HelmConfig::cluster`].
    pub lookup: bool,
}

/// Normalises `./charts/app/` to `charts/app` (the artifact's path form).
pub fn chart_dir(chart: &str) -> String {
    let mut s = chart.trim();
    while let Some(rest) = s.strip_prefix("./") {
        s = rest;
    }
    s.trim_matches('/').to_string()
}

/// Runs `helm template` and returns its standard output (the rendered manifest).
pub async fn template(cfg: &HelmConfig, req: &Request<'_>) -> Result<String, RenderError> {
    let dir = tempfile::Builder::new().prefix("ferry-helm-").tempdir()?;
    let chart = dir.path().join("chart");
    copy_chart(req.tree, req.chart_dir, &chart)?;
    let values = dir.path().join("values.json");
    std::fs::write(
        &values,
        serde_json::to_vec(req.values).expect("JSON values serialise"),
    )?;
    let home = dir.path().join("home");
    std::fs::create_dir(&home)?;

    let mut cmd = limited_command(cfg, req.timeout);
    cmd.arg("template")
        .arg(req.release)
        .arg(&chart)
        .args(["--namespace", req.namespace])
        .args(["--kube-version", req.kube_version])
        .arg("--values")
        .arg(&values);
    if !req.api_versions.is_empty() {
        cmd.arg("--api-versions").arg(req.api_versions.join(","));
    }
    if req.is_upgrade {
        cmd.arg("--is-upgrade");
    }
    cmd.env_clear()
        .env("HOME", &home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    if req.lookup {
        // Lookups read the cluster as the agent: its own kubeconfig or service account, so
        // they see what the agent's RBAC lets it see (its namespace) and nothing more.
        cmd.arg("--dry-run=server");
        match &cfg.cluster {
            Some(ClusterAccess::Kubeconfig(path)) => cmd.env("KUBECONFIG", path),
            Some(ClusterAccess::InCluster(vars)) => cmd.envs(vars.iter().cloned()),
            None => return Err(RenderError::NoClusterAccess),
        };
    } else {
        cmd.env("KUBECONFIG", "/dev/null");
    }
    cmd.current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| RenderError::Spawn {
        binary: cfg.binary.display().to_string(),
        source,
    })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let run = async {
        let (out, err) = tokio::join!(
            read_bounded(stdout, cfg.max_output),
            read_bounded(stderr, MAX_STDERR)
        );
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((out?, err?, status))
    };
    let ((out, out_full), (err, _), status) = match tokio::time::timeout(req.timeout, run).await {
        Ok(r) => r?,
        // Dropping the future drops the child: kill_on_drop ends it.
        Err(_) => return Err(RenderError::Timeout(req.timeout)),
    };
    if out_full {
        return Err(RenderError::TooLarge(cfg.max_output));
    }
    if !status.success() {
        let text = String::from_utf8_lossy(&err);
        // helm prints paths of our temporary directory; they mean nothing to the user.
        let text = text.replace(&format!("{}/", chart.display()), "");
        return Err(RenderError::Helm(format!(
            "{} ({status})",
            text.trim().trim_start_matches("Error: ")
        )));
    }
    String::from_utf8(out).map_err(|_| RenderError::Helm("output is not UTF-8".into()))
}

/// Reads at most `max` bytes; the flag says the stream had more (and was left unread, so a
/// runaway child is stopped by the pipe filling up until the timeout kills it).
async fn read_bounded(
    mut r: impl AsyncRead + Unpin,
    max: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    let n = (&mut r).take(max as u64 + 1).read_to_end(&mut buf).await?;
    if n > max {
        buf.truncate(max);
        return Ok((buf, true));
    }
    Ok((buf, false))
}

/// Writes the chart's files (and only those) below `to`.
fn copy_chart(tree: &ArtifactTree, chart_dir: &str, to: &Path) -> Result<(), RenderError> {
    let manifest = if chart_dir.is_empty() {
        "Chart.yaml".to_string()
    } else {
        format!("{chart_dir}/Chart.yaml")
    };
    if tree.get(&manifest).is_none() {
        return Err(RenderError::NoChart {
            path: chart_dir.to_string(),
        });
    }
    std::fs::create_dir_all(to)?;
    for (path, data) in tree.files_under(chart_dir) {
        let rel = if chart_dir.is_empty() {
            path
        } else {
            &path[chart_dir.len() + 1..]
        };
        // The tree's paths are normalised (no `..`, no absolute paths): they stay below `to`.
        let dest = to.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(dest, data)?;
    }
    Ok(())
}

/// The hidden subcommand of the agent binary that sets the limits on itself and becomes `helm`
/// (exec): resource limits without `unsafe` code between fork and exec.
pub const LAUNCHER_SUBCOMMAND: &str = "helm-exec";

/// Limits a [`LAUNCHER_SUBCOMMAND`] sets before it execs the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Address space, bytes.
    pub memory: u64,
    /// CPU seconds.
    pub cpu_seconds: u64,
    /// Largest file the program may write, bytes.
    pub file_size: u64,
}

/// Open files allowed to the child.
const MAX_OPEN_FILES: u64 = 256;

/// Sets `limits` on this process, then replaces it with `program args` (returns only on
/// failure). What the `helm-exec` subcommand runs.
pub fn exec_limited(limits: Limits, program: &Path, args: &[std::ffi::OsString]) -> std::io::Error {
    use rlimit::Resource;
    use std::os::unix::process::CommandExt;
    let set = || -> std::io::Result<()> {
        Resource::AS.set(limits.memory, limits.memory)?;
        Resource::CPU.set(limits.cpu_seconds, limits.cpu_seconds)?;
        Resource::FSIZE.set(limits.file_size, limits.file_size)?;
        Resource::NOFILE.set(MAX_OPEN_FILES, MAX_OPEN_FILES)?;
        Ok(())
    };
    if let Err(e) = set() {
        return e;
    }
    std::process::Command::new(program).args(args).exec()
}

/// The command that runs `helm` under the limits: the agent binary's [`LAUNCHER_SUBCOMMAND`].
fn limited_command(cfg: &HelmConfig, timeout: Duration) -> tokio::process::Command {
    // CPU seconds: the wall-clock timeout bounds it too; this stops a spinning child even if
    // the agent cannot kill it in time.
    let limits = Limits {
        memory: cfg.max_memory,
        cpu_seconds: timeout.as_secs().saturating_add(1),
        file_size: cfg.max_output as u64,
    };
    let mut cmd = tokio::process::Command::new(&cfg.launcher);
    cmd.arg(LAUNCHER_SUBCOMMAND)
        .arg(format!("--max-memory={}", limits.memory))
        .arg(format!("--max-cpu-seconds={}", limits.cpu_seconds))
        .arg(format!("--max-file-size={}", limits.file_size))
        .arg("--")
        .arg(&cfg.binary);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_paths_are_normalised() {
        assert_eq!(chart_dir("./charts/app"), "charts/app");
        assert_eq!(chart_dir("charts/app/"), "charts/app");
        assert_eq!(chart_dir("./"), "");
        assert_eq!(chart_dir("././app"), "app");
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let data = [b'x'; 100];
        let (buf, full) = read_bounded(&data[..], 10).await.expect("reads");
        assert!(full);
        assert_eq!(buf.len(), 10);
        let (buf, full) = read_bounded(&data[..], 100).await.expect("reads");
        assert!(!full);
        assert_eq!(buf.len(), 100);
    }
}
