//! Issue 12, defect 6: the agent's memory on hostile artifacts. A fake source server (the agent
//! cannot tell: same HTTP API) serves one hostile artifact at a time to the real `ferry-applier`
//! binary, run with the allocator settings of its Deployment; each must be refused with a clear
//! error on the Kustomization, and the agent's peak RSS (`VmHWM` of `/proc/<pid>/status`, the
//! whole process) must stay under the 64 MiB memory limit of `deploy/agent`.

mod e2e_support;

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Bytes;
use e2e_support::{Env, NS};
use ferry_proto::api::SourceView;
use ferry_proto::{ArtifactRef, Digest, GitRepositoryStatus, Hasher};
use serde_json::json;

const MIB: u64 = 1 << 20;
const LIMIT: Duration = Duration::from_secs(120);

/// The Deployment's memory limit and allocator settings, read from the manifest itself.
fn deployment() -> Result<(u64, String)> {
    let path = ferry_tests::tools::repo_root().join("deploy/agent/deployment.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let d: serde_json::Value = serde_yaml::from_str(&text)?;
    let agent = &d["spec"]["template"]["spec"]["containers"][0];
    let limit = agent["resources"]["limits"]["memory"]
        .as_str()
        .and_then(|m| m.strip_suffix("Mi"))
        .and_then(|m| m.parse::<u64>().ok())
        .context("deploy/agent: resources.limits.memory in Mi")?;
    let conf = agent["env"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == "MALLOC_CONF"))
        .and_then(|e| e["value"].as_str())
        .context("deploy/agent: MALLOC_CONF")?;
    Ok((limit * MIB, conf.to_string()))
}

/// Gzips on the fly, hashing the tar as it is written.
struct Writer {
    gz: flate2::write::GzEncoder<Vec<u8>>,
    hasher: Hasher,
    len: u64,
}

impl Writer {
    fn new() -> Self {
        Self {
            gz: flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
            hasher: Hasher::new(),
            len: 0,
        }
    }

