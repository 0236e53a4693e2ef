//! Credentials and transport settings applied to one call's in-memory repository configuration.
//!
//! Nothing here is written to the mirror's config file. HTTP credentials (basic or bearer)
//! become an `http.extraHeader` override sent with every request of the call: gix refuses to
//! answer a 401 with basic credentials over plain `http://`, while Flux users expect in-cluster
//! `http://` Git servers with basic auth to work, and sending up front also saves the 401 round
//! trip. The 401 callback always answers "no credentials", so git credential helpers and
//! terminal prompts are never consulted. An SSH key is written to a private temporary
//! directory that lives exactly as long as the call.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use gix::credentials::helper::Action;
use gix::credentials::protocol::Outcome;

use super::{Credentials, GitError};

/// Files backing an SSH call; removed on drop.
pub(crate) struct SshFiles {
    dir: tempfile::TempDir,
}

/// How much of ssh's log is read back: enough for its last words, bounded.
const SSH_LOG_LIMIT: u64 = 64 * 1024;

impl SshFiles {
    /// Why ssh refused the connection, from its log (`ssh -E`): a host key that does not match
    /// known_hosts, or a key the server does not accept. gix only sees a closed pipe in the
    /// first case, so without this the user would get a bare "failed to fill whole buffer".
    pub(crate) fn refusal(&self) -> Option<String> {
        use std::io::Read as _;
        let mut log = Vec::new();
        std::fs::File::open(self.dir.path().join("ssh.log"))
            .ok()?
            .take(SSH_LOG_LIMIT)
            .read_to_end(&mut log)
            .ok()?;
        let text = String::from_utf8_lossy(&log);
        let has = |needle: &str| {
            text.lines()
                .find(|l| l.to_ascii_lowercase().contains(needle))
                .map(|l| l.trim().to_string())
        };
        if let Some(line) = has("host key verification failed") {
            return Some(format!(
                "{line} (the server's host key does not match known_hosts)"
            ));
        }
        has("permission denied").map(|line| format!("the server refused the SSH key: {line}"))
    }
}

/// Applies timeouts and credentials to `repo`'s in-memory configuration.
pub(crate) fn configure(
    repo: &mut gix::Repository,
    url: &str,
    auth: Option<&Credentials>,
    timeout: Duration,
) -> Result<Option<SshFiles>, GitError> {
    let secs = timeout.as_secs().max(1);
    let mut values = vec![
        format!(
            "gitoxide.http.connectTimeout={}",
            timeout.as_millis().max(1)
        ),
        // Abort transfers that stall below 1 byte/s for the whole timeout.
        "http.lowSpeedLimit=1".to_string(),
        format!("http.lowSpeedTime={secs}"),
        // Redirects could carry the Authorization header to another host.
        "http.followRedirects=initial".to_string(),
        "core.askPass=".to_string(),
        "credential.helper=".to_string(),
    ];
    let mut ssh = None;
    let line_break = |field: &str| GitError::Invalid {
        url: url.to_string(),
        detail: format!("{field} contains a line break"),
    };
    match auth {
        Some(Credentials::Bearer(token)) => {
            if token.contains(['\n', '\r']) {
                return Err(line_break("bearerToken"));
            }
            values.push(format!("http.extraHeader=Authorization: Bearer {token}"));
        }
        Some(Credentials::Basic { username, password }) => {
            use base64::Engine as _;
            if username.contains(['\n', '\r', ':']) {
                return Err(line_break("username (or a colon)"));
            }
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            values.push(format!("http.extraHeader=Authorization: Basic {encoded}"));
        }
        Some(Credentials::Ssh {
            identity,
            known_hosts,
        }) => {
            let (files, command) = ssh_command(url, identity, known_hosts)?;
            values.push(format!("core.sshCommand={command}"));
            ssh = Some(files);
        }
        None => {}
    }
    let mut snapshot = repo.config_snapshot_mut();
    // The values may hold a token: report that applying them failed, never what they were.
    let applied = snapshot
        .append_config(values.iter().map(String::as_str), gix::config::Source::Api)
        .is_ok();
    if !applied || snapshot.commit().is_err() {
        return Err(GitError::Invalid {
            url: url.to_string(),
            detail: "could not apply transport settings (credentials or timeout)".into(),
        });
    }
    Ok(ssh)
}

/// The credential callback gix calls on a 401: always "none" (credentials were already sent),
/// which makes gix fail with an authentication error instead of prompting.
pub(crate) fn helper(_action: Action) -> gix::Result<Option<Outcome>> {
    Ok(None)
}

fn ssh_command(
    url: &str,
    identity: &[u8],
    known_hosts: &[u8],
) -> Result<(SshFiles, String), GitError> {
    let io_err = |e: std::io::Error| GitError::Invalid {
        url: url.to_string(),
        detail: format!("writing the SSH key to a temporary file: {e}"),
    };
    let dir = tempfile::Builder::new()
        .prefix("ferry-ssh-")
        .tempdir()
        .map_err(io_err)?;
    let key = dir.path().join("identity");
    let hosts = dir.path().join("known_hosts");
    write_private(&key, identity).map_err(io_err)?;
    write_private(&hosts, known_hosts).map_err(io_err)?;
    // `-E`: ssh's diagnostics go to a file read back by `SshFiles::refusal`.
    let command = format!(
        "ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes \
         -o BatchMode=yes -o GlobalKnownHostsFile=/dev/null -E {}",
        key.display(),
        hosts.display(),
        dir.path().join("ssh.log").display()
    );
    Ok((SshFiles { dir }, command))
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(data)?;
    if !data.ends_with(b"\n") {
        // OpenSSH refuses keys whose last line is unterminated.
        file.write_all(b"\n")?;
    }
    Ok(())
}
