//! [`GitDaemon`]: `git daemon` (the `git-daemon` program) serving an upstream's root on 127.0.0.1.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::poll::{Started, listening};

/// A running `git daemon`; killed on drop.
pub struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    /// Serves every repository under `base` (read-only) at `git://127.0.0.1:<port>/<name>`.
    pub fn start(base: &Path) -> Result<Self> {
        // Up to three attempts: another process may take the free port before the daemon does.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            // `git daemon` runs `git-daemon` as a child of its own and does not pass a SIGKILL
            // on: killing the wrapper leaked one daemon per test. Run the daemon itself.
            let mut child = Command::new(daemon_program()?)
                .args([
                    "--reuseaddr",
                    "--export-all",
                    "--listen=127.0.0.1",
                    &format!("--port={port}"),
                    &format!("--base-path={}", base.display()),
                ])
                .arg(base)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting git daemon")?;
            if let Ok(Started::Listening) =
                listening(&mut child, port, "git daemon", Duration::from_secs(10))
            {
                return Ok(GitDaemon { child, port });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        bail!("git daemon did not start listening on 127.0.0.1")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of repository `name` (e.g. `repo.git`).
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

/// `<git --exec-path>/git-daemon`.
fn daemon_program() -> Result<std::path::PathBuf> {
    let out = Command::new("git")
        .arg("--exec-path")
        .output()
        .context("running git --exec-path")?;
    if !out.status.success() {
        bail!("git --exec-path: {}", out.status);
    }
    let dir = String::from_utf8(out.stdout).context("git --exec-path: not UTF-8")?;
    let program = Path::new(dir.trim()).join("git-daemon");
    if !program.is_file() {
        bail!("{} not found (git --exec-path)", program.display());
    }
    Ok(program)
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
