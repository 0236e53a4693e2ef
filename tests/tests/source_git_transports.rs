//! The Git mirror against real upstreams over file://, git:// (`git daemon`) and smart HTTP
//! (`git http-backend`), with and without auth: what a user sees when the ref moves, when it
//! does not, and when credentials or hosts are wrong.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;
use ferry_proto::Revision;
use ferry_source_server::artifact::{Limits, build_artifact};
use ferry_source_server::git::{Credentials, GitError, GitSource, Mirror};
use ferry_tests::upstream::{GitDaemon, HttpAuth, SmartHttp, Upstream};

fn source(url: String, auth: Option<Credentials>) -> GitSource {
    GitSource {
        url,
        reference: None,
        auth,
        timeout: Duration::from_secs(30),
    }
}

fn upstream_with_app() -> Result<Upstream> {
    let up = Upstream::new()?;
    up.write("deploy/app.yaml", "kind: ConfigMap\n")?;
    up.commit_push("first")?;
    Ok(up)
}

/// check + fetch + build; returns the revision and the artifact's file names.
fn sync(cache: &Path, key: &str, src: &GitSource) -> Result<(Revision, Vec<String>)> {
    let stop = AtomicBool::new(false);
    let mirror = Mirror::open_or_init(cache, key)?;
    let rev = mirror.check(src, &stop)?;
    let fetched = mirror.fetch(src, &rev, &stop)?;
    assert_eq!(fetched, rev);
    let built = build_artifact(&mirror, &rev, None, &Limits::default())?;
    Ok((rev, tar_names(&built.gz)?))
}

fn tar_names(gz: &[u8]) -> Result<Vec<String>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut names = Vec::new();
    for e in archive.entries()? {
        names.push(String::from_utf8(e?.path_bytes().to_vec())?);
    }
    Ok(names)
}

#[test]
fn file_url_mirrors_the_main_branch_and_follows_new_commits() -> Result<()> {
    let up = upstream_with_app()?;
    let cache = tempfile::tempdir()?;
    let src = source(up.file_url(), None);
    let (rev, names) = sync(cache.path(), "file-src", &src)?;
    assert_eq!(rev.to_string(), format!("main@sha1:{}", up.head()?));
    assert_eq!(names, ["deploy/", "deploy/app.yaml"]);

    up.write("deploy/more.yaml", "kind: Secret\n")?;
    let second = up.commit_push("second")?;
    let (rev, names) = sync(cache.path(), "file-src", &src)?;
    assert_eq!(rev.commit(), second);
    assert_eq!(names, ["deploy/", "deploy/app.yaml", "deploy/more.yaml"]);
    Ok(())
}

#[test]
fn git_daemon_transport() -> Result<()> {
    let up = upstream_with_app()?;
    let daemon = GitDaemon::start(up.root())?;
    let cache = tempfile::tempdir()?;
    let (rev, names) = sync(
        cache.path(),
        "daemon",
        &source(daemon.url("repo.git"), None),
    )?;
    assert_eq!(rev.commit(), up.head()?);
    assert_eq!(names, ["deploy/", "deploy/app.yaml"]);
    Ok(())
}

#[test]
fn smart_http_unchanged_poll_lists_refs_but_transfers_no_pack() -> Result<()> {
    let up = upstream_with_app()?;
    let server = SmartHttp::start(up.root(), HttpAuth::None)?;
    let cache = tempfile::tempdir()?;
    let src = source(server.url("repo.git"), None);
    let (rev, _) = sync(cache.path(), "http", &src)?;
    assert_eq!(server.pack_fetches(), 1);

    let stop = AtomicBool::new(false);
    let mirror = Mirror::open_or_init(cache.path(), "http")?;
    let requests = server.requests();
    assert_eq!(mirror.check(&src, &stop)?, rev, "the ref has not moved");
    assert!(server.requests() > requests, "check asks the server");
    assert_eq!(server.pack_fetches(), 1, "check never fetches a pack");
    // A fetch of a revision already mirrored asks for no pack either.
    assert_eq!(mirror.fetch(&src, &rev, &stop)?, rev);
    assert_eq!(server.pack_fetches(), 1);
    Ok(())
}

