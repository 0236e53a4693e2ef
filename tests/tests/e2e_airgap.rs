//! Air gap: a site whose source server has no route to the Git server gets the upstream's
//! revisions through bundles (`ferry export` upstream, `ferry-source-server import` at the
//! site, signed), and the site's agent applies them; an incremental bundle carries the next
//! revision to the running site server. Tampered bundles are refused and leave the store as it
//! was.

mod airgap_support;
mod e2e_support;

use std::time::Duration;

use airgap_support::{Entries, UpstreamServer, entries, run, snapshot, wait_source, write_entries};
use anyhow::Result;
use e2e_support::{Env, NS, seed_spec, write_seed};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_without_a_route_to_git_gets_the_revisions_through_signed_bundles() -> Result<()> {
    let mut env = Env::new().await?;
    let work = env.work.path().to_path_buf();
    write_seed(&env.upstream, "app", "v1.0.0")?;
    let first = env.upstream.commit_push("seed")?;
    let upstream =
        UpstreamServer::start(&work.join("upstream"), NS, &env.upstream.file_url(), &[])?;
    let up1 = upstream.wait_commit(NS, &first).await?;

    let key = work.join("release");
    run("ferry-source-server", &[&"keygen", &"--out", &key])?.ok()?;
    let (sign, verify) = (work.join("release.key"), work.join("release.pub"));
    let b1 = work.join("b1.tar");
    let export = run(
        "ferry",
        &[
            &"export",
            &"--storage",
            &upstream.store(),
            &"--sign-key",
            &sign,
            &"--out",
            &b1,
        ],
    )?
    .ok()?;
    // The identity is the sha256 of the index, the bundle's first entry.
    let index = &entries(&b1)?[0];
    assert_eq!(index.0, "index.json");
    let identity = ferry_proto::Digest::of(&index.1).to_string();
    assert_eq!(
        export.stdout.lines().next(),
        Some(identity.as_str()),
        "{}",
        export.stdout
    );

    // The site: its GitRepository names no reachable upstream; its store is filled by import.
    let site_store = work.join("storage");
    let import = run(
        "ferry-source-server",
        &[
            &"import",
            &b1,
            &"--storage",
            &site_store,
            &"--verify-key",
            &verify,
        ],
    )?
    .ok()?;
    assert!(import.stdout.starts_with(&identity), "{}", import.stdout);
    assert!(
        import
            .stdout
            .contains(&format!("GitRepository {NS}/app: main@sha1:{first}")),
        "{}",
        import.stdout
    );
    env.sources.clear();
    env.extra_sources.push(format!(
        "apiVersion: source.ferry.dev/v1\nkind: GitRepository\nmetadata: {{name: app, namespace: {NS}}}\n\
         spec:\n  url: ferry+import:http://127.0.0.1:9/no-route.git\n  interval: 1s\n  ref: {{branch: main}}\n"
    ));
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("app", seed_spec("./app")).await?;
    env.wait_image("my-registry/my-app:v1.0.0", LIMIT).await?;
    let site1 = wait_source(&env.source_url(), NS, "app", &first).await?;
    assert_eq!(
        (site1.digest, &site1.revision),
        (up1.digest, &up1.revision),
        "the site serves the upstream's digest"
    );
    let want = format!("main@sha1:{first}");
    env.wait_for(
        &format!("Kustomization app applied {want}"),
        LIMIT,
        || async {
            let ks = env.kustomization("app").await?;
            let applied = ks.status.and_then(|s| s.last_applied_revision);
            Ok((applied.as_deref() == Some(want.as_str())).then_some(()))
        },
    )
    .await?;

    // Next revision: an incremental bundle, imported while the site server runs; the server
    // adopts it and the agent applies it through the event stream.
    write_seed(&env.upstream, "app", "v2.0.0")?;
    let second = env.upstream.commit_push("v2")?;
    let up2 = upstream.wait_commit(NS, &second).await?;
    let b2 = work.join("b2.tar");
    run(
        "ferry",
        &[
            &"export",
            &"--storage",
            &upstream.store(),
            &"--since",
            &b1,
            &"--sign-key",
            &sign,
            &"--out",
            &b2,
        ],
    )?
    .ok()?;
    let names: Vec<String> = entries(&b2)?.into_iter().map(|(n, _)| n).collect();
    assert!(
        !names.iter().any(|n| n.contains(&up1.digest.hex())),
        "the incremental bundle leaves out what the site has: {names:?}"
    );
    assert!(
        names.contains(&format!("deltas/sha256/{}.gz", up2.digest.hex())),
        "a one-file change travels as a delta: {names:?}"
    );
    let import = run(
        "ferry",
        &[
            &"import",
            &b2,
            &"--storage",
            &site_store,
            &"--verify-key",
            &verify,
        ],
    )?
    .ok()?;
    assert!(import.stdout.contains(&second), "{}", import.stdout);
    env.wait_image("my-registry/my-app:v2.0.0", LIMIT).await?;
    let site2 = wait_source(&env.source_url(), NS, "app", &second).await?;
    assert_eq!(site2.digest, up2.digest);

    // Importing the same bundle again changes nothing.
    let before = snapshot(&site_store)?;
    let again = run(
        "ferry-source-server",
        &[
            &"import",
            &b2,
            &"--storage",
            &site_store,
            &"--verify-key",
            &verify,
        ],
    )?
    .ok()?;
    assert!(
        again.stdout.contains("0 artifacts written") && again.stdout.contains("unchanged"),
        "{}",
        again.stdout
    );
    assert_eq!(snapshot(&site_store)?, before);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_bundles_are_refused_and_leave_the_store_as_it_was() -> Result<()> {
    let work = tempfile::tempdir()?;
    let up = ferry_tests::upstream::Upstream::new()?;
    up.write(
        "app/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    )?;
    // Unchanged between the revisions: the second travels as a delta.
    up.write("data/blob.bin", noise(7, 64 << 10))?;
    let first = up.commit_push("one")?;
    let server = UpstreamServer::start(&work.path().join("up"), NS, &up.file_url(), &[])?;
    server.wait_commit(NS, &first).await?;
    run(
        "ferry-source-server",
        &[&"keygen", &"--out", &work.path().join("k")],
    )?
    .ok()?;
    run(
        "ferry-source-server",
        &[&"keygen", &"--out", &work.path().join("other")],
    )?
    .ok()?;
    let (sign, verify) = (work.path().join("k.key"), work.path().join("k.pub"));
    let full = work.path().join("full.tar");
    run(
        "ferry-source-server",
        &[
            &"export",
            &"--storage",
            &server.store(),
            &"--sign-key",
            &sign,
            &"--out",
            &full,
        ],
    )?
    .ok()?;
    // A second revision, so the tampered bundles carry an artifact the store lacks.
    up.write(
        "app/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
    )?;
    let second = up.commit_push("two")?;
    server.wait_commit(NS, &second).await?;
    let good = work.path().join("good.tar");
    run(
        "ferry-source-server",
        &[
            &"export",
            &"--storage",
            &server.store(),
            &"--since",
            &full,
            &"--sign-key",
            &sign,
            &"--out",
            &good,
        ],
    )?
    .ok()?;

    // The destination already holds the first bundle.
    let store = work.path().join("site");
    run(
        "ferry-source-server",
        &[
            &"import",
            &full,
            &"--storage",
            &store,
            &"--verify-key",
            &verify,
        ],
    )?
    .ok()?;
    let before = snapshot(&store)?;

    // The second revision whole, too (a bundle without --since).
    let whole = work.path().join("whole.tar");
    run(
        "ferry-source-server",
        &[
            &"export",
            &"--storage",
            &server.store(),
            &"--sign-key",
            &sign,
            &"--out",
            &whole,
        ],
    )?
    .ok()?;

    let good_entries = entries(&good)?;
    let delta = good_entries
        .iter()
        .position(|(n, _)| n.starts_with("deltas/"))
        .expect("the incremental bundle carries the new artifact as a delta");
    let delta_name = good_entries[delta].0.clone();
    let new_hex = delta_name["deltas/sha256/".len()..][..64].to_string();
    let tampered = |from: &Entries, name: &str, f: &dyn Fn(&mut Entries)| -> Result<_> {
        let mut e = from.clone();
        f(&mut e);
        let path = work.path().join(name);
        write_entries(&path, &e)?;
        Ok(path)
    };
    let flip = |data: &mut Vec<u8>| {
        let mid = data.len() / 2;
        data[mid] ^= 0x01;
    };
    let whole_entries = entries(&whole)?;
    let artifact = whole_entries
        .iter()
        .position(|(n, _)| n.contains(&new_hex))
        .expect("the whole bundle carries the new artifact");
    let artifact_name = whole_entries[artifact].0.clone();
    let flipped = tampered(&whole_entries, "flipped.tar", &|e| flip(&mut e[artifact].1))?;
    let flipped_delta = tampered(&good_entries, "flipped-delta.tar", &|e| {
        flip(&mut e[delta].1)
    })?;
    let escape = tampered(&good_entries, "escape.tar", &|e| {
        e.push(("../../escape.json".into(), b"{}".to_vec()));
    })?;
    let state_write = tampered(&good_entries, "state.tar", &|e| {
        e.push((format!("state/sources/{NS}/app.json"), b"{}".to_vec()));
    })?;
    let missing = tampered(&good_entries, "missing.tar", &|e| {
        e.remove(delta);
    })?;
    let unsigned = tampered(&good_entries, "unsigned.tar", &|e| {
        e.retain(|(n, _)| n != "index.json.sig");
    })?;
    let forged_index = tampered(&good_entries, "forged.tar", &|e| {
        let text = String::from_utf8(e[0].1.clone()).expect("utf-8 index");
        e[0].1 = text.replace(&second, &first).into_bytes();
    })?;
    // Cut in the middle of the whole bundle's new artifact.
    let truncated = work.path().join("truncated.tar");
    let cut = {
        let mut archive = tar::Archive::new(std::fs::File::open(&whole)?);
        let mut at = None;
        for e in archive.entries()? {
            let e = e?;
            if e.path_bytes().as_ref() == artifact_name.as_bytes() {
                at = Some(e.raw_file_position() + e.size() / 2);
            }
        }
        usize::try_from(at.expect("the artifact is in the bundle"))?
    };
    std::fs::write(&truncated, &std::fs::read(&whole)?[..cut])?;
    let other_key = work.path().join("other.pub");

    for (bundle, key, why) in [
        (&flipped, &verify, format!("entry {artifact_name}")),
        (&flipped_delta, &verify, format!("entry {delta_name}")),
        (&truncated, &verify, format!("entry {artifact_name}")),
        (&escape, &verify, "entry \"../../escape.json\"".to_string()),
        (
            &state_write,
            &verify,
            format!("entry \"state/sources/{NS}/app.json\""),
        ),
        (
            &missing,
            &verify,
            format!("names artifact sha256:{new_hex}"),
        ),
        (&unsigned, &verify, "not signed".to_string()),
        (&forged_index, &verify, "does not verify".to_string()),
        (&good, &other_key, "does not verify".to_string()),
    ] {
        for cli in ["ferry-source-server", "ferry"] {
            let r = run(
                cli,
                &[
                    &"import",
                    bundle,
                    &"--storage",
                    &store,
                    &"--verify-key",
                    key,
                ],
            )?;
            assert_eq!(r.code, Some(1), "{cli} {}: {}", bundle.display(), r.stdout);
            assert!(
                r.stderr.contains(&why) && r.stderr.contains(&bundle.display().to_string()),
                "{cli} {}: expected {why:?} in {}",
                bundle.display(),
                r.stderr
            );
            assert_eq!(
                snapshot(&store)?,
                before,
                "{} left something behind",
                bundle.display()
            );
        }
    }
    // The untampered bundle still imports.
    run(
        "ferry-source-server",
        &[
            &"import",
            &good,
            &"--storage",
            &store,
            &"--verify-key",
            &verify,
        ],
    )?
    .ok()?;
    assert_ne!(snapshot(&store)?, before);
    Ok(())
}

/// A deterministic stream of incompressible bytes (xorshift), so the repository is as large
/// compressed as it is on disk.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The bundle bar: a 50 MB repository exported, imported and verified, then a one-file change
/// exported incrementally; times and sizes are printed (`--nocapture`) for the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_repository_travels_whole_and_a_one_file_change_as_a_fraction() -> Result<()> {
    const MIB: usize = 1 << 20;
    let work = tempfile::tempdir()?;
    let up = ferry_tests::upstream::Upstream::new()?;
    for i in 0..50u64 {
        up.write(&format!("data/blob-{i:02}.bin"), noise(i + 1, MIB))?;
    }
    up.write(
        "app/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\n",
    )?;
    let first = up.commit_push("50 MiB")?;
    let limit = (64 * MIB).to_string();
    let server = UpstreamServer::start(
        &work.path().join("up"),
        NS,
        &up.file_url(),
        &["--max-artifact-size", &limit],
    )?;
    let art1 = server.wait_commit(NS, &first).await?;
    assert!(art1.size > 50 * MIB as u64, "{} bytes", art1.size);

    let full = work.path().join("full.tar");
    let export = run(
        "ferry-source-server",
        &[
            &"export",
            &"--storage",
            &server.store(),
            &"--max-artifact-size",
            &limit,
            &"--out",
            &full,
        ],
    )?
    .ok()?;
    let site = work.path().join("site");
    let import = run(
        "ferry-source-server",
        &[
            &"import",
            &full,
            &"--storage",
            &site,
            &"--max-artifact-size",
            &limit,
        ],
    )?
    .ok()?;
    let stored = site.join(format!("artifacts/sha256/{}.tar.gz", art1.digest.hex()));
    let check = std::time::Instant::now();
    let tar_size =
        ferry_proto::verify::check_gz(std::fs::File::open(&stored)?, art1.digest, art1.size)?;
    let verify_seconds = check.elapsed().as_secs_f64();
    assert_eq!(tar_size, art1.size);

    up.write("data/blob-07.bin", noise(1000, MIB))?;
    let second = up.commit_push("one file")?;
    let art2 = server.wait_commit(NS, &second).await?;
    let inc = work.path().join("inc.tar");
    let inc_export = run(
        "ferry-source-server",
        &[
            &"export",
            &"--storage",
            &server.store(),
            &"--since",
            &full,
            &"--max-artifact-size",
            &limit,
            &"--out",
            &inc,
        ],
    )?
    .ok()?;
    let inc_import = run(
        "ferry-source-server",
        &[
            &"import",
            &inc,
            &"--storage",
            &site,
            &"--max-artifact-size",
            &limit,
        ],
    )?
    .ok()?;
    assert!(inc_import.stdout.contains(&second), "{}", inc_import.stdout);
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(
        site.join(format!("state/sources/{NS}/app.json")),
    )?)?;
    assert_eq!(
        state.pointer("/artifact/digest").and_then(|d| d.as_str()),
        Some(art2.digest.to_string().as_str()),
        "the rebuilt artifact has the upstream's digest"
    );
    let stored2 = site.join(format!("artifacts/sha256/{}.tar.gz", art2.digest.hex()));
    ferry_proto::verify::check_gz(std::fs::File::open(&stored2)?, art2.digest, art2.size)?;

    let (full_size, inc_size) = (
        std::fs::metadata(&full)?.len(),
        std::fs::metadata(&inc)?.len(),
    );
    eprintln!(
        "bundle figures: artifact {} B uncompressed; full bundle {full_size} B, export {:.2} s, \
         import {:.2} s, re-verify {verify_seconds:.2} s; after a one-file (1 MiB) change: \
         incremental bundle {inc_size} B ({:.1} % of full), export {:.2} s, import {:.2} s",
        art1.size,
        export.seconds,
        import.seconds,
        100.0 * inc_size as f64 / full_size as f64,
        inc_export.seconds,
        inc_import.seconds,
    );
    assert!(full_size > 50 * MIB as u64, "{full_size}");
    assert!(
        inc_size * 10 < full_size,
        "incremental {inc_size} B is not a fraction of the full {full_size} B"
    );
    Ok(())
}

