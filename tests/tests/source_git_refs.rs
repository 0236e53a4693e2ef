//! Ref resolution against a real upstream: tags (lightweight and annotated), semver ranges,
//! arbitrary ref names, pinned commits, force-pushed branches and deleted refs.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Result;
use ferry_proto::{GitRepositoryRef, Revision};
use ferry_source_server::artifact::{Limits, build_artifact};
use ferry_source_server::git::{GitSource, Mirror};
use ferry_tests::upstream::Upstream;

fn source(up: &Upstream, reference: GitRepositoryRef) -> GitSource {
    GitSource {
        url: up.file_url(),
        reference: Some(reference),
        auth: None,
        timeout: Duration::from_secs(30),
    }
}

fn check_and_fetch(mirror: &Mirror, src: &GitSource) -> Result<Revision> {
    let stop = AtomicBool::new(false);
    let rev = mirror.check(src, &stop)?;
    Ok(mirror.fetch(src, &rev, &stop)?)
}

fn file_in_artifact(mirror: &Mirror, rev: &Revision, path: &str) -> Result<Option<String>> {
    let built = build_artifact(mirror, rev, None, &Limits::default())?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&built.gz[..]));
    for e in archive.entries()? {
        let mut e = e?;
        if e.path_bytes().as_ref() == path.as_bytes() {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s)?;
            return Ok(Some(s));
        }
    }
    Ok(None)
}

#[test]
fn tags_resolve_to_their_commit_including_annotated_ones() -> Result<()> {
    let up = Upstream::new()?;
    up.write("v", "1")?;
    let c1 = up.commit_push("one")?;
    up.tag("v1.0.0")?;
    up.write("v", "2")?;
    let c2 = up.commit_push("two")?;
    up.annotated_tag("v2.0.0")?;
    let cache = tempfile::tempdir()?;
    let mirror = Mirror::open_or_init(cache.path(), "tags")?;

    let tag = |t: &str| GitRepositoryRef {
        tag: Some(t.into()),
        ..Default::default()
    };
    let rev = check_and_fetch(&mirror, &source(&up, tag("v1.0.0")))?;
    assert_eq!(rev.to_string(), format!("v1.0.0@sha1:{c1}"));
    assert_eq!(file_in_artifact(&mirror, &rev, "v")?.as_deref(), Some("1"));
    let rev = check_and_fetch(&mirror, &source(&up, tag("v2.0.0")))?;
    assert_eq!(
        rev.to_string(),
        format!("v2.0.0@sha1:{c2}"),
        "annotated tag peeled"
    );
    assert_eq!(file_in_artifact(&mirror, &rev, "v")?.as_deref(), Some("2"));
    Ok(())
}

#[test]
fn semver_follows_the_highest_matching_tag() -> Result<()> {
    let up = Upstream::new()?;
    let mut commits = Vec::new();
    for (i, t) in ["v1.0.0", "v1.2.0", "v2.0.0", "v1.3.0-rc.1"]
        .iter()
        .enumerate()
    {
        up.write("n", i.to_string())?;
        commits.push(up.commit_push(t)?);
        up.annotated_tag(t)?;
    }
    let cache = tempfile::tempdir()?;
    let mirror = Mirror::open_or_init(cache.path(), "semver")?;
    let src = source(
        &up,
        GitRepositoryRef {
            semver: Some("^1".into()),
            ..Default::default()
        },
    );
    let rev = check_and_fetch(&mirror, &src)?;
    assert_eq!(rev.to_string(), format!("v1.2.0@sha1:{}", commits[1]));
    assert_eq!(file_in_artifact(&mirror, &rev, "n")?.as_deref(), Some("1"));

    up.write("n", "new")?;
    let c = up.commit_push("1.4")?;
    up.tag("v1.4.0")?;
    let rev = check_and_fetch(&mirror, &src)?;
    assert_eq!(rev.to_string(), format!("v1.4.0@sha1:{c}"));
    assert_eq!(
        file_in_artifact(&mirror, &rev, "n")?.as_deref(),
        Some("new")
    );

    let none = source(
        &up,
        GitRepositoryRef {
            semver: Some(">=5".into()),
            ..Default::default()
        },
    );
    let err = mirror
        .check(&none, &AtomicBool::new(false))
        .expect_err("no match");
    assert_eq!(err.reason(), "RefNotFound");
    assert!(err.to_string().contains(">=5"), "{err}");
    Ok(())
}

