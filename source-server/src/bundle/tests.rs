//! Refusals that the end-to-end tests (tests/tests/e2e_airgap.rs) do not reach through the
//! binaries: an index naming paths outside the store, bounds, inconsistent indexes.

use std::sync::Arc;

use chrono::Utc;
use ferry_proto::{ArtifactLimits, ArtifactRef, Revision, SourceKey};
use object_store::memory::InMemory;

use super::*;
use crate::artifact::{File, build_from_files};

fn store() -> Storage {
    Storage::from_store(Arc::new(InMemory::new()), "memory")
}

/// A store with one source and its artifact.
async fn filled() -> Storage {
    let s = store();
    let built = build_from_files(
        [File {
            path: b"app/cm.yaml".to_vec(),
            executable: false,
            data: b"kind: ConfigMap\n".to_vec(),
        }],
        &ArtifactLimits::default(),
    )
    .expect("builds");
    s.put_artifact(&built.digest, built.gz.clone().into())
        .await
        .expect("put");
    let state = SourceState {
        artifact: Some(ArtifactRef {
            digest: built.digest,
            size: built.tar_size,
            compressed_size: Some(built.gz.len() as u64),
            revision: Revision::new(Some("main".into()), "a".repeat(40)).expect("valid"),
            url: String::new(),
            last_update_time: Utc::now(),
        }),
        ..Default::default()
    };
    s.save_state(&SourceKey::new("team-a", "app"), &state)
        .await
        .expect("save");
    s
}

/// A change to an index.
type Edit = Box<dyn Fn(&mut Index)>;

fn opts() -> ExportOptions {
    ExportOptions {
        sources: vec![],
        since: None,
        sign_key: None,
        limits: ArtifactLimits::default(),
    }
}

/// Rewrites the bundle's index with `f` (unsigned).
fn rewrite_index(bundle: &std::path::Path, out: &std::path::Path, f: impl Fn(&mut Index)) {
    let mut archive = tar::Archive::new(std::fs::File::open(bundle).expect("open"));
    let mut b = tar::Builder::new(std::fs::File::create(out).expect("create"));
    for e in archive.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).expect("read");
        if name == INDEX_ENTRY {
            let mut index: Index = serde_json::from_slice(&data).expect("index");
            f(&mut index);
            data = serde_json::to_vec(&index).expect("json");
        }
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, &name, &data[..]).expect("append");
    }
    b.finish().expect("finish");
}

#[tokio::test]
async fn an_index_that_names_paths_outside_the_store_or_breaks_bounds_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("b.tar");
    export(&filled().await, &opts(), &bundle)
        .await
        .expect("export");
    let dest = store();
    let cases: Vec<(&str, Edit)> = vec![
        (
            "not a valid name",
            Box::new(|i| i.sources[0].key.namespace = "../../etc".into()),
        ),
        (
            "not a valid name",
            Box::new(|i| i.sources[0].key.name = "a/b".into()),
        ),
        (
            "has no state of its own",
            Box::new(|i| i.sources[0].key.kind = ferry_proto::SourceKind::HelmChart),
        ),
        (
            "which the index does not list",
            Box::new(|i| i.sources[0].state.history.push(Digest::of(b"x"))),
        ),
        (
            "above the artifact size limit",
            Box::new(|i| i.artifacts[0].size = 1 << 40),
        ),
        ("this version reads", Box::new(|i| i.format = "v0".into())),
    ];
    for (n, (why, f)) in cases.into_iter().enumerate() {
        let bad = dir.path().join(format!("bad-{n}.tar"));
        rewrite_index(&bundle, &bad, f);
        let err = import(&dest, &bad, &ImportOptions::default())
            .await
            .expect_err(why)
            .to_string();
        assert!(
            err.contains(why) && err.contains("index.json"),
            "{why}: {err}"
        );
        assert!(dest.list_states().await.expect("list").is_empty());
        assert!(dest.list_artifacts().await.expect("list").is_empty());
    }

    let small = ImportOptions {
        limits: ImportLimits {
            max_bundle_size: 1000,
            ..ImportLimits::default()
        },
        ..ImportOptions::default()
    };
    let err = import(&dest, &bundle, &small).await.expect_err("too large");
    assert!(matches!(err, BundleError::TooLarge { .. }), "{err}");

    // The bundle itself imports, and again without writing anything.
    let first = import(&dest, &bundle, &ImportOptions::default())
        .await
        .expect("import");
    assert_eq!((first.written, first.present), (1, 0));
    let again = import(&dest, &bundle, &ImportOptions::default())
        .await
        .expect("again");
    assert_eq!((again.written, again.present), (0, 1));
    assert!(again.sources.iter().all(|(_, _, changed)| !changed));
}
