//! Canonical artifacts built from real repositories: the tar follows the documented rules, an
//! independent encoder written from docs/artifact-format.md (fed by the `git` CLI, not gix)
//! produces the same digest, the digest is stable across fresh mirrors, and ignore rules and
//! limits behave as users expect.

use std::io::Read;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use ferry_proto::{Digest, GitRepositoryRef, Revision};
use ferry_source_server::artifact::{ArtifactError, BuiltArtifact, Limits, build_artifact};
use ferry_source_server::git::{GitSource, Mirror};
use ferry_tests::upstream::{HttpAuth, SmartHttp, Upstream, git};

fn mirror_of(url: &str, cache: &std::path::Path, key: &str) -> Result<(Mirror, Revision)> {
    let src = GitSource {
        url: url.to_string(),
        reference: Some(GitRepositoryRef::default()),
        auth: None,
        timeout: Duration::from_secs(30),
    };
    let stop = AtomicBool::new(false);
    let mirror = Mirror::open_or_init(cache, key)?;
    let rev = mirror.check(&src, &stop)?;
    let rev = mirror.fetch(&src, &rev, &stop)?;
    Ok((mirror, rev))
}

fn build(url: &str, ignore: Option<&str>) -> Result<BuiltArtifact> {
    let cache = tempfile::tempdir()?;
    let (mirror, rev) = mirror_of(url, cache.path(), "m")?;
    Ok(build_artifact(&mirror, &rev, ignore, &Limits::default())?)
}

fn gunzip(gz: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut out)?;
    Ok(out)
}

fn names(gz: &[u8]) -> Result<Vec<String>> {
    let tar = gunzip(gz)?;
    let mut archive = tar::Archive::new(&tar[..]);
    let mut v = Vec::new();
    for e in archive.entries()? {
        v.push(String::from_utf8(e?.path_bytes().to_vec())?);
    }
    Ok(v)
}

/// A repository with nested directories, an executable, a long path, a symlink and a submodule.
fn varied_upstream() -> Result<Upstream> {
    let up = Upstream::new()?;
    up.write("README.md", "# app\n")?;
    up.write("a-b.txt", "sorts before a/\n")?;
    up.write("a/z.yaml", "z: 1\n")?;
    up.write("a/b/c.yaml", "c: 1\n")?;
    up.write_exec("bin/run.sh", "#!/bin/sh\necho hi\n")?;
    let long = format!("{}/{}.yaml", "deep".repeat(20), "n".repeat(60));
    up.write(&long, "long: true\n")?;
    up.write("big.bin", vec![0xA5u8; 70_000])?;
    up.symlink("link.yaml", "a/z.yaml")?;
    up.git(&["add", "-A"])?;
    up.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        "160000,0123456789abcdef0123456789abcdef01234567,vendor/lib",
    ])?;
    // Not `commit_push`: its `git add -A` would drop the gitlink, which has no work-tree dir.
    up.git(&["commit", "-q", "-m", "varied"])?;
    up.push()?;
    Ok(up)
}

