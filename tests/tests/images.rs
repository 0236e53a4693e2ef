//! The container images, built as a fresh machine builds them: `deploy/images/build.sh` (no
//! container engine) on the workspace's binaries. The layout is checked twice, independently:
//! by `skopeo` (installed by tests/scripts/test.sh), and here, blob by blob — every digest and
//! size, the layer's diff_id, the non-root user, the entrypoint. Then each image's filesystem
//! alone runs its binary as user 65532 (chroot), so the shared libraries it needs are in it, and
//! a second build gives the same digests.

mod e2e_support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn build(out: &Path) -> Result<()> {
    let bin_dir = e2e_support::bin("ferry-applier")?
        .parent()
        .context("binary has a directory")?
        .to_path_buf();
    e2e_support::bin("ferry-source-server")?;
    let root = ferry_tests::tools::repo_root();
    let helm = ferry_tests::tools::helm()?;
    run(Command::new("bash")
        .arg(root.join("deploy/images/build.sh"))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(out)
        .env("FERRY_HELM", helm))?;
    Ok(())
}

/// A blob of the layout, checked against its digest and size.
fn blob(layout: &Path, descriptor: &Value) -> Result<Vec<u8>> {
    let digest = descriptor["digest"].as_str().context("descriptor digest")?;
    let hex = digest
        .strip_prefix("sha256:")
        .context("sha256 digests only")?;
    let data = std::fs::read(layout.join("blobs/sha256").join(hex))
        .with_context(|| format!("blob {digest}"))?;
    ensure!(sha256(&data) == digest, "blob {digest} has another digest");
    ensure!(
        Some(data.len() as u64) == descriptor["size"].as_u64(),
        "blob {digest}: size {} but the descriptor says {}",
        data.len(),
        descriptor["size"]
    );
    Ok(data)
}

struct Image {
    manifest_digest: String,
    config_digest: String,
    config: Value,
    /// Layer entries: path → (mode, uid).
    entries: BTreeMap<String, (u32, u64)>,
    compressed: u64,
}

fn read_image(dir: &Path) -> Result<Image> {
    let layout = dir.join("oci");
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    let desc = &index["manifests"][0];
    ensure!(
        desc["annotations"]["org.opencontainers.image.ref.name"] == "latest",
        "index.json tags the manifest latest: {index}"
    );
    let manifest: Value = serde_json::from_slice(&blob(&layout, desc)?)?;
    let config: Value = serde_json::from_slice(&blob(&layout, &manifest["config"])?)?;
    let layers = manifest["layers"].as_array().context("layers")?;
    ensure!(layers.len() == 1, "one layer, got {}", layers.len());
    let gz = blob(&layout, &layers[0])?;
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut tar)?;
    ensure!(
        config["rootfs"]["diff_ids"][0] == sha256(&tar).as_str(),
        "the config's diff_id is the uncompressed layer's digest"
    );
    let mut entries = BTreeMap::new();
    for entry in tar::Archive::new(tar.as_slice()).entries()? {
        let entry = entry?;
        let path = entry
            .path()?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        ensure!(
            !path.starts_with('/') && !path.split('/').any(|c| c == ".."),
            "layer entry {path} leaves the root"
        );
        entries.insert(path, (entry.header().mode()?, entry.header().uid()?));
    }
    Ok(Image {
        manifest_digest: desc["digest"].as_str().unwrap_or_default().to_string(),
        config_digest: manifest["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        config,
        entries,
        compressed: gz.len() as u64,
    })
}

