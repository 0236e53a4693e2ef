//! The Git mirror against a real OpenSSH `sshd` over `ssh://` with a private key and
//! known_hosts (Flux's `identity` / `known_hosts` secret fields): the same artifact as over
//! `file://`, and the failures a user must be able to tell apart — a key the server refuses and
//! a host key that does not match known_hosts.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;
use ferry_proto::{Digest, Revision};
use ferry_source_server::artifact::{Limits, build_artifact};
use ferry_source_server::git::{Credentials, GitSource, Mirror, redact_url};
use ferry_tests::upstream::{SshServer, Upstream};

fn source(url: String, auth: Option<Credentials>) -> GitSource {
    GitSource {
        url,
        reference: None,
        auth,
        timeout: Duration::from_secs(30),
    }
}

fn ssh_auth(identity: &[u8], known_hosts: &str) -> Option<Credentials> {
    Some(Credentials::Ssh {
        identity: identity.to_vec(),
        known_hosts: known_hosts.as_bytes().to_vec(),
    })
}

fn upstream_with_app() -> Result<Upstream> {
    let up = Upstream::new()?;
    up.write("deploy/app.yaml", "kind: ConfigMap\n")?;
    up.write("README.md", "# app\n")?;
    up.commit_push("first")?;
    Ok(up)
}

/// check + fetch + build; returns the revision and the artifact digest.
fn sync(cache: &Path, key: &str, src: &GitSource) -> Result<(Revision, Digest)> {
    let stop = AtomicBool::new(false);
    let mirror = Mirror::open_or_init(cache, key)?;
    let rev = mirror.check(src, &stop)?;
    let fetched = mirror.fetch(src, &rev, &stop)?;
    assert_eq!(fetched, rev);
    let built = build_artifact(&mirror, &rev, None, &Limits::default())?;
    Ok((rev, built.digest))
}

#[test]
fn ssh_with_key_and_known_hosts_builds_the_same_artifact_as_file_url() -> Result<()> {
    let up = upstream_with_app()?;
    let sshd = SshServer::start()?;
    let cache = tempfile::tempdir()?;

    let (file_rev, file_digest) = sync(cache.path(), "file", &source(up.file_url(), None))?;
    let src = source(
        sshd.url(&up.bare()),
        ssh_auth(sshd.client_key(), &sshd.known_hosts()),
    );
    let (rev, digest) = sync(cache.path(), "ssh", &src)?;
    assert_eq!(rev, file_rev);
    assert_eq!(rev.commit(), up.head()?);
    assert_eq!(digest, file_digest, "same tree, same digest, any transport");

    // The next poll over ssh follows a new commit.
    up.write("deploy/more.yaml", "kind: Secret\n")?;
    let second = up.commit_push("second")?;
    let (rev, digest) = sync(cache.path(), "ssh", &src)?;
    assert_eq!(rev.commit(), second);
    assert_ne!(digest, file_digest);
    Ok(())
}

#[test]
fn ssh_key_the_server_refuses_is_an_authentication_failure() -> Result<()> {
    let up = upstream_with_app()?;
    let sshd = SshServer::start()?;
    let cache = tempfile::tempdir()?;
    let mirror = Mirror::open_or_init(cache.path(), "ssh-wrong-key")?;
    let url = sshd.url(&up.bare());
    let src = source(
        url.clone(),
        ssh_auth(&sshd.other_key()?, &sshd.known_hosts()),
    );
    let err = mirror
        .check(&src, &AtomicBool::new(false))
        .expect_err("the server does not know this key");
    assert_eq!(err.reason(), "AuthenticationFailed", "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&redact_url(&url)), "names the URL: {msg}");
    assert!(msg.contains("refused the SSH key"), "says why: {msg}");
    assert!(!msg.contains("PRIVATE KEY"), "never shows the key: {msg}");
    Ok(())
}

#[test]
fn ssh_host_key_not_in_known_hosts_is_refused() -> Result<()> {
    let up = upstream_with_app()?;
    let sshd = SshServer::start()?;
    let cache = tempfile::tempdir()?;
    let mirror = Mirror::open_or_init(cache.path(), "ssh-wrong-host")?;
    let url = sshd.url(&up.bare());
    let src = source(
        url.clone(),
        ssh_auth(sshd.client_key(), &sshd.other_known_hosts()?),
    );
    let err = mirror
        .check(&src, &AtomicBool::new(false))
        .expect_err("the host key does not match known_hosts");
    assert_eq!(err.reason(), "AuthenticationFailed", "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&redact_url(&url)), "names the URL: {msg}");
    assert!(
        msg.to_ascii_lowercase()
            .contains("host key verification failed"),
        "says why: {msg}"
    );
    Ok(())
}