#[test]
fn smart_http_basic_auth_right_missing_and_wrong_password() -> Result<()> {
    let up = upstream_with_app()?;
    let auth = HttpAuth::Basic {
        username: "flux".into(),
        password: "s3cret-pw".into(),
    };
    let server = SmartHttp::start(up.root(), auth)?;
    let cache = tempfile::tempdir()?;
    let good = Credentials::Basic {
        username: "flux".into(),
        password: "s3cret-pw".into(),
    };
    let (rev, _) = sync(
        cache.path(),
        "basic",
        &source(server.url("repo.git"), Some(good)),
    )?;
    assert_eq!(rev.commit(), up.head()?);

    let stop = AtomicBool::new(false);
    let mirror = Mirror::open_or_init(cache.path(), "basic-bad")?;
    let missing = mirror
        .check(&source(server.url("repo.git"), None), &stop)
        .expect_err("no credentials");
    assert!(matches!(missing, GitError::AuthFailed { .. }), "{missing}");

    let wrong = Credentials::Basic {
        username: "flux".into(),
        password: "wrong-pw-123".into(),
    };
    let err = mirror
        .check(&source(server.url("repo.git"), Some(wrong)), &stop)
        .expect_err("wrong password");
    assert_eq!(err.reason(), "AuthenticationFailed", "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&server.url("repo.git")),
        "names the URL: {msg}"
    );
    assert!(
        !msg.contains("wrong-pw-123"),
        "never shows the password: {msg}"
    );
    Ok(())
}

#[test]
fn smart_http_bearer_token() -> Result<()> {
    let up = upstream_with_app()?;
    let server = SmartHttp::start(up.root(), HttpAuth::Bearer("tok-abc".into()))?;
    let cache = tempfile::tempdir()?;
    let src = source(
        server.url("repo.git"),
        Some(Credentials::Bearer("tok-abc".into())),
    );
    let (rev, _) = sync(cache.path(), "bearer", &src)?;
    assert_eq!(rev.commit(), up.head()?);

    let stop = AtomicBool::new(false);
    let mirror = Mirror::open_or_init(cache.path(), "bearer")?;
    let bad = source(
        server.url("repo.git"),
        Some(Credentials::Bearer("tok-wrong".into())),
    );
    let err = mirror.check(&bad, &stop).expect_err("wrong token");
    assert_eq!(err.reason(), "AuthenticationFailed", "{err}");
    assert!(!err.to_string().contains("tok-wrong"));
    Ok(())
}

#[test]
fn credentials_in_the_url_never_reach_messages() -> Result<()> {
    let up = upstream_with_app()?;
    let server = SmartHttp::start(up.root(), HttpAuth::None)?;
    let cache = tempfile::tempdir()?;
    let url = server
        .url("missing.git")
        .replace("http://", "http://u:hunter2@");
    let stop = AtomicBool::new(false);
    let mirror = Mirror::open_or_init(cache.path(), "url-creds")?;
    let err = mirror
        .check(&source(url, None), &stop)
        .expect_err("no such repository");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    Ok(())
}

#[test]
fn unreachable_hosts_and_missing_repositories_are_classified() -> Result<()> {
    let cache = tempfile::tempdir()?;
    let stop = AtomicBool::new(false);
    let mirror = Mirror::open_or_init(cache.path(), "unreachable")?;

    // A port nobody listens on: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    for url in [
        format!("git://127.0.0.1:{port}/repo.git"),
        format!("http://127.0.0.1:{port}/repo.git"),
        "file:///nonexistent/ferry/repo.git".to_string(),
    ] {
        let err = mirror
            .check(&source(url.clone(), None), &stop)
            .expect_err("unreachable");
        assert_eq!(err.reason(), "UnreachableHost", "{url}: {err}");
        assert!(err.to_string().contains(&url), "{err}");
    }
    Ok(())
}

#[test]
fn a_server_that_accepts_and_stalls_times_out() -> Result<()> {
    // Accepts connections and never answers; the listener lives until the test ends.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(16).flatten() {
            held.push(conn);
        }
    });
    let cache = tempfile::tempdir()?;
    let mirror = Mirror::open_or_init(cache.path(), "stall")?;
    let mut src = source(format!("http://127.0.0.1:{port}/repo.git"), None);
    src.timeout = Duration::from_secs(1);
    let start = std::time::Instant::now();
    let err = mirror
        .check(&src, &AtomicBool::new(false))
        .expect_err("stalled");
    assert_eq!(err.reason(), "Timeout", "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}",
        start.elapsed()
    );
    Ok(())
}