/// A mirror of a mirror: server B follows A's source (`ferry+http://A/NS/app`), the site's
/// server follows B's; the site never sees the Git server, every hop serves the same revision
/// and digest, and the site's agent applies each new revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_two_mirrors_serves_the_same_digests_to_an_agent() -> Result<()> {
    let mut env = Env::new().await?;
    let work = env.work.path().to_path_buf();
    write_seed(&env.upstream, "app", "v1.0.0")?;
    let first = env.upstream.commit_push("seed")?;
    let a = UpstreamServer::start(&work.join("a"), NS, &env.upstream.file_url(), &[])?;
    let b_url = format!("ferry+http://127.0.0.1:{}/{NS}/app", a.port);
    let b = UpstreamServer::start(&work.join("b"), NS, &b_url, &[])?;
    env.sources.clear();
    env.extra_sources.push(format!(
        "apiVersion: source.ferry.dev/v1\nkind: GitRepository\nmetadata: {{name: app, namespace: {NS}}}\n\
         spec:\n  url: ferry+http://127.0.0.1:{}/{NS}/app\n  interval: 1s\n",
        b.port
    ));
    env.start_source()?;
    env.start_agent()?;
    env.apply_kustomization("app", seed_spec("./app")).await?;
    env.wait_image("my-registry/my-app:v1.0.0", LIMIT).await?;

    for (commit, tag) in [(first, None), (String::new(), Some("v2.0.0"))] {
        let commit = match tag {
            None => commit,
            Some(tag) => {
                write_seed(&env.upstream, "app", tag)?;
                let c = env.upstream.commit_push(tag)?;
                env.wait_image(&format!("my-registry/my-app:{tag}"), LIMIT)
                    .await?;
                c
            }
        };
        let at_a = a.wait_commit(NS, &commit).await?;
        let at_b = b.wait_commit(NS, &commit).await?;
        let at_site = wait_source(&env.source_url(), NS, "app", &commit).await?;
        assert_eq!((at_b.digest, &at_b.revision), (at_a.digest, &at_a.revision));
        assert_eq!(
            (at_site.digest, &at_site.revision),
            (at_a.digest, &at_a.revision)
        );
        // The same bytes at every hop.
        let file = |store: std::path::PathBuf| {
            std::fs::read(store.join(format!("artifacts/sha256/{}.tar.gz", at_a.digest.hex())))
        };
        assert_eq!(file(b.store())?, file(a.store())?);
        assert_eq!(file(work.join("storage"))?, file(a.store())?);
        let want = at_a.revision.to_string();
        env.wait_for(
            &format!("Kustomization app applied {want}"),
            LIMIT,
            || async {
                let ks = env.kustomization("app").await?;
                let applied = ks.status.and_then(|s| s.last_applied_revision);
                Ok((applied.as_deref() == Some(want.as_str())).then_some(()))
            },
        )
        .await?;
    }
    Ok(())
}