#[test]
fn force_pushed_branch_is_followed() -> Result<()> {
    let up = Upstream::new()?;
    up.write("app.yaml", "a")?;
    up.commit_push("base")?;
    up.write("app.yaml", "before")?;
    let before = up.commit_push("before")?;
    let cache = tempfile::tempdir()?;
    let mirror = Mirror::open_or_init(cache.path(), "force")?;
    let src = source(&up, GitRepositoryRef::default());
    assert_eq!(check_and_fetch(&mirror, &src)?.commit(), before);

    up.write("app.yaml", "rewritten")?;
    let after = up.amend_force_push("rewritten history")?;
    assert_ne!(before, after);
    let rev = check_and_fetch(&mirror, &src)?;
    assert_eq!(rev.to_string(), format!("main@sha1:{after}"));
    assert_eq!(
        file_in_artifact(&mirror, &rev, "app.yaml")?.as_deref(),
        Some("rewritten")
    );
    Ok(())
}

#[test]
fn deleted_ref_is_an_error_and_the_mirror_keeps_the_last_revision() -> Result<()> {
    let up = Upstream::new()?;
    up.commit_push("main")?;
    up.branch("feature")?;
    up.write("f", "feature work")?;
    up.commit_push("feature")?;
    let cache = tempfile::tempdir()?;
    let mirror = Mirror::open_or_init(cache.path(), "deleted")?;
    let src = source(
        &up,
        GitRepositoryRef {
            branch: Some("feature".into()),
            ..Default::default()
        },
    );
    let last = check_and_fetch(&mirror, &src)?;

    up.delete_remote_ref("refs/heads/feature")?;
    let err = mirror
        .check(&src, &AtomicBool::new(false))
        .expect_err("ref deleted");
    assert_eq!(err.reason(), "RefNotFound");
    let msg = err.to_string();
    assert!(
        msg.contains("feature") && msg.contains(&up.file_url()),
        "{msg}"
    );
    // The last good revision can still be built from the mirror.
    assert_eq!(
        file_in_artifact(&mirror, &last, "f")?.as_deref(),
        Some("feature work")
    );
    Ok(())
}

#[test]
fn missing_branch_is_ref_not_found() -> Result<()> {
    let up = Upstream::new()?;
    up.commit_push("main")?;
    let cache = tempfile::tempdir()?;
    let mirror = Mirror::open_or_init(cache.path(), "missing")?;
    let src = source(
        &up,
        GitRepositoryRef {
            branch: Some("nope".into()),
            ..Default::default()
        },
    );
    let err = mirror
        .check(&src, &AtomicBool::new(false))
        .expect_err("no branch");
    assert_eq!(err.reason(), "RefNotFound", "{err}");
    assert!(err.to_string().contains("branch \"nope\""), "{err}");
    Ok(())
}

#[test]
fn any_ref_name_and_pinned_commits() -> Result<()> {
    let up = Upstream::new()?;
    up.write("x", "old")?;
    let old = up.commit_push("old")?;
    up.write("x", "new")?;
    up.commit_push("new")?;
    up.write("x", "pr")?;
    let pr = up.commit("pr")?;
    up.git(&["push", "-q", "origin", "HEAD:refs/pull/7/head"])?;
    let cache = tempfile::tempdir()?;
    let mirror = Mirror::open_or_init(cache.path(), "names")?;

    let by_name = source(
        &up,
        GitRepositoryRef {
            name: Some("refs/pull/7/head".into()),
            ..Default::default()
        },
    );
    let rev = check_and_fetch(&mirror, &by_name)?;
    assert_eq!(rev.to_string(), format!("refs/pull/7/head@sha1:{pr}"));
    assert_eq!(file_in_artifact(&mirror, &rev, "x")?.as_deref(), Some("pr"));

    let pinned = source(
        &up,
        GitRepositoryRef {
            commit: Some(old.clone()),
            ..Default::default()
        },
    );
    let rev = check_and_fetch(&mirror, &pinned)?;
    assert_eq!(rev.to_string(), format!("sha1:{old}"));
    assert_eq!(
        file_in_artifact(&mirror, &rev, "x")?.as_deref(),
        Some("old")
    );

    let on_branch = source(
        &up,
        GitRepositoryRef {
            branch: Some("main".into()),
            commit: Some(old.clone()),
            ..Default::default()
        },
    );
    assert_eq!(
        check_and_fetch(&mirror, &on_branch)?.to_string(),
        format!("main@sha1:{old}")
    );

    let fresh = Mirror::open_or_init(cache.path(), "names-absent")?;
    let absent = source(
        &up,
        GitRepositoryRef {
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            ..Default::default()
        },
    );
    let err = check_and_fetch(&fresh, &absent).expect_err("commit not on main");
    assert_eq!(
        err.downcast_ref::<ferry_source_server::git::GitError>()
            .map(|e| e.reason()),
        Some("RefNotFound"),
        "{err}"
    );
    Ok(())
}
