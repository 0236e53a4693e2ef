//! [`SshServer`]: a private OpenSSH `sshd` on 127.0.0.1 serving upstreams over `ssh://`.
//!
//! Everything sshd needs lives in one temporary directory: a config, a generated ed25519 host
//! key, an `authorized_keys` holding one generated client key, and the pid file. Only public-key
//! login of the current user is allowed; the server runs in the foreground (`-D`) so killing the
//! child on drop stops it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::poll::{Started, listening};

const SSHD: &str = "/usr/sbin/sshd";
const INSTALL: &str = "apt-get update -qq && apt-get install -y -qq openssh-server openssh-client";

/// A running `sshd`; killed on drop.
pub struct SshServer {
    child: Child,
    port: u16,
    user: String,
    dir: tempfile::TempDir,
    client_key: Vec<u8>,
    host_public_key: String,
}

impl SshServer {
    /// Starts sshd accepting the generated client key ([`SshServer::client_key`]) for the
    /// current user. Fails naming the install command when OpenSSH is missing.
    pub fn start() -> Result<Self> {
        if !Path::new(SSHD).exists() {
            bail!("{SSHD} not found: install OpenSSH with `{INSTALL}`");
        }
        let dir = tempfile::Builder::new().prefix("ferry-sshd-").tempdir()?;
        let host_key = keygen(dir.path(), "host_key")?;
        let client_key = keygen(dir.path(), "client_key")?;
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized)?;
        // sshd insists on its privilege-separation directory even when not dropping privileges.
        if !Path::new("/run/sshd").exists() {
            std::fs::create_dir_all("/run/sshd").context("creating /run/sshd for sshd")?;
        }
        let user = current_user()?;
        let client = std::fs::read(&client_key)?;
        let host_public = std::fs::read_to_string(host_key.with_extension("pub"))?;
        // `<type> <base64> [comment]`: known_hosts wants the first two fields.
        let host_public_key = host_public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");

        // Up to three attempts: another process may take the free port before sshd does.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let config = dir.path().join("sshd_config");
            std::fs::write(
                &config,
                sshd_config(dir.path(), port, &host_key, &authorized),
            )?;
            let log = dir.path().join("sshd.log");
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .spawn()
                .with_context(|| format!("starting {SSHD}"))?;
            if let Ok(Started::Listening) =
                listening(&mut child, port, SSHD, Duration::from_secs(10))
            {
                return Ok(SshServer {
                    child,
                    port,
                    user,
                    dir,
                    client_key: client,
                    host_public_key,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        bail!("sshd did not start listening on 127.0.0.1: {last_log}")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ssh://<user>@127.0.0.1:<port>/<absolute path>` for the bare repository at `repo`.
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            repo.display()
        )
    }

    /// The private key sshd accepts (OpenSSH format).
    pub fn client_key(&self) -> &[u8] {
        &self.client_key
    }

    /// A known_hosts line that matches this server's host key.
    pub fn known_hosts(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_public_key)
    }

    /// A fresh private key sshd does not accept.
    pub fn other_key(&self) -> Result<Vec<u8>> {
        let path = keygen(self.dir.path(), &format!("other_{}", rand_suffix()))?;
        Ok(std::fs::read(path)?)
    }

    /// A known_hosts line for this host and port with a different (fresh) host key.
    pub fn other_known_hosts(&self) -> Result<String> {
        let path = keygen(self.dir.path(), &format!("other_host_{}", rand_suffix()))?;
        let public = std::fs::read_to_string(path.with_extension("pub"))?;
        let key: Vec<&str> = public.split_whitespace().take(2).collect();
        Ok(format!("[127.0.0.1]:{} {}\n", self.port, key.join(" ")))
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sshd_config(dir: &Path, port: u16, host_key: &Path, authorized: &Path) -> String {
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {host}\n\
         AuthorizedKeysFile {auth}\n\
         PidFile {pid}\n\
         StrictModes no\n\
         UsePAM no\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         AllowTcpForwarding no\n\
         X11Forwarding no\n\
         LogLevel ERROR\n",
        host = host_key.display(),
        auth = authorized.display(),
        pid = dir.join("sshd.pid").display(),
    )
}

/// Generates an unencrypted ed25519 key `<dir>/<name>` (+ `.pub`), returning the private key path.
fn keygen(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ferry-test", "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running ssh-keygen (install OpenSSH with `{INSTALL}`)"))?;
    if !out.status.success() {
        bail!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(path)
}

fn current_user() -> Result<String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .context("running id -un")?;
    let user = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || user.is_empty() {
        bail!("could not determine the current user name");
    }
    Ok(user)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