    fn finish(self) -> (Vec<u8>, Digest, u64) {
        let gz = self.gz.finish().expect("gzip into memory");
        (gz, self.hasher.finish(), self.len)
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        self.gz.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A gzipped tar of `(raw name, type, size)` entries with zero-filled content, its digest and
/// its uncompressed size.
fn tar(entries: impl IntoIterator<Item = (String, tar::EntryType, u64)>) -> (Vec<u8>, Digest, u64) {
    let mut b = tar::Builder::new(Writer::new());
    for (name, kind, size) in entries {
        let mut h = tar::Header::new_old();
        // Raw name bytes: `set_path` itself refuses `..`, as a hostile server would not.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        if kind == tar::EntryType::Symlink {
            h.set_link_name("/etc/passwd").expect("link name");
        }
        h.set_cksum();
        b.append(&h, std::io::repeat(0).take(size))
            .expect("tar into memory");
    }
    b.into_inner().expect("finish tar").finish()
}

struct Hostile {
    name: &'static str,
    gz: Vec<u8>,
    digest: Digest,
    /// The size the server advertises.
    size: u64,
    /// What the Kustomization's Ready message must say.
    says: &'static str,
}

/// Against the agent's default limits (`ferry_proto::limits`): 16 MiB per artifact, 16 MiB
/// per file, 20k entries.
fn hostile_artifacts() -> Vec<Hostile> {
    let regular = tar::EntryType::Regular;
    let file = |name: &str, kind, size| (name.to_string(), kind, size);
    let mut out = vec![];
    for (name, entry, says) in [
        (
            "traversal",
            file("../../etc/cron.d/evil", regular, 10),
            "`..` is not allowed",
        ),
        (
            "symlink",
            file("link", tar::EntryType::Symlink, 0),
            "symlink",
        ),
        (
            "device",
            file("dev", tar::EntryType::Char, 0),
            "character device",
        ),
    ] {
        let (gz, digest, size) = tar([entry]);
        out.push(Hostile {
            name,
            gz,
            digest,
            size,
            says,
        });
    }
    // Zeros past the largest artifact an agent accepts, advertised at exactly that size.
    let max = ferry_proto::limits::DEFAULT_MAX_TOTAL_SIZE;
    let mut w = Writer::new();
    std::io::copy(&mut std::io::repeat(0).take(max + 8 * MIB), &mut w).expect("bomb");
    let (gz, digest, _) = w.finish();
    out.push(Hostile {
        name: "gzip bomb",
        gz,
        digest,
        size: max,
        says: "decompresses to more than",
    });
    let (gz, digest, size) = tar((0..25_000).map(|i| file(&format!("f/{i:06}.yaml"), regular, 0)));
    out.push(Hostile {
        name: "25k entries",
        gz,
        digest,
        size,
        says: "more than 20000 entries",
    });
    // Big files within every limit: only the truncation or the digest gives them away.
    let big = || (0..1).map(|i| (format!("big-{i}.yaml"), regular, 15 * MIB));
    let (gz, digest, size) = tar(big());
    out.push(Hostile {
        name: "truncated",
        gz: gz[..gz.len() / 2].to_vec(),
        digest,
        size,
        says: "corrupt or truncated gzip",
    });
    let (gz, _, size) = tar(big());
    out.push(Hostile {
        name: "digest mismatch",
        gz,
        digest: Digest::of(b"what the server promised"),
        size,
        says: "digest mismatch",
    });
    out
}

/// The source server's API for one source `app` whose artifact is `gz`.
async fn serve(port: u16, h: &Hostile) -> Result<tokio::task::JoinHandle<()>> {
    let base = format!("http://127.0.0.1:{port}");
    let artifact: ArtifactRef = serde_json::from_value(json!({
        "digest": h.digest,
        "size": h.size,
        "compressedSize": h.gz.len(),
        "revision": "main@sha1:0123456789abcdef0123456789abcdef01234567",
        "url": format!("{base}{}", ferry_proto::artifact_path(&h.digest)),
        "lastUpdateTime": "2026-01-01T00:00:00Z",
    }))?;
    let view = SourceView {
        namespace: NS.into(),
        name: "app".into(),
        kind: "GitRepository".into(),
        spec: serde_json::from_value(json!({"url": "https://example.com/app.git",
            "interval": "1m", "ref": {"branch": "main"}}))?,
        status: GitRepositoryStatus {
            artifact: Some(artifact),
            ..Default::default()
        },
    };
    let view = serde_json::to_value(view)?;
    let gz = Bytes::from(h.gz.clone());
    let app = axum::Router::new()
        .route(
            &format!("/v1/sources/{NS}/app"),
            axum::routing::get(move || {
                let view = view.clone();
                async move { axum::Json(view) }
            }),
        )
        .route(
            &ferry_proto::artifact_path(&h.digest),
            axum::routing::get(move || {
                let gz = gz.clone();
                async move { gz }
            }),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }))
}