#[test]
fn tar_follows_the_canonical_rules() -> Result<()> {
    let up = varied_upstream()?;
    let built = build(&up.file_url(), None)?;
    let tar = gunzip(&built.gz)?;
    assert_eq!(built.tar_size, tar.len() as u64);
    assert_eq!(
        built.digest,
        Digest::of(&tar),
        "digest is over the uncompressed tar"
    );

    let mut archive = tar::Archive::new(&tar[..]);
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for e in archive.entries()? {
        let e = e?;
        let h = e.header();
        let name = e.path_bytes().to_vec();
        let is_dir = h.entry_type().is_dir();
        assert!(is_dir || h.entry_type().is_file(), "only files and dirs");
        assert_eq!(is_dir, name.ends_with(b"/"));
        assert_eq!((h.uid()?, h.gid()?, h.mtime()?), (0, 0, 0));
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        let expected_mode = if is_dir || name == b"bin/run.sh" {
            0o755
        } else {
            0o644
        };
        assert_eq!(
            h.mode()?,
            expected_mode,
            "{}",
            String::from_utf8_lossy(&name)
        );
        seen.push(name);
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "entries sorted by name bytes");
    let seen: Vec<String> = seen
        .into_iter()
        .map(|n| String::from_utf8_lossy(&n).into())
        .collect();
    assert!(seen.iter().any(|n| n.len() > 100), "long names survive");
    assert!(seen.contains(&"a-b.txt".to_string()) && seen.contains(&"a/b/c.yaml".to_string()));
    assert!(
        !seen
            .iter()
            .any(|n| n.starts_with("link") || n.starts_with("vendor/lib"))
    );

    let skipped: Vec<(String, String)> = built
        .skipped
        .iter()
        .map(|s| (s.path.clone(), s.kind.clone()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("link.yaml".to_string(), "symlink".to_string()),
            ("vendor/lib".to_string(), "submodule".to_string())
        ]
    );

    // GNU tar agrees that this is a valid archive with these names.
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("a.tar"), &tar)?;
    let listing = git(dir.path(), &["--version"]).and_then(|_| {
        let out = std::process::Command::new("tar")
            .arg("-tf")
            .arg("a.tar")
            .current_dir(dir.path())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "tar -tf failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    })?;
    assert_eq!(listing.lines().collect::<Vec<_>>(), seen);
    Ok(())
}

/// The canonical encoding re-implemented from docs/artifact-format.md, fed by `git ls-tree`
/// and `git cat-file`: no gix, no ignore rules (the repository has nothing to ignore).
fn independent_digest(repo: &std::path::Path, commit: &str) -> Result<Digest> {
    let listing = git(repo, &["ls-tree", "-r", "-t", "-z", "--full-tree", commit])?;
    let mut entries: Vec<(Vec<u8>, u32, Vec<u8>)> = Vec::new();
    for record in listing.split('\0').filter(|r| !r.is_empty()) {
        let (meta, path) = record.split_once('\t').context("ls-tree record")?;
        let mut it = meta.split(' ');
        let (mode, kind, oid) = (it.next(), it.next(), it.next());
        let (mode, kind, oid) = (
            mode.context("mode")?,
            kind.context("type")?,
            oid.context("oid")?,
        );
        match (kind, mode) {
            ("tree", _) => entries.push((format!("{path}/").into_bytes(), 0o755, Vec::new())),
            ("blob", "100755") | ("blob", "100644") => {
                let out = std::process::Command::new("git")
                    .args(["cat-file", "blob", oid])
                    .current_dir(repo)
                    .output()?;
                let m = if mode == "100755" { 0o755 } else { 0o644 };
                entries.push((path.as_bytes().to_vec(), m, out.stdout));
            }
            _ => {} // symlinks and submodules are not in the tar
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    fn header(name: &[u8], mode: u32, size: usize, flag: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name);
        h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = flag;
        h[257..265].copy_from_slice(b"ustar  \0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }
    fn pad(out: &mut Vec<u8>) {
        while !out.len().is_multiple_of(512) {
            out.push(0);
        }
    }
    let mut out = Vec::new();
    for (name, mode, data) in entries {
        if name.len() > 100 {
            out.extend(header(b"././@LongLink", 0o644, name.len() + 1, b'L'));
            out.extend(&name);
            out.push(0);
            pad(&mut out);
        }
        let flag = if name.ends_with(b"/") { b'5' } else { b'0' };
        out.extend(header(&name[..name.len().min(100)], mode, data.len(), flag));
        out.extend(&data);
        pad(&mut out);
    }
    out.extend([0u8; 1024]);
    Ok(Digest::of(&out))
}

#[test]
fn an_independent_encoder_from_the_spec_gets_the_same_digest() -> Result<()> {
    let up = varied_upstream()?;
    let built = build(&up.file_url(), None)?;
    assert_eq!(built.digest, independent_digest(&up.work(), &up.head()?)?);
    Ok(())
}

#[test]
fn same_tree_same_digest_across_fresh_mirrors_transports_and_commits() -> Result<()> {
    let up = varied_upstream()?;
    let a = build(&up.file_url(), None)?;
    let server = SmartHttp::start(up.root(), HttpAuth::None)?;
    let b = build(&server.url("repo.git"), None)?;
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.gz, b.gz, "same compressor, same bytes");

    // A new commit with the same tree (message only) keeps the digest: identity is content.
    up.git(&[
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "empty commit, same tree",
    ])?;
    up.push()?;
    let c = build(&up.file_url(), None)?;
    assert_eq!(a.digest, c.digest);

    up.write("README.md", "# app v2\n")?;
    up.commit_push("content change")?;
    assert_ne!(a.digest, build(&up.file_url(), None)?.digest);
    Ok(())
}

#[test]
fn sourceignore_spec_ignore_and_default_excludes() -> Result<()> {
    let up = Upstream::new()?;
    up.write("deploy/app.yaml", "app\n")?;
    up.write("deploy/app.test.yaml", "test\n")?;
    up.write("deploy/dev/secret.yaml", "dev\n")?;
    up.write("deploy/dev/keep.yaml", "keep\n")?;
    up.write("deploy/.sourceignore", "/dev/*\n!/dev/keep.yaml\n")?;
    up.write(".sourceignore", "*.test.yaml\n")?;
    up.write(".github/workflows/ci.yaml", "ci\n")?;
    up.write(".gitignore", "target/\n")?;
    up.write("docs/logo.png", "png\n")?;
    up.write("notes.md", "notes\n")?;
    up.commit_push("layout")?;

    let base = build(&up.file_url(), None)?;
    assert_eq!(
        names(&base.gz)?,
        [
            ".sourceignore",
            "deploy/",
            "deploy/.sourceignore",
            "deploy/app.yaml",
            "deploy/dev/",
            "deploy/dev/keep.yaml",
            "docs/",
            "notes.md",
        ]
    );

    let with_spec = build(&up.file_url(), Some("*.md\n!docs/logo.png\n"))?;
    assert_eq!(
        names(&with_spec.gz)?,
        [
            ".sourceignore",
            "deploy/",
            "deploy/.sourceignore",
            "deploy/app.yaml",
            "deploy/dev/",
            "deploy/dev/keep.yaml",
            "docs/",
            "docs/logo.png",
        ]
    );
    assert_ne!(
        base.digest, with_spec.digest,
        "changing spec.ignore changes the digest"
    );

    up.write(".sourceignore", "*.test.yaml\nnotes.md\n")?;
    up.commit_push("ignore notes")?;
    let changed = build(&up.file_url(), None)?;
    assert!(!names(&changed.gz)?.contains(&"notes.md".to_string()));
    assert_ne!(
        base.digest, changed.digest,
        "changing .sourceignore changes the digest"
    );
    Ok(())
}

/// Issue 12, defect 5: the server's limits (100 MiB per file, 2 GiB, 200k entries) were far
/// above the agents' (16 MiB, 128 MiB, 20k): a repository in between was Ready on the server
/// and failed on every agent. The defaults are now one set, and the server refuses with the
/// message an agent gives (`ferry_proto::LimitError`).
#[test]
fn the_server_refuses_by_default_what_agents_refuse_with_the_same_message() -> Result<()> {
    let up = Upstream::new()?;
    let size = ferry_proto::limits::DEFAULT_MAX_FILE_SIZE + 1;
    up.write("big/values.yaml", vec![b'#'; size as usize])?;
    up.commit_push("a file agents refuse")?;
    let cache = tempfile::tempdir()?;
    let (mirror, rev) = mirror_of(&up.file_url(), cache.path(), "agent-limits")?;
    let err = build_artifact(&mirror, &rev, None, &Limits::default())
        .expect_err("agents refuse a file over 16 MiB, so the server must not serve it");
    let agents_say = ferry_proto::LimitError::FileTooLarge {
        path: "big/values.yaml".into(),
        size,
        limit: ferry_proto::limits::DEFAULT_MAX_FILE_SIZE,
    };
    assert!(matches!(&err, ArtifactError::Limit { source, .. } if *source == agents_say));
    assert!(err.to_string().ends_with(&agents_say.to_string()), "{err}");
    Ok(())
}

#[test]
fn limits_reject_oversized_content_naming_the_file() -> Result<()> {
    let up = Upstream::new()?;
    up.write("small.yaml", "a: 1\n")?;
    up.write("data/huge.bin", vec![7u8; 300_000])?;
    up.commit_push("big")?;
    let cache = tempfile::tempdir()?;
    let (mirror, rev) = mirror_of(&up.file_url(), cache.path(), "limits")?;

    let tight = Limits {
        max_file_size: 100_000,
        ..Limits::default()
    };
    let err = build_artifact(&mirror, &rev, None, &tight).expect_err("file over limit");
    assert!(matches!(err, ArtifactError::Limit { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("data/huge.bin") && msg.contains(&rev.to_string()),
        "{msg}"
    );

    let few = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    let err = build_artifact(&mirror, &rev, None, &few).expect_err("too many entries");
    assert!(err.to_string().contains("more than 2 entries"), "{err}");

    let total = Limits {
        max_total_size: 10_000,
        ..Limits::default()
    };
    assert!(build_artifact(&mirror, &rev, None, &total).is_err());
    assert!(build_artifact(&mirror, &rev, None, &Limits::default()).is_ok());
    Ok(())
}