fn check_image(dir: &Path, binary: &str, cmd: &str) -> Result<Image> {
    let image = read_image(dir)?;
    let c = &image.config["config"];
    ensure!(c["User"] == "65532:65532", "runs as nonroot: {c}");
    ensure!(
        c["Entrypoint"][0] == format!("/usr/local/bin/{binary}").as_str() && c["Cmd"][0] == cmd,
        "entrypoint {binary} {cmd}: {c}"
    );
    for path in [
        format!("usr/local/bin/{binary}"),
        "etc/passwd".into(),
        "etc/ssl/certs/ca-certificates.crt".into(),
        "tmp".into(),
    ] {
        ensure!(image.entries.contains_key(&path), "{path} in the layer");
    }
    ensure!(
        image.entries["tmp"].0 & 0o1777 == 0o1777,
        "/tmp is world-writable and sticky"
    );
    ensure!(
        image.entries["home/nonroot"].1 == 65532,
        "the nonroot user owns its home"
    );
    let passwd = std::fs::read_to_string(dir.join("rootfs/etc/passwd"))?;
    ensure!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");

    // skopeo, the independent reader of the layout, agrees.
    let layout = format!("oci:{}:latest", dir.join("oci").display());
    let inspected: Value = serde_json::from_str(
        &run(Command::new(skopeo()?).args(["inspect", "--config", &layout]))
            .context("skopeo inspect --config")?,
    )?;
    ensure!(
        inspected["config"]["User"] == "65532:65532"
            && inspected["config"]["Entrypoint"] == c["Entrypoint"],
        "skopeo reads the same config: {inspected}"
    );
    let raw: Value = serde_json::from_str(&run(
        Command::new(skopeo()?).args(["inspect", "--raw", &layout])
    )?)?;
    ensure!(
        raw["config"]["digest"] == image.config_digest.as_str()
            && raw["layers"][0]["size"] == image.compressed,
        "skopeo reads the same manifest: {raw}"
    );

    // The image's filesystem alone runs the binary, as the image's user.
    let rootfs = dir.join("rootfs");
    let version = in_image(&rootfs, &[&format!("/usr/local/bin/{binary}"), "--version"])?;
    ensure!(version.starts_with(binary), "{binary} --version: {version}");
    Ok(image)
}

/// Runs a command with the image's root filesystem as `/`, as user 65532 (root can chroot; a
/// non-root run uses the image's own loader and libraries instead).
fn in_image(rootfs: &Path, args: &[&str]) -> Result<String> {
    if run(Command::new("id").arg("-u"))?.trim() == "0" {
        return run(Command::new("chroot")
            .arg("--userspec=65532:65532")
            .arg(rootfs)
            .args(args)
            .env("HOME", "/home/nonroot"));
    }
    let path = |p: &str| rootfs.join(p.trim_start_matches('/'));
    run(Command::new(path("/lib64/ld-linux-x86-64.so.2"))
        .arg("--inhibit-cache")
        .arg("--library-path")
        .arg(format!(
            "{}:{}",
            path("/lib/x86_64-linux-gnu").display(),
            path("/usr/lib/x86_64-linux-gnu").display()
        ))
        .arg(path(args[0]))
        .args(&args[1..]))
}

fn skopeo() -> Result<PathBuf> {
    let path = PathBuf::from(std::env::var("FERRY_SKOPEO").unwrap_or("/usr/bin/skopeo".into()));
    if !path.exists() {
        bail!(
            "{} not found (set FERRY_SKOPEO; tests/scripts/test.sh installs Debian's skopeo)",
            path.display()
        );
    }
    Ok(path)
}

#[test]
fn images_are_built_without_an_engine_run_as_nonroot_and_are_reproducible() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let first = tmp.path().join("first");
    build(&first)?;

    let server = check_image(
        &first.join("ferry-source-server"),
        "ferry-source-server",
        "serve",
    )?;
    let agent = check_image(&first.join("ferry-applier"), "ferry-applier", "run")?;
    // The agent renders HelmReleases with the helm binary it carries.
    ensure!(
        agent.config["config"]["Env"]
            .as_array()
            .is_some_and(|e| e.iter().any(|v| v == "FERRY_HELM=/usr/local/bin/helm")),
        "FERRY_HELM points at the image's helm: {}",
        agent.config["config"]
    );
    let helm = in_image(
        &first.join("ferry-applier/rootfs"),
        &["/usr/local/bin/helm", "version", "--short"],
    )?;
    ensure!(helm.starts_with("v4."), "helm in the agent image: {helm}");
    eprintln!(
        "image sizes (compressed layer): ferry-source-server {} bytes, ferry-applier {} bytes",
        server.compressed, agent.compressed
    );

    let second = tmp.path().join("second");
    build(&second)?;
    for name in ["ferry-source-server", "ferry-applier"] {
        let a = read_image(&first.join(name))?.manifest_digest;
        let b = read_image(&second.join(name))?.manifest_digest;
        ensure!(
            a == b,
            "{name}: two builds of the same binaries give {a} and {b}"
        );
    }
    Ok(())
}