fn vm_hwm(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .context("VmHWM in /proc/<pid>/status")?;
    Ok(kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_artifacts_are_refused_within_the_deployments_memory_limit() -> Result<()> {
    let (limit, malloc_conf) = deployment()?;
    let hostile = tokio::task::spawn_blocking(hostile_artifacts).await?;
    let mut env = Env::new().await?;
    let mut report = vec![];
    let mut over = vec![];
    for h in &hostile {
        let server = serve(env.source_port, h).await?;
        // A fresh agent per artifact: its peak is this artifact's.
        env.kill_agent();
        env.start_agent_with_env(&[("MALLOC_CONF", &malloc_conf)])?;
        env.apply_kustomization(
            "app",
            json!({"sourceRef": {"kind": "GitRepository", "name": "app"},
                   "interval": "1h", "timeout": "1m", "prune": true}),
        )
        .await?;
        let ks = env
            .wait_for(&format!("{}: Ready=False", h.name), LIMIT, || async {
                let ks = env.kustomization("app").await?;
                let ready = ks.status.as_ref().and_then(|s| {
                    s.conditions
                        .iter()
                        .find(|c| c.type_ == "Ready" && c.message.contains(&h.digest.to_string()))
                        .cloned()
                });
                Ok(ready)
            })
            .await?;
        assert_eq!(ks.reason, "ArtifactFailed", "{}: {ks:?}", h.name);
        assert!(ks.message.contains(h.says), "{}: {}", h.name, ks.message);
        let pid = env.agent.as_ref().context("agent")?.pid();
        let peak = vm_hwm(pid)?;
        report.push(format!(
            "{}: agent peak RSS {:.1} MiB",
            h.name,
            peak as f64 / MIB as f64
        ));
        server.abort();
        let _ = server.await;
        env.delete_kustomization("app").await?;
        if peak >= limit {
            over.push(h.name);
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        over.is_empty(),
        "agent peak RSS above the Deployment's {limit}-byte limit on {over:?}:\n{}",
        report.join("\n")
    );
    Ok(())
}

/// A valid artifact as large as the default limits allow: a small kustomization beside data
/// files that fill the rest of `DEFAULT_MAX_TOTAL_SIZE`.
fn artifact_at_the_limit() -> Hostile {
    let mut b = tar::Builder::new(Writer::new());
    let mut add = |name: &str, data: &mut dyn Read, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).expect("path");
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).expect("tar into memory");
    };
    let kustomization = b"resources: [configmap.yaml]\n";
    let configmap =
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n";
    add(
        "kustomization.yaml",
        &mut &kustomization[..],
        kustomization.len() as u64,
    );
    add(
        "configmap.yaml",
        &mut &configmap[..],
        configmap.len() as u64,
    );
    // Headers, the two YAML files and the end blocks fit in the 64 KiB left over.
    let data = (ferry_proto::limits::DEFAULT_MAX_TOTAL_SIZE - 64 * 1024) / 2;
    assert!(data <= ferry_proto::limits::DEFAULT_MAX_FILE_SIZE);
    for i in 0..2 {
        add(
            &format!("data/blob-{i}.bin"),
            &mut std::io::repeat(7).take(data),
            data,
        );
    }
    let (gz, digest, size) = b.into_inner().expect("finish tar").finish();
    assert!(
        size <= ferry_proto::limits::DEFAULT_MAX_TOTAL_SIZE,
        "{size}"
    );
    Hostile {
        name: "valid, at the size limit",
        gz,
        digest,
        size,
        says: "",
    }
}

/// Issue 12: the other half of the memory bound. Streaming bounds what the agent refuses, but a
/// verified tree's files are held in memory, so the default artifact limit must fit under the
/// Deployment's: an artifact at the default limit is applied with the agent's peak RSS under
/// it. (At the former 128 MiB default this could not hold: 128 MiB of files in a 64 MiB pod.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_at_the_default_size_limit_is_applied_within_the_memory_limit() -> Result<()> {
    let (limit, malloc_conf) = deployment()?;
    let valid = tokio::task::spawn_blocking(artifact_at_the_limit).await?;
    let mut env = Env::new().await?;
    let server = serve(env.source_port, &valid).await?;
    env.kill_agent();
    env.start_agent_with_env(&[("MALLOC_CONF", &malloc_conf)])?;
    env.apply_kustomization(
        "app",
        json!({"sourceRef": {"kind": "GitRepository", "name": "app"},
               "interval": "1h", "timeout": "1m", "prune": true}),
    )
    .await?;
    env.wait_for("Ready=True", LIMIT, || async {
        let ks = env.kustomization("app").await?;
        let ready = ks.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Ready" && c.is_true())
                .cloned()
        });
        Ok(ready)
    })
    .await?;
    assert!(env.get("v1", "ConfigMap", "settings").await?.is_some());
    let pid = env.agent.as_ref().context("agent")?.pid();
    let peak = vm_hwm(pid)?;
    eprintln!(
        "{} ({:.1} MiB): agent peak RSS {:.1} MiB",
        valid.name,
        valid.size as f64 / MIB as f64,
        peak as f64 / MIB as f64
    );
    server.abort();
    assert!(
        peak < limit,
        "agent peak RSS {peak} bytes applying a {}-byte artifact, above the Deployment's {limit}",
        valid.size
    );
    Ok(())
}
