//! Hostile trees stay bounded: a chain of thousands of bases, diamonds of diamonds and
//! bases multiplying objects end in an error naming the kustomization — not a stack
//! overflow, not exponential work, not unbounded memory. Test threads have the 2 MiB stack
//! of the agent's worker threads, so the depth bound is checked against the real limit.

use ferry_kustomize::target::{MAX_DEPTH, MAX_KUSTOMIZATIONS, MAX_OBJECTS};
use ferry_kustomize::{BuildOptions, MemFs, RelPath, build};

/// `levels` kustomizations `l0 → l1 → …`; each level includes `fan` bases (each with its own
/// name prefix) of the next; the last holds `objects` ConfigMaps.
fn tree(levels: usize, fan: usize, objects: usize) -> MemFs {
    let mut fs = MemFs::new();
    for level in 0..levels {
        let mut k = String::from("resources:\n");
        if level + 1 == levels {
            k.push_str("- objects.yaml\n");
            let docs: Vec<String> = (0..objects)
                .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n"))
                .collect();
            fs.insert(
                &format!("l{level}/objects.yaml"),
                docs.join("---\n").into_bytes(),
            )
            .expect("valid path");
        } else {
            for b in 0..fan {
                k.push_str(&format!("- b{b}\n"));
                fs.insert(
                    &format!("l{level}/b{b}/kustomization.yaml"),
                    format!("namePrefix: b{b}-\nresources:\n- ../../l{}\n", level + 1).into_bytes(),
                )
                .expect("valid path");
            }
        }
        fs.insert(&format!("l{level}/kustomization.yaml"), k.into_bytes())
            .expect("valid path");
    }
    fs
}

fn build_err(fs: &MemFs) -> String {
    match build(
        fs,
        &RelPath::parse("l0").expect("valid"),
        &BuildOptions::default(),
    ) {
        Ok(out) => panic!("expected an error, got {} objects", out.resources.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_chain_of_thousands_of_bases_stops_at_the_depth_bound() {
    let e = build_err(&tree(5000, 1, 1));
    assert!(e.contains(&format!("deeper than {MAX_DEPTH}")), "{e}");
    // Names the kustomization where the bound was reached and where the build started.
    assert!(
        e.contains("/kustomization.yaml") && e.contains("built from l0"),
        "{e}"
    );
}

#[test]
fn a_chain_within_the_bound_builds() {
    // MAX_DEPTH kustomizations in a chain: the root, then one base per level.
    let out = build(
        &tree(MAX_DEPTH / 2, 1, 1),
        &RelPath::parse("l0").expect("valid"),
        &BuildOptions::default(),
    )
    .expect("a chain within the bound builds");
    assert_eq!(out.resources.len(), 1);
}

#[test]
fn diamonds_of_diamonds_stop_at_the_kustomization_bound() {
    // 2^40 paths to the bottom, few objects per path until the bound stops it.
    let e = build_err(&tree(40, 2, 0));
    assert!(
        e.contains(&format!("more than {MAX_KUSTOMIZATIONS} kustomizations")),
        "{e}"
    );
}

#[test]
fn bases_multiplying_objects_stop_at_the_object_bound() {
    // Two bases of a file holding more than half the bound.
    let e = build_err(&tree(2, 2, MAX_OBJECTS / 2 + 1));
    assert!(
        e.contains(&format!("more than {MAX_OBJECTS} objects")),
        "{e}"
    );
    assert!(e.contains("kustomization.yaml"), "{e}");
}
