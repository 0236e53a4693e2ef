//! [`Upstream`]: a bare repository and a work tree that pushes to it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Runs `git args…` in `dir` with a fixed identity and no user/system config, returning stdout.
pub fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Ferry Test")
        .env("GIT_AUTHOR_EMAIL", "test@ferry.invalid")
        .env("GIT_COMMITTER_NAME", "Ferry Test")
        .env("GIT_COMMITTER_EMAIL", "test@ferry.invalid")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .with_context(|| format!("running git {args:?} in {}", dir.display()))?;
    if !out.status.success() {
        bail!(
            "git {args:?} in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A bare repository `<root>/repo.git` and a work tree `<root>/work` on branch `main`.
pub struct Upstream {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Upstream {
    /// An empty upstream (no commits yet).
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-upstream-")
            .tempdir()?;
        let root = dir.path().to_path_buf();
        git(&root, &["init", "-q", "--bare", "-b", "main", "repo.git"])?;
        git(&root, &["init", "-q", "-b", "main", "work"])?;
        let up = Upstream { _dir: dir, root };
        up.git(&[
            "remote",
            "add",
            "origin",
            up.bare().to_str().context("utf-8 temp path")?,
        ])?;
        Ok(up)
    }

    /// The directory holding `repo.git` (what `git daemon --base-path` and
    /// `GIT_PROJECT_ROOT` want).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bare(&self) -> PathBuf {
        self.root.join("repo.git")
    }

    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }

    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare().display())
    }

    /// Runs git in the work tree.
    pub fn git(&self, args: &[&str]) -> Result<String> {
        git(&self.work(), args)
    }

    /// Writes a file (creating directories) in the work tree.
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) -> Result<&Self> {
        let p = self.work().join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, contents).with_context(|| format!("writing {}", p.display()))?;
        Ok(self)
    }

    /// Writes an executable file.
    pub fn write_exec(&self, path: &str, contents: impl AsRef<[u8]>) -> Result<&Self> {
        use std::os::unix::fs::PermissionsExt;
        self.write(path, contents)?;
        let p = self.work().join(path);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        Ok(self)
    }

    pub fn symlink(&self, path: &str, target: &str) -> Result<&Self> {
        let p = self.work().join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(target, &p)?;
        Ok(self)
    }

    pub fn remove(&self, path: &str) -> Result<&Self> {
        self.git(&["rm", "-q", "-r", path])?;
        Ok(self)
    }

    /// Stages everything and commits; returns the new commit id.
    pub fn commit(&self, message: &str) -> Result<String> {
        self.git(&["add", "-A"])?;
        self.git(&["commit", "-q", "--allow-empty", "-m", message])?;
        self.head()
    }

    /// Commits and pushes the current branch.
    pub fn commit_push(&self, message: &str) -> Result<String> {
        let c = self.commit(message)?;
        self.push()?;
        Ok(c)
    }

    pub fn head(&self) -> Result<String> {
        Ok(self.git(&["rev-parse", "HEAD"])?.trim().to_string())
    }

    /// Pushes the current branch.
    pub fn push(&self) -> Result<()> {
        self.git(&["push", "-q", "origin", "HEAD"])?;
        Ok(())
    }

    /// Rewrites the last commit and force-pushes it; returns the new commit id.
    pub fn amend_force_push(&self, message: &str) -> Result<String> {
        self.git(&["add", "-A"])?;
        self.git(&["commit", "-q", "--amend", "--allow-empty", "-m", message])?;
        self.git(&["push", "-q", "--force", "origin", "HEAD"])?;
        self.head()
    }

    /// Creates and switches to a new branch.
    pub fn branch(&self, name: &str) -> Result<()> {
        self.git(&["checkout", "-q", "-b", name])?;
        Ok(())
    }

    pub fn checkout(&self, name: &str) -> Result<()> {
        self.git(&["checkout", "-q", name])?;
        Ok(())
    }

    /// A lightweight tag at HEAD, pushed.
    pub fn tag(&self, name: &str) -> Result<()> {
        self.git(&["tag", name])?;
        self.git(&["push", "-q", "origin", &format!("refs/tags/{name}")])?;
        Ok(())
    }

    /// An annotated tag at HEAD, pushed.
    pub fn annotated_tag(&self, name: &str) -> Result<()> {
        self.git(&["tag", "-a", "-m", name, name])?;
        self.git(&["push", "-q", "origin", &format!("refs/tags/{name}")])?;
        Ok(())
    }

    /// Deletes a ref (`refs/heads/x`, `refs/tags/v1`) on the upstream.
    pub fn delete_remote_ref(&self, full_name: &str) -> Result<()> {
        self.git(&["push", "-q", "origin", &format!(":{full_name}")])?;
        Ok(())
    }
}
