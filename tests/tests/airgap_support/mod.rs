//! Shared by the air-gap tests: an upstream source server (its own store, mirroring a Git
//! upstream), the bundle commands run as the real binaries, and snapshots of a store.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferry_proto::ArtifactRef;
use ferry_proto::api::SourceView;
use sha2::Digest as _;

use super::e2e_support::{Proc, bin, free_port};

/// A source server mirroring `git_url` into `dir/store`, on its own port.
pub struct UpstreamServer {
    pub dir: PathBuf,
    pub port: u16,
    pub proc: Proc,
}

impl UpstreamServer {
    /// Serves GitRepository `namespace/app` (branch main) of `git_url`, polling every second;
    /// `extra` are more `serve` flags.
    pub fn start(dir: &Path, namespace: &str, git_url: &str, extra: &[&str]) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join("sources.yaml");
        std::fs::write(
            &config,
            format!(
                "apiVersion: source.ferry.dev/v1\nkind: GitRepository\nmetadata:\n  name: app\n  namespace: {namespace}\n\
                 spec:\n  url: {git_url}\n  interval: 1s\n  timeout: 60s\n  ref:\n    branch: main\n"
            ),
        )?;
        let port = free_port()?;
        let mut cmd = Command::new(bin("ferry-source-server")?);
        cmd.env_remove("FERRY_CLUSTER")
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--storage")
            .arg(dir.join("store"))
            .arg("--cache")
            .arg(dir.join("mirrors"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra);
        let proc = Proc::spawn("upstream source server", &mut cmd, dir.join("server.log"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            port,
            proc,
        })
    }

    pub fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// Waits until the server serves `commit` for `namespace/app`; returns its artifact.
    pub async fn wait_commit(&self, namespace: &str, commit: &str) -> Result<ArtifactRef> {
        wait_source(
            &format!("http://127.0.0.1:{}", self.port),
            namespace,
            "app",
            commit,
        )
        .await
        .with_context(|| self.proc.log_text())
    }
}

/// Waits until the source server at `base` serves an artifact of `commit` for `ns/name`.
pub async fn wait_source(base: &str, ns: &str, name: &str, commit: &str) -> Result<ArtifactRef> {
    let url = format!("{base}/v1/sources/{ns}/{name}");
    ferry_tests::poll::until(
        &format!("{url} serving commit {commit}"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let Ok(resp) = reqwest::get(&url).await else {
                return Ok(None);
            };
            if !resp.status().is_success() {
                return Ok(None);
            }
            let view: SourceView = resp.json().await?;
            Ok(view
                .status
                .artifact
                .filter(|a| a.revision.to_string().ends_with(commit)))
        },
    )
    .await
}

/// What a command printed and how it ended.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub seconds: f64,
}

impl Run {
    pub fn ok(self) -> Result<Self> {
        if self.code != Some(0) {
            bail!(
                "exit {:?}\nstdout: {}\nstderr: {}",
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }
}

/// Runs the workspace binary `name` with `args`.
pub fn run(name: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Result<Run> {
    let started = std::time::Instant::now();
    let out = Command::new(bin(name)?)
        .env_remove("FERRY_STORAGE")
        .args(args)
        .output()
        .with_context(|| format!("running {name}"))?;
    Ok(Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Every file under `dir` with the sha256 of its bytes: equal snapshots, equal stores.
pub fn snapshot(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir)?.display().to_string();
                out.insert(rel, hex::encode(sha2::Sha256::digest(std::fs::read(&p)?)));
            }
        }
    }
    Ok(out)
}

/// A bundle's entries: `(name, bytes)` in order.
pub type Entries = Vec<(String, Vec<u8>)>;

/// The entries of a bundle.
pub fn entries(bundle: &Path) -> Result<Entries> {
    let mut archive = tar::Archive::new(std::fs::File::open(bundle)?);
    let mut out = Vec::new();
    for e in archive.entries()? {
        let mut e = e?;
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data)?;
        out.push((name, data));
    }
    Ok(out)
}

/// Writes `entries` as a tar (raw names, so a test can write names no tool would).
pub fn write_entries(path: &Path, entries: &[(String, Vec<u8>)]) -> Result<()> {
    let mut b = tar::Builder::new(std::fs::File::create(path)?);
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        // Raw name bytes: `set_path` would refuse `..`.
        let raw = &mut h.as_old_mut().name;
        raw.fill(0);
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, &data[..])?;
    }
    b.finish()?;
    Ok(())
}
